"""Sweep lifecycle hooks: what notifications (above sweeps) do when a sweep ends, in the
caller's transaction. Installed with the runs' hooks by ``backend.lifecycle.install()``;
firing one before that raises (see backend.runs.hooks)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.orm import Session

from backend.runs.hooks import HooksNotInstalled

SweepEnded = Callable[[Session, int], None]

_sweep_ended: tuple[SweepEnded, ...] | None = None


def install(*, sweep_ended: Sequence[SweepEnded]) -> None:
    global _sweep_ended
    _sweep_ended = tuple(sweep_ended)


def installed() -> bool:
    return _sweep_ended is not None


def sweep_ended(session: Session, sweep_id: int) -> None:
    """A sweep just finished or was cancelled."""
    if _sweep_ended is None:
        raise HooksNotInstalled(
            "sweep lifecycle hooks are not installed: call backend.lifecycle.install() at start-up"
        )
    for hook in _sweep_ended:
        hook(session, sweep_id)
