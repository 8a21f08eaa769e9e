"""Run lifecycle hooks: what the packages above runs (the run queue, sweeps, notifications) do
when a run is queued or ends, in the caller's transaction.

runs sits below them and imports none of them: they register here, all at once, through
``backend.lifecycle.install()``, which every entry point that changes runs calls (the app
factory, the in-process sink, the tests). Firing a hook before that raises: a run that ended
without telling its sweep or freeing its slot would be a silent bug.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from backend.runs.models import Run

QueueChanged = Callable[[Session], None]
RunEnded = Callable[[Session, Run], None]


class HooksNotInstalled(RuntimeError):
    """A run changed state in a process whose entry point never called lifecycle.install()."""


@dataclass(frozen=True)
class _Hooks:
    queue_changed: Sequence[QueueChanged]
    run_ended: Sequence[RunEnded]


_hooks: _Hooks | None = None


def install(*, queue_changed: Sequence[QueueChanged], run_ended: Sequence[RunEnded]) -> None:
    """Set every hook at once (again: replaces them, so installing twice is harmless)."""
    global _hooks
    _hooks = _Hooks(tuple(queue_changed), tuple(run_ended))


def installed() -> bool:
    return _hooks is not None


def _current() -> _Hooks:
    if _hooks is None:
        raise HooksNotInstalled(
            "run lifecycle hooks are not installed: call backend.lifecycle.install() at start-up"
        )
    return _hooks


def queue_changed(session: Session) -> None:
    """A run was queued (submitted, requeued, resumed, forked): the queue may send it."""
    for hook in _current().queue_changed:
        hook(session)


def run_ended(session: Session, run: Run) -> None:
    """A run just ended (finished or cancelled while queued), in the transaction that ended it."""
    for hook in _current().run_ended:
        hook(session, run)
