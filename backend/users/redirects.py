"""Where a browser may be sent after signing in: a path on this site, never another host."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

HOME = "/"
# a browser drops tabs and newlines inside a URL and reads '\' as '/', so '/\t/evil' and
# '/\\evil' both reach another host; any control character or backslash is refused outright
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]")
MAX_NEXT_CHARS = 2048


def safe_next(value: str | None) -> str:
    """``value`` if it is a same-origin path ('/runs/3?x=1'), else '/'."""
    if not value or len(value) > MAX_NEXT_CHARS or not value.startswith("/"):
        return HOME
    if value.startswith("//") or _UNSAFE.search(value):
        return HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return HOME
    return value
