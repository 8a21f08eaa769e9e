"""Sweep lifecycle hooks: what notifications (above sweeps) do when a sweep ends, in the
caller's transaction. Installed with the runs' hooks by ``backend.lifecycle.install()``;
firing one before that raises (backend.hookslot.HooksNotInstalled)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.orm import Session

from backend.hookslot import Slot

SweepEnded = Callable[[Session, int], None]

_sweep_ended: Slot[tuple[SweepEnded, ...]] = Slot("sweep lifecycle hooks")


def install(*, sweep_ended: Sequence[SweepEnded]) -> None:
    _sweep_ended.install(tuple(sweep_ended))


installed = _sweep_ended.installed
uninstall = _sweep_ended.uninstall


def sweep_ended(session: Session, sweep_id: int) -> None:
    """A sweep just finished or was cancelled."""
    for hook in _sweep_ended.get():
        hook(session, sweep_id)
