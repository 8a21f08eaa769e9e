"""Whether a run has ended, for the live views (events.fanout, runlogs.stream).

The runs package sits above events and runlogs (it writes their rows), so it provides the
answer: ``backend.lifecycle.install()`` registers runs.service.live_state here. Asking before
that raises rather than guessing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class RunState:
    finished: bool
    finished_at: datetime | None


# raises backend.errors.NotFound for a run that does not exist (or no longer does)
Reader = Callable[[Session, int], RunState]

_reader: Reader | None = None


def install(reader: Reader) -> None:
    global _reader
    _reader = reader


def installed() -> bool:
    return _reader is not None


def state(session: Session, run_id: int) -> RunState:
    """The run's state now; NotFound if it does not exist."""
    if _reader is None:
        raise RuntimeError(
            "the live views' run state reader is not installed: "
            "call backend.lifecycle.install() at start-up"
        )
    return _reader(session, run_id)
