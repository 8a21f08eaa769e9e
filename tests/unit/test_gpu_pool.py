"""A worker's GPUs as resources: each run takes exactly its GPUs, never one another run holds,
waits for them when they are busy, and is refused when the worker could never offer them."""

from __future__ import annotations

import threading
import time

import pytest

from worker import host


def _pool(n: int) -> host.GpuPool:
    return host.GpuPool([host.Gpu(i, f"GPU-{i}", "Test GPU", 1024) for i in range(n)])


def test_runs_take_distinct_gpus_and_give_them_back() -> None:
    pool = _pool(4)
    a = pool.take(1, 1, wait_s=0)
    b = pool.take(2, 2, wait_s=0)
    c = pool.take(3, 1, wait_s=0)
    held = [g.index for g in a + b + c]
    assert sorted(held) == [0, 1, 2, 3], "four GPUs, four holders, no GPU twice"
    assert pool.of(2) == sorted(g.index for g in b)
    with pytest.raises(TimeoutError):
        pool.take(4, 1, wait_s=0)
    pool.give_back(2)
    assert len(pool.take(4, 2, wait_s=0)) == 2


def test_a_run_waits_for_gpus_another_run_holds() -> None:
    pool = _pool(2)
    pool.take(1, 2, wait_s=0)
    beats: list[float] = []
    threading.Timer(1.5, pool.give_back, args=(1,)).start()
    started = time.monotonic()
    taken = pool.take(2, 2, wait_s=10, beat=lambda: beats.append(time.monotonic()))
    assert len(taken) == 2 and 1.0 < time.monotonic() - started < 5
    assert beats, "the run's heartbeat goes on while it waits"


def test_more_gpus_than_the_worker_has_is_refused_at_once() -> None:
    with pytest.raises(host.NotEnoughGpus, match="needs 3 GPUs; this worker has 2"):
        _pool(2).take(1, 3, wait_s=60)


def test_default_is_one_gpu_on_a_gpu_host_and_the_cpu_elsewhere() -> None:
    assert _pool(2).wanted(None) == 1
    assert _pool(0).wanted(None) == 0
    assert _pool(2).wanted(0) == 0


def test_the_training_process_sees_only_its_gpus() -> None:
    taken = [host.Gpu(3, "GPU-3", "x", 1), host.Gpu(5, "GPU-5", "x", 1)]
    env = host.child_env(taken, host_has_gpus=True)
    assert env["CUDA_VISIBLE_DEVICES"] == "3,5"
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert host.child_env([], host_has_gpus=True)["CUDA_VISIBLE_DEVICES"] == "", "a CPU run"
    assert host.child_env([], host_has_gpus=False) == {}


def test_fake_gpus_seam(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(host.FAKE_GPUS_ENV, "3")
    found = host.gpus()
    assert [g.index for g in found] == [0, 1, 2]
    assert host.probe(concurrency=3)["gpus"][2]["uuid"] == "GPU-fake-2"


def test_a_gpu_type_takes_only_gpus_of_that_type() -> None:
    pool = host.GpuPool(
        [
            host.Gpu(0, "GPU-0", "Tesla V100-PCIE-16GB", 1),
            host.Gpu(1, "GPU-1", "NVIDIA A100-SXM4-80GB", 1),
            host.Gpu(2, "GPU-2", "NVIDIA A100-SXM4-80GB", 1),
        ]
    )
    assert [g.index for g in pool.take(1, 2, wait_s=0, gpu_type="a100")] == [1, 2]
    with pytest.raises(host.NotEnoughGpus, match="needs 3 GPUs of type A100; this worker has 2"):
        pool.take(2, 3, wait_s=0, gpu_type="A100")
    with pytest.raises(TimeoutError):
        pool.take(3, 1, wait_s=0, gpu_type="A100")
    assert [g.index for g in pool.take(4, 1, wait_s=0)] == [0]


def test_fake_gpus_are_named_and_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(host.FAKE_GPUS_ENV, "2")
    monkeypatch.setenv(host.FAKE_GPU_NAME_ENV, "NVIDIA A100-SXM4-80GB")
    found = host.gpus()
    assert {g.name for g in found} == {"NVIDIA A100-SXM4-80GB"}
    assert host.probe(pool="research")["pool"] == "research"
    read = host.readings(found, busy={1})
    assert read[0] == host.FAKE_IDLE and read[1] == host.FAKE_BUSY
    assert set(read[1]) == {"util_pct", "memory_used_mb"}


def test_no_readings_without_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(host.FAKE_GPUS_ENV, raising=False)
    monkeypatch.setitem(__import__("sys").modules, "pynvml", None)  # import fails: no driver
    assert host.readings([host.Gpu(0, "GPU-0", "x", 1)]) == {}


def test_the_beat_reports_the_pool_its_own_queue_and_gpu_readings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from backend.config import get_settings
    from backend.workers.schemas import HostIn
    from worker import beat, runner

    monkeypatch.setenv(host.FAKE_GPUS_ENV, "2")
    monkeypatch.setenv("FITBOARD_POOL", "research")
    get_settings.cache_clear()
    monkeypatch.setattr(runner, "_pool", None)
    monkeypatch.setattr(runner, "_attempts", {7: 1})
    sent: list[dict[str, object]] = []
    monkeypatch.setattr(beat, "report_host", lambda url, token, name, body: sent.append(body))
    try:
        runner.gpu_pool().take(7, 1, wait_s=0)
        beat.HostBeat("w@box", concurrency=2).report_once()
    finally:
        get_settings.cache_clear()
    report = HostIn.model_validate(sent[0])  # what the API takes
    assert report.resources.pool == "research" and report.resources.own_queue
    assert [(g.util_pct, g.memory_used_mb) for g in report.resources.gpus] == [
        (50.0, 1024),
        (0.0, 0),
    ], "the busy GPU reads busy"
    assert report.running[0].run_id == 7 and report.running[0].gpus == [0]
