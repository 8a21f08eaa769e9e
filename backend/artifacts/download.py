"""An artifact as an HTTP response: streamed from any store, with one byte range (206/416).

A Range the server cannot use as one range (several ranges, another unit, garbage) is ignored
and the whole file is sent, as RFC 9110 allows; so is a Range under If-Range on the S3 store
(it has no validator to compare). A range that starts past the end answers 416.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, BinaryIO

from fastapi import Header
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from backend.api.errors import error_responses
from backend.artifacts.models import Artifact
from backend.artifacts.store import ArtifactStore
from backend.errors import NotFound, RangeNotSatisfiable

OCTETS = "application/octet-stream"
CHUNK = 1 << 20
_BINARY = {OCTETS: {"schema": {"type": "string", "format": "binary"}}}
_SINGLE_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)

RangeHeader = Annotated[
    str | None,
    Header(
        alias="Range",
        description="One byte range: bytes=START-END, bytes=START- or bytes=-SUFFIX (206); "
        "anything else gets the whole file.",
    ),
]
IfRangeHeader = Annotated[
    str | None,
    Header(
        alias="If-Range",
        description="With Range: the range only if the file is unchanged (the ETag or "
        "Last-Modified it was sent with), else the whole file. On the S3 store: the whole file.",
    ),
]

# the OpenAPI `responses=` of a download route
DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The whole file.", "content": _BINARY},
    206: {
        "description": "The byte range the Range header asked for.",
        "content": _BINARY,
        "headers": {
            "Content-Range": {
                "description": "bytes START-END/SIZE",
                "schema": {"type": "string"},
            }
        },
    },
    **error_responses(416),
}


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, stop) of a single-range Range header on a size-byte file; None: send it whole."""
    match = _SINGLE_RANGE.fullmatch(header or "")
    if match is None:
        return None
    first, last = match.groups()
    if first:
        start = int(first)
        if last and int(last) < start:  # not a range at all: ignored
            return None
        if start >= size:
            detail = f"the range starts at byte {start} of a {size}-byte file"
            raise RangeNotSatisfiable(detail, size=size)
        return start, min(int(last) + 1, size) if last else size
    if not last:
        return None
    if int(last) == 0 or size == 0:
        raise RangeNotSatisfiable(f"an empty suffix range of a {size}-byte file", size=size)
    return max(size - int(last), 0), size


class _WholeFile(FileResponse):
    """A FileResponse that ignores the request's Range (one this module already ignored)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"range"]
        await super().__call__({**scope, "headers": headers}, receive, send)


def _chunks(body: BinaryIO) -> Iterator[bytes]:
    # a sync generator: Starlette iterates it in a thread, and closes it if the client leaves
    try:
        while chunk := body.read(CHUNK):
            yield chunk
    finally:
        body.close()


def artifact_response(
    store: ArtifactStore,
    artifact: Artifact,
    *,
    range_header: str | None,
    if_range: str | None,
    attachment: bool = False,
) -> Response:
    """The artifact's bytes: a file the store has on disk is sent by Starlette's FileResponse
    (sendfile, ranges, If-Range), any other is streamed from the store."""
    missing = f"artifact {artifact.name!r} of run {artifact.run_id} is missing from the store"
    headers = {"Accept-Ranges": "bytes"}
    if attachment:
        headers["Content-Disposition"] = f'attachment; filename="{artifact.name}"'
    path = store.local_path(artifact.storage_key)
    if path is not None:
        if not path.is_file():
            raise NotFound(missing)
        if if_range is None and byte_range(range_header, path.stat().st_size) is None:
            return _WholeFile(path, media_type=OCTETS, headers=headers)
        return FileResponse(path, media_type=OCTETS, headers=headers)
    size = int(artifact.size_bytes)
    span = None if if_range is not None else byte_range(range_header, size)
    start, stop = span or (0, size)
    try:
        body = store.open(artifact.storage_key, start=start, stop=stop if span else None)
    except FileNotFoundError:
        raise NotFound(missing) from None
    headers["Content-Length"] = str(stop - start)
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    return StreamingResponse(
        _chunks(body), status_code=206 if span else 200, headers=headers, media_type=OCTETS
    )
