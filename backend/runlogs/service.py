"""The training log on disk: where it lives, and reading it by byte offset.

The worker writes `<FITBOARD_HOME>/logs/run-<id>.log`; the API reads it. Offsets are byte
offsets into the file; a chunk never ends (or, from the end, starts) inside a UTF-8 character.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from backend.config import get_settings
from backend.errors import InvalidInput

DEFAULT_LIMIT = 65_536
MAX_LIMIT = 1_048_576


def log_path(run_id: int) -> Path:
    """Where the training process of run_id writes its stdout and stderr."""
    return get_settings().home.resolve() / "logs" / f"run-{run_id}.log"


@dataclass(frozen=True)
class LogChunk:
    offset: int
    next_offset: int
    text: str
    size: int


def _is_continuation(byte: int) -> bool:
    return byte & 0b1100_0000 == 0b1000_0000


def _complete_prefix(data: bytes) -> int:
    """Length of data without a trailing, incomplete UTF-8 sequence."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if _is_continuation(byte):
            continue
        if byte < 0x80:
            return len(data)
        needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
        return len(data) if back >= needed else len(data) - back
    return len(data)  # only continuation bytes: not UTF-8 anyway; decoded with replacements


def read_chunk(*, run_id: int, offset: int = 0, limit: int = DEFAULT_LIMIT) -> LogChunk:
    """Up to limit bytes (at least 4) from offset; a negative offset counts back from the end.

    A run whose process has not written anything yet has an empty log (size 0)."""
    try:
        f = log_path(run_id).open("rb")
    except FileNotFoundError:
        if offset > 0:
            raise InvalidInput(
                f"offset {offset} is past the end of the log (0 bytes)", field="offset"
            ) from None
        return LogChunk(offset=0, next_offset=0, text="", size=0)
    with f:
        size = os.fstat(f.fileno()).st_size
        if offset > size:
            raise InvalidInput(
                f"offset {offset} is past the end of the log ({size} bytes)", field="offset"
            )
        start = max(0, size + offset) if offset < 0 else offset
        f.seek(start)
        data = f.read(min(limit, size - start))
    if offset < 0:
        # counted from the end: begin at the next character, not inside one
        skip = 0
        while skip < min(3, len(data)) and _is_continuation(data[skip]):
            skip += 1
        start += skip
        data = data[skip:]
    end = _complete_prefix(data)
    if end == 0 and len(data) >= 4:
        end = len(data)  # bytes that can never complete a character: move past them
    return LogChunk(
        offset=start,
        next_offset=start + end,
        text=data[:end].decode("utf-8", "replace"),
        size=size,
    )


def size(run_id: int) -> int:
    try:
        return log_path(run_id).stat().st_size
    except FileNotFoundError:
        return 0


def append(*, run_id: int, offset: int, data: bytes) -> int:
    """Write a worker's log bytes at ``offset`` (idempotent: bytes already there are skipped);
    returns the log's size after. A gap (offset past the end) is refused, naming the end."""
    path = log_path(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as f:
        # the worker's shipper and the training process's last drain may send the same bytes
        # at once (and API processes are many): one writer at a time, judged by the real end
        fcntl.flock(f, fcntl.LOCK_EX)
        end = f.seek(0, os.SEEK_END)
        if offset > end:
            raise InvalidInput(
                f"offset {offset} is past the end of the log ({end} bytes): send from {end}",
                field="offset",
            )
        skip = end - offset
        if skip < len(data):
            f.write(data[skip:])
        return f.tell()
