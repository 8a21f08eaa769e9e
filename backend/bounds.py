"""Bounds shared by every integer the API reads: ids, steps, epochs, offsets, event ids.

The database stores them as 64-bit (ids, steps, event ids) or 32-bit (epochs, counts)
integers; a larger number in a path, query, header or body is a 422 naming the parameter,
never an overflow in the driver (a 500) or a broken stream.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

MAX_INT64 = 2**63 - 1
MAX_INT32 = 2**31 - 1

# a row id (run, sweep, dataset, user, token): ids start at 1
Id = Annotated[int, Field(ge=1, le=MAX_INT64)]
# a step, a byte offset or an event id: 0 and up
Count64 = Annotated[int, Field(ge=0, le=MAX_INT64)]
# a byte offset that may count back from the end
Offset64 = Annotated[int, Field(ge=-MAX_INT64, le=MAX_INT64)]
# epochs, trial numbers, seeds: stored as 32-bit integers
Count32 = Annotated[int, Field(ge=0, le=MAX_INT32)]
Int32 = Annotated[int, Field(ge=-MAX_INT32 - 1, le=MAX_INT32)]


def parse_event_id(value: str | None) -> int | None:
    """A Last-Event-ID header as an event id (0..2**63-1), None when absent or empty."""
    if not value:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or int(text) > MAX_INT64:
        raise ValueError("must be an integer from 0 to 2**63-1")
    return int(text)
