"""What a run asks of a worker (GPUs, of which type, in which pool), as the API's dispatcher
and the worker's GPU pool both read it from the spec's ``resources``. Pure: no database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Demand:
    """``gpus`` None: auto (one GPU on a worker that has any, else the CPU)."""

    gpus: int | None = None
    gpu_type: str | None = None
    pool: str | None = None

    @property
    def min_gpus(self) -> int:
        """The GPUs it needs at least (0: the CPU may do)."""
        return self.gpus or 0

    @property
    def constrained(self) -> bool:
        """Only some workers may take it: a GPU type or a pool."""
        return self.gpu_type is not None or self.pool is not None

    def describe(self) -> str:
        """``2 GPUs of type A100 in pool research``, for a waiting reason."""
        count = self.min_gpus
        text = f"{count} GPU{'' if count == 1 else 's'}" if count else "a slot"
        if self.gpu_type:
            text += f" of type {self.gpu_type}"
        if self.pool:
            text += f" in pool {self.pool}"
        return text


def demand_of(spec: dict[str, Any] | None) -> Demand:
    """A stored spec's demand; a GPU type without a count asks for one such GPU."""
    resources = (spec or {}).get("resources") or {}
    gpus = resources.get("gpus")
    gpu_type = resources.get("gpu_type") or None
    pool = resources.get("pool") or None
    if not isinstance(gpus, int):
        gpus = 1 if gpu_type else None
    return Demand(gpus=gpus, gpu_type=gpu_type, pool=pool)


def gpu_matches(name: str | None, gpu_type: str | None) -> bool:
    """A GPU named ``name`` is of ``gpu_type`` (a case-insensitive part of it; None: any)."""
    return gpu_type is None or gpu_type.strip().casefold() in (name or "").casefold()


def pool_matches(worker_pool: str | None, wanted: str | None) -> bool:
    """A run with no pool goes anywhere; one with a pool only to workers that declare it."""
    return wanted is None or worker_pool == wanted
