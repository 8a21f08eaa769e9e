"""Run lifecycle hooks: what the packages above runs (the run queue, sweeps, notifications) do
when a run is queued or ends, in the caller's transaction.

runs sits below them and imports none of them: they register here, all at once, through
``backend.lifecycle.install()``, which every entry point that changes runs calls (the app
factory, the in-process sink, the tests). Firing a hook before that raises
(backend.hookslot.HooksNotInstalled).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from backend.hookslot import HooksNotInstalled, Slot
from backend.runs.models import Run

__all__ = ["HooksNotInstalled", "install", "installed", "queue_changed", "run_ended"]

QueueChanged = Callable[[Session], None]
RunEnded = Callable[[Session, Run], None]


@dataclass(frozen=True)
class _Hooks:
    queue_changed: Sequence[QueueChanged]
    run_ended: Sequence[RunEnded]


_hooks: Slot[_Hooks] = Slot("run lifecycle hooks")


def install(*, queue_changed: Sequence[QueueChanged], run_ended: Sequence[RunEnded]) -> None:
    """Set every hook at once (again: replaces them, so installing twice is harmless)."""
    _hooks.install(_Hooks(tuple(queue_changed), tuple(run_ended)))


installed = _hooks.installed
uninstall = _hooks.uninstall


def queue_changed(session: Session) -> None:
    """A run was queued (submitted, requeued, resumed, forked): the queue may send it."""
    for hook in _hooks.get().queue_changed:
        hook(session)


def run_ended(session: Session, run: Run) -> None:
    """A run just ended (finished or cancelled while queued), in the transaction that ended it."""
    for hook in _hooks.get().run_ended:
        hook(session, run)
