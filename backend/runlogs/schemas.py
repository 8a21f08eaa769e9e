"""Response bodies of the training log API."""

from __future__ import annotations

from pydantic import BaseModel, Field


class LogChunkOut(BaseModel):
    offset: int = Field(description="Byte offset the text starts at.")
    next_offset: int = Field(description="Byte offset to ask for next (after the text).")
    text: str = Field(description="UTF-8 text; never ends inside a multi-byte character.")
    size: int = Field(description="Size of the log file in bytes when it was read.")
