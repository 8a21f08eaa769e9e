"""System metrics: sampled off the training thread as sys/* series; GPUs through a seam."""

from __future__ import annotations

import threading
import time

import pytest

from worker.host import visible_indices
from worker.trainer import sysmetrics
from worker.trainer.sysmetrics import SystemSampler


class FakeGpus(sysmetrics.GpuProbe):
    """Two fake GPUs (the seam a host without NVIDIA uses in tests)."""

    def __init__(self) -> None:
        self.handles = [(0, "gpu0"), (1, "gpu1")]

    def sample(self) -> dict[str, float]:
        return {f"sys/gpu{i}_util": 50.0 + i for i, _ in self.handles}


def test_sampler_emits_cpu_memory_and_gpu_series_off_the_calling_thread() -> None:
    got: list[tuple[int, dict[str, float], str]] = []
    done = threading.Event()

    def emit(step: int, values: dict[str, float], wall_time: float) -> None:
        got.append((step, values, threading.current_thread().name))
        if len(got) >= 3:
            done.set()

    sampler = SystemSampler(emit, every_s=0.05, gpus=FakeGpus()).start()
    sum(i * i for i in range(2_000_000))  # some CPU work to measure
    assert done.wait(5)
    sampler.stop()
    steps = [step for step, _, _ in got]
    assert steps == sorted(steps)
    _, values, thread = got[-1]
    assert thread == "system-metrics"
    assert values["sys/rss_mb"] > 10
    assert values["sys/cpu_percent"] >= 0
    assert values["sys/gpu0_util"] == 50.0 and values["sys/gpu1_util"] == 51.0
    count = len(got)
    time.sleep(0.2)
    assert len(got) == count, "stopped means stopped"


@pytest.mark.parametrize(
    ("visible", "count", "expected"),
    [(None, 3, [0, 1, 2]), ("1", 3, [1]), ("2,0", 3, [2, 0]), ("", 2, []), ("5", 2, [])],
)
def test_only_the_gpus_a_run_was_given_are_sampled(
    monkeypatch: pytest.MonkeyPatch, visible: str | None, count: int, expected: list[int]
) -> None:
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert visible_indices(count) == expected


def test_no_nvidia_driver_means_cpu_metrics_only() -> None:
    probe = sysmetrics.GpuProbe()
    if probe.handles:
        pytest.skip("this machine has an NVIDIA GPU")
    assert probe.sample() == {}
