"""A run's status and source: plain enums, shared by the API and the worker (no database)."""

from __future__ import annotations

import enum

__all__ = ["FINISHED_STATUSES", "RunSource", "RunStatus"]


class RunStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    # a sweep trial stopped early by the sweep's pruner (median stopping, successive halving)
    pruned = "pruned"

    @property
    def finished(self) -> bool:
        return self in FINISHED_STATUSES


FINISHED_STATUSES = frozenset(
    {RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled, RunStatus.pruned}
)


class RunSource(enum.StrEnum):
    worker = "worker"  # queued here, trained by a Fitboard worker
    external = "external"  # a script elsewhere streams into it (FitboardCallback, RemoteMonitor)
