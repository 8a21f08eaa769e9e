"""This worker's host: what it offers (CPUs, memory, GPUs), and which GPU trains which run.

GPUs come from NVIDIA's NVML, limited to the ones ``CUDA_VISIBLE_DEVICES`` gives the worker.
``FITBOARD_FAKE_GPUS=N`` (tests and demos on machines without GPUs) makes the worker offer N
pretend GPUs: they are scheduled and pinned like real ones, and nothing can train on them;
``FITBOARD_FAKE_GPU_NAME`` names them (a GPU type runs can ask for), and their utilisation and
memory readings are made up.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from backend.spec.gpus import gpu_matches

log = logging.getLogger(__name__)

FAKE_GPUS_ENV = "FITBOARD_FAKE_GPUS"
FAKE_GPU_NAME_ENV = "FITBOARD_FAKE_GPU_NAME"
FAKE_GPU_NAME = "Fake GPU"
MB = 1024 * 1024


@dataclass(frozen=True)
class Gpu:
    index: int  # NVML's (PCI bus order: the training process gets CUDA_DEVICE_ORDER to match)
    uuid: str
    name: str
    memory_mb: int | None


def gpus() -> list[Gpu]:
    """The GPUs this worker may use."""
    fake = os.environ.get(FAKE_GPUS_ENV, "").strip()
    if fake:
        name = os.environ.get(FAKE_GPU_NAME_ENV, "").strip() or FAKE_GPU_NAME
        return [Gpu(i, f"GPU-fake-{i}", name, 16_384) for i in range(int(fake))]
    try:
        import pynvml

        pynvml.nvmlInit()
        found = []
        for index in visible_indices(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total // MB
            found.append(
                Gpu(
                    index,
                    uuid.decode() if isinstance(uuid, bytes) else str(uuid),
                    name.decode() if isinstance(name, bytes) else str(name),
                    int(memory),
                )
            )
        return found
    except Exception as exc:  # no driver, no library, no device: a CPU host
        log.debug("no GPUs: %s", exc)
        return []


FAKE_BUSY = {"util_pct": 50.0, "memory_used_mb": 1024}
FAKE_IDLE = {"util_pct": 0.0, "memory_used_mb": 0}


def readings(devices: list[Gpu], *, busy: Collection[int] = ()) -> dict[int, dict[str, Any]]:
    """Each GPU's utilisation (%) and memory used (MB) now, by index; none that NVML cannot
    read. Pretend GPUs read made-up values: FAKE_BUSY for those in ``busy``, else FAKE_IDLE."""
    if not devices:
        return {}
    if os.environ.get(FAKE_GPUS_ENV, "").strip():
        return {g.index: dict(FAKE_BUSY if g.index in busy else FAKE_IDLE) for g in devices}
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:
        log.debug("no GPU readings: %s", exc)
        return {}
    found: dict[int, dict[str, Any]] = {}
    try:
        for gpu in devices:
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(gpu.index)
                found[gpu.index] = {
                    "util_pct": float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                    "memory_used_mb": int(pynvml.nvmlDeviceGetMemoryInfo(handle).used // MB),
                }
            except Exception as exc:  # one GPU's reading failed: the others still count
                log.debug("GPU %s reading failed: %s", gpu.index, exc)
    finally:
        pynvml.nvmlShutdown()  # nvmlInit counts references: one shutdown per init
    return found


def visible_indices(count: int) -> list[int]:
    """The NVML indices CUDA_VISIBLE_DEVICES allows (all when it is not set)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return list(range(count))
    return [
        int(i) for i in (s.strip() for s in visible.split(",")) if i.isdigit() and int(i) < count
    ]


def probe(*, concurrency: int | None = None, pool: str | None = None) -> dict[str, Any]:
    """What this host offers, as a worker reports it."""
    return {
        "cpus": os.cpu_count(),
        "ram_mb": psutil.virtual_memory().total // MB,
        "concurrency": concurrency,
        "pool": pool,
        "gpus": [asdict(g) for g in gpus()],
    }


def hostname() -> str:
    return socket.gethostname()


class NotEnoughGpus(Exception):
    """A run asks for more GPUs (of its type) than this worker has at all, or a pool it is not
    in."""


class GpuPool:
    """Which of this worker's GPUs are free; a run takes its GPUs for as long as it trains."""

    def __init__(self, devices: list[Gpu]) -> None:
        self.devices = devices
        self._owner: dict[int, int] = {}  # GPU index -> run id
        self._lock = threading.Condition()

    def wanted(self, requested: int | None) -> int:
        """A run's GPU count: its spec's, or one when the worker has any (None: auto)."""
        if requested is None:
            return 1 if self.devices else 0
        return requested

    def take(
        self,
        run_id: int,
        count: int,
        *,
        wait_s: float,
        beat: Any = None,
        gpu_type: str | None = None,
    ) -> list[Gpu]:
        """``count`` free GPUs (of ``gpu_type``, when given) for the run, waiting up to
        ``wait_s`` for others to end (``beat()`` is called every second meanwhile);
        NotEnoughGpus if it never could."""
        usable = [g for g in self.devices if gpu_matches(g.name, gpu_type)]
        if count > len(usable):
            kind = f" of type {gpu_type}" if gpu_type else ""
            raise NotEnoughGpus(
                f"needs {count} GPU{'s' if count != 1 else ''}{kind}; this worker has {len(usable)}"
            )
        deadline = time.monotonic() + wait_s
        with self._lock:
            while True:
                free = [g for g in usable if g.index not in self._owner]
                if len(free) >= count:
                    for gpu in free[:count]:
                        self._owner[gpu.index] = run_id
                    return free[:count]
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no {count} free GPUs within {wait_s:.0f}s")
                self._lock.wait(timeout=1.0)
                if beat is not None:
                    beat()

    def give_back(self, run_id: int) -> None:
        with self._lock:
            for index in [i for i, owner in self._owner.items() if owner == run_id]:
                del self._owner[index]
            self._lock.notify_all()

    def of(self, run_id: int) -> list[int]:
        with self._lock:
            return sorted(i for i, owner in self._owner.items() if owner == run_id)


def child_env(taken: list[Gpu], *, host_has_gpus: bool) -> dict[str, str]:
    """What pins a training process to its GPUs (none: a CPU run sees no GPU at all)."""
    if not host_has_gpus:
        return {}
    return {
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",  # CUDA's numbering = NVML's
        "CUDA_VISIBLE_DEVICES": ",".join(str(g.index) for g in taken),
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",  # never grab a card's memory it does not use
    }
