"""What a launch (POST /runs, POST /sweeps) asks for besides its spec: a priority in the queue,
and whom to tell when it ends. Plain values and a pydantic body, below every domain package:
runs and sweeps take them, the run queue and notifications act on them."""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Priority = Literal["low", "normal", "high"]


class NotifyEvent(enum.StrEnum):
    ended = "ended"  # succeeded, cancelled or pruned (a sweep: finished or cancelled)
    failed = "failed"
    stalled = "stalled"  # running, but no new metric point for notify_stall_after_s


ALL_EVENTS = [e.value for e in NotifyEvent]


def unique_events(events: list[NotifyEvent]) -> list[NotifyEvent]:
    if len(set(events)) != len(events):
        raise ValueError("each event at most once")
    return events


class NotifyRequest(BaseModel):
    """``notify`` of POST /runs and POST /sweeps: tell the launcher when it ends, fails or
    stalls (webhook: the URL on their Account page)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"webhook": True, "browser": True, "on": ["failed"]}]},
    )

    webhook: bool = Field(default=True, description="POST to your webhook URL (Account page).")
    browser: bool = Field(default=True, description="Show it in an open Fitboard tab.")
    on: list[NotifyEvent] = Field(
        default_factory=lambda: [NotifyEvent(e) for e in ALL_EVENTS],
        max_length=len(ALL_EVENTS),
        description="ended (succeeded, cancelled, pruned; a sweep done), failed, stalled.",
    )

    _check_on = field_validator("on")(unique_events)
