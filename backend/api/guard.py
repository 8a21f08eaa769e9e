"""What every request must be before a route sees it:

- a JSON body no larger than FITBOARD_MAX_JSON_MB: a larger one is a 413, refused from its
  Content-Length or while it streams in, never held in memory whole;
- no NUL character (PostgreSQL can store it in neither text nor JSON): one in the path, a query
  parameter or anywhere in a JSON body is a 422 naming where, instead of a 500 from the database.

A plain ASGI middleware: a JSON body is read once, checked, and handed on unchanged; other
bodies (uploads, with their own streaming limit) pass through untouched.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.config import get_settings

NUL = "\x00"
MESSAGE = "must not contain the NUL character (\\u0000)"


def _error(field: str) -> JSONResponse:
    return JSONResponse(
        {
            "detail": f"{field}: {MESSAGE}",
            "code": "validation_error",
            "errors": [{"field": field, "message": MESSAGE, "type": "value_error"}],
        },
        status_code=422,
    )


def _json_path_with_nul(value: Any, path: str = "body") -> str | None:
    """Where in a parsed JSON document a NUL sits (a key or a string), e.g. body.spec.name."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            if NUL in node:
                return where
        elif isinstance(node, dict):
            for key, item in node.items():
                if NUL in str(key):
                    return where
                stack.append((item, f"{where}.{key}"))
        elif isinstance(node, list):
            stack.extend((item, f"{where}[{index}]") for index, item in enumerate(node))
    return None


def _too_large(limit_mb: int) -> JSONResponse:
    return JSONResponse(
        {
            "detail": f"body: larger than {limit_mb} MB (FITBOARD_MAX_JSON_MB); send it in parts",
            "code": "too_large",
        },
        status_code=413,
    )


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return bytes(value)
    return None


def _is_json(scope: Scope) -> bool:
    content_type = _header(scope, b"content-type")
    return content_type is not None and b"json" in content_type.lower()


class RequestGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if NUL in scope.get("path", "") or "%00" in scope.get("raw_path", b"").decode("latin-1"):
            await _error("path")(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        if NUL in unquote(query):
            name = next(
                (k for k, v in parse_qsl(query, keep_blank_values=True) if NUL in k + v), "query"
            )
            await _error(name.replace(NUL, "") or "query")(scope, receive, send)
            return
        if not _is_json(scope):
            await self.app(scope, receive, send)
            return
        limit_mb = get_settings().max_json_mb
        limit = limit_mb * 1024 * 1024
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(limit_mb)(scope, receive, send)
            return
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if len(body) > limit:  # a body longer than it said, or one sent without a length
                await _too_large(limit_mb)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        if b"\\u0000" in body or b"\x00" in body:
            try:
                where = _json_path_with_nul(json.loads(body))
            except ValueError:  # not JSON (or a raw NUL): the body as a whole
                where = "body"
            if where is not None:
                await _error(where)(scope, receive, send)
                return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)
