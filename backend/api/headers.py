"""Security headers on every response: a strict Content-Security-Policy (no inline script, no
style attribute, nothing from another origin, never framed), X-Frame-Options,
X-Content-Type-Options and Referrer-Policy.

A plain ASGI middleware (not BaseHTTPMiddleware), so streamed responses (SSE, downloads) pass
through untouched. A response that sets its own Content-Security-Policy keeps it: the API docs
pages (backend.api.docs) do, to allow their hashed bootstrap script.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# plotly.js makes an empty <style> element and fills it through CSSOM (which CSP does not
# govern), and clears a colorbar's style attribute (style=""): the hash of the empty string
# allows exactly those, and nothing else
EMPTY_STYLE = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
# the fixed, non-empty style attributes plotly.js writes: a heatmap drawn as a pixelated image
# (src/constants/pixelated_image.js STYLE), and the tags of its pseudo-HTML text (e.g. the
# <sup> of a log axis' 10^-3 tick; src/lib/svg_text_utils.js TAG_STYLES); a style that text
# brings itself (<span style=...>) stays blocked
PLOTLY_TEXT_STYLES = (
    "font-size:70%",
    "text-decoration:line-through",
    "text-decoration:underline",
    "font-weight:bold",
    "font-style:italic",
    "cursor:pointer",
    "font-style:italic;font-weight:bold",
)
PIXELATED_IMAGE_STYLE = "".join(
    f"image-rendering: {value}; "
    for value in (
        "optimizeSpeed",
        "-moz-crisp-edges",
        "-o-crisp-edges",
        "-webkit-optimize-contrast",
        "optimize-contrast",
        "crisp-edges",
        "pixelated",
    )
)


def sha256_source(text: str) -> str:
    """A CSP hash source ('sha256-...') that allows exactly this inline text."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def content_security_policy(style_hashes: Iterable[str] = ()) -> str:
    """The dashboard's policy: scripts are ES modules from /static; styles come from app.css,
    element.style (CSSOM) or the exact inline text hashed here ('unsafe-hashes' lets those
    hashes, and only those, match a style attribute too: plotly.js's fixed ones)."""
    fixed = (PIXELATED_IMAGE_STYLE, *PLOTLY_TEXT_STYLES)
    hashes = [EMPTY_STYLE, *(sha256_source(style) for style in fixed), *style_hashes]
    styles = " ".join(["'self'", "'unsafe-hashes'", *hashes])
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            f"style-src {styles}",
            "img-src 'self' data: blob:",
            "font-src 'self'",
            "connect-src 'self'",
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def security_headers(policy: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.I)


def script_hashes(html: str) -> list[str]:
    """CSP sources ('sha256-...') that allow exactly the inline scripts of this page."""
    return [sha256_source(body) for body in _INLINE_SCRIPT.findall(html)]


def docs_policy(html: str) -> str:
    """The policy of a third-party docs page (Swagger UI, ReDoc): its own inline bootstrap
    script by hash, and inline styles, which those UIs inject at run time."""
    scripts = " ".join(["'self'", *script_hashes(html)])
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src {scripts}",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        )
    )


class SecurityHeaders:
    """Adds the security headers to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp, *, policy: str) -> None:
        self.app = app
        self.headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in security_headers(policy).items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _merged(message.get("headers", []), self.headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _merged(
    present: Iterable[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    headers = list(present)
    names = {name.lower() for name, _ in headers}
    headers.extend((name, value) for name, value in extra if name not in names)
    return headers
