"""The dashboard's HTML pages: each static file in frontend/, with the shared top bar put in
where the page says ``<!-- fitboard:topbar -->`` (so the navigation is written once)."""

from __future__ import annotations

from functools import lru_cache
from html import escape
from pathlib import Path

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
TOPBAR_MARK = "<!-- fitboard:topbar -->"
NAV = (
    ("/", "Runs"),
    ("/new", "New run"),
    ("/compare", "Compare"),
    ("/sweeps", "Sweeps"),
    ("/datasets", "Datasets"),
    ("/workers", "Workers & queue"),
)


def topbar(current: str | None) -> str:
    """The top bar: brand, navigation (``current`` marked for assistive tech and CSS), user."""
    marked = ' aria-current="page"'
    links = "\n".join(
        f'      <a href="{href}"{marked if href == current else ""}>{escape(label)}</a>'
        for href, label in NAV
    )
    return (
        '<header class="topbar">\n'
        '    <a class="brand" href="/">Fitboard</a>\n'
        '    <nav class="nav" aria-label="Main">\n'
        f"{links}\n"
        "    </nav>\n"
        '    <div id="nav-user" class="nav-user"></div>\n'
        "  </header>"
    )


@lru_cache(maxsize=64)
def _render(name: str, current: str | None, mtime_ns: int) -> bytes:
    text = (FRONTEND / name).read_text(encoding="utf-8")
    return text.replace(TOPBAR_MARK, topbar(current)).encode()


def render(name: str, *, current: str | None = None) -> bytes:
    """The page ``frontend/<name>``; re-read when the file changes (edits show on reload)."""
    return _render(name, current, (FRONTEND / name).stat().st_mtime_ns)
