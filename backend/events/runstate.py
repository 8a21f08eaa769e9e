"""Whether a run has ended, for the live views (events.fanout, runlogs.stream).

The runs package sits above events and runlogs (it writes their rows), so it provides the
answer: ``backend.lifecycle.install()`` registers runs.service.live_state here. Asking before
that raises (backend.hookslot.HooksNotInstalled) rather than guessing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from backend.hookslot import Slot


@dataclass(frozen=True)
class RunState:
    finished: bool
    finished_at: datetime | None


# raises backend.errors.NotFound for a run that does not exist (or no longer does)
Reader = Callable[[Session, int], RunState]

_reader: Slot[Reader] = Slot("the live views' run state reader")

install = _reader.install
installed = _reader.installed
uninstall = _reader.uninstall


def state(session: Session, run_id: int) -> RunState:
    """The run's state now; NotFound if it does not exist (HooksNotInstalled before install)."""
    return _reader.get()(session, run_id)
