"""System metrics of a run, sampled every 2 s off the training thread: the training process'
CPU % and RSS (psutil), and for each GPU it can see, utilisation, memory used and power
(NVIDIA's NVML). They stream as ``sys/*`` series like any other metric, the step being the
seconds since training began.

A host without NVML (no NVIDIA driver) samples CPU and memory only. ``CUDA_VISIBLE_DEVICES``
limits the GPUs sampled to the ones the run was given.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from worker.host import visible_indices

log = logging.getLogger(__name__)

SAMPLE_EVERY_S = 2.0
MB = 1024 * 1024


class GpuProbe:
    """NVML handles of the GPUs this process may use; empty where there is no NVIDIA driver."""

    def __init__(self) -> None:
        self.handles: list[tuple[int, Any]] = []
        self._nvml: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            count = pynvml.nvmlDeviceGetCount()
            for index in visible_indices(count):
                self.handles.append((index, pynvml.nvmlDeviceGetHandleByIndex(index)))
        except Exception as exc:  # no driver, no library, no device: CPU metrics only
            log.debug("no GPU metrics: %s", exc)
            self.handles = []

    def sample(self) -> dict[str, float]:
        values: dict[str, float] = {}
        nvml = self._nvml
        for position, (_, handle) in enumerate(self.handles):
            prefix = f"sys/gpu{position}_"
            try:
                values[prefix + "util"] = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                values[prefix + "mem_used_mb"] = nvml.nvmlDeviceGetMemoryInfo(handle).used / MB
                values[prefix + "power_w"] = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
            except Exception as exc:  # one reading failed: the others still count
                log.debug("GPU %s reading failed: %s", position, exc)
        return values


class SystemSampler:
    """A daemon thread that hands one sample every ``every_s`` to ``emit(step, values)``."""

    def __init__(
        self,
        emit: Callable[[int, dict[str, float], float], None],
        *,
        every_s: float = SAMPLE_EVERY_S,
        gpus: GpuProbe | None = None,
    ) -> None:
        self.emit = emit
        self.every_s = every_s
        self.gpus = gpus if gpus is not None else GpuProbe()
        self.process = psutil.Process(os.getpid())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="system-metrics", daemon=True)
        self.samples = 0

    def start(self) -> SystemSampler:
        self.process.cpu_percent(None)  # the first reading only sets the baseline
        self._started = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.every_s + 1.0)

    def sample(self) -> dict[str, float]:
        with self.process.oneshot():
            values = {
                "sys/cpu_percent": self.process.cpu_percent(None),
                "sys/rss_mb": self.process.memory_info().rss / MB,
            }
        values.update(self.gpus.sample())
        return values

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                step = round(time.monotonic() - self._started)
                self.emit(step, self.sample(), time.time())
                self.samples += 1
            except Exception:  # sampling must never reach training
                log.debug("system metrics sample failed", exc_info=True)
