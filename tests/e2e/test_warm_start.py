"""A warm start: the worker keeps a standby training process that has imported Keras and
TensorFlow before a run exists, hands it the next run, and starts the next standby. The run
says so in its first stage (process_started: warm), its log holds its own lines only, and the
run after it is warm too. (How much sooner it starts is measured in bench/startup.py.)"""

from __future__ import annotations

import os

import httpx
import pytest

from tests.conftest import LiveStack, start_worker, stop_process
from tests.e2e.helpers import iter_events, submit, wait_status

pytestmark = pytest.mark.e2e


def _started(live_stack: LiveStack, run_id: int) -> dict[str, object]:
    for event in iter_events(live_stack.url, run_id, after=0):
        if event.kind == "stage" and event.data.get("stage") == "process_started":
            return event.data
    raise AssertionError(f"run {run_id} reported no process_started stage")


def test_runs_start_in_a_standby_trainer(live_stack: LiveStack) -> None:
    with live_stack.client() as client:
        first = submit(client, "warm 1", {"fit": {"epochs": 1}})
        assert wait_status(client, first["id"], {"succeeded", "failed"})["status"] == "succeeded"
        second = submit(client, "warm 2", {"fit": {"epochs": 1}})
        assert wait_status(client, second["id"], {"succeeded", "failed"})["status"] == "succeeded"
        facts = _started(live_stack, second["id"])
        assert facts["warm"] is True, facts
        _assert_trains_low_streams_normal_heap_settled(facts)
        log = client.get(
            f"/api/v1/runs/{second['id']}/log", params={"offset": 0, "limit": 1_000_000}
        ).json()["text"]
        assert f"run={second['id']} event=fit_start" in log
        assert f"run={first['id']} " not in log, "each run's log holds its own lines only"


def _assert_trains_low_streams_normal_heap_settled(facts: dict[str, object]) -> None:
    """The training thread at the worker's priority + FITBOARD_TRAINER_NICE (5), the metric
    flusher at the worker's own (Linux keeps a nice value per thread: worker.trainer.priority),
    and TensorFlow's start-up objects out of the garbage collector's walks (backend.heap)."""
    worker_nice = os.getpriority(os.PRIO_PROCESS, 0)  # the stack's worker runs at ours
    assert facts["nice"] == {"training": worker_nice + 5, "streaming": worker_nice}, facts
    assert isinstance(facts["heap_frozen"], int) and facts["heap_frozen"] > 100_000, facts


_EPOCH_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


def _epoch_history(client: httpx.Client, run_id: int) -> dict[str, list[float]]:
    series = client.get(
        f"/api/v1/runs/{run_id}/metrics", params={"keys": ",".join(_EPOCH_KEYS)}
    ).json()["series"]
    return {key: series[key]["values"] for key in _EPOCH_KEYS}


def test_a_run_trains_in_a_standby_trainer_exactly_as_in_a_fresh_process(
    live_stack: LiveStack,
) -> None:
    """The same seeded spec, once in a fresh training process (a worker with standby trainers
    off, reached through its pool) and once in the stack worker's standby trainer: the same
    numbers, epoch by epoch, to the last bit (the standby must not leak its own seed, thread
    settings or Keras state into the run)."""
    fit = {"epochs": 3, "batch_size": 64, "seed": 7}
    env = {
        **live_stack.env,
        "FITBOARD_WARM_TRAINER": "false",
        "FITBOARD_POOL": f"fresh-{os.getpid()}",
        "FITBOARD_HOME": str(live_stack.home / "fresh-worker"),
    }
    fresh_worker = start_worker(env, live_stack.home / "logs" / "worker-fresh.out", "fresh")
    try:
        with live_stack.client() as client:
            fresh = submit(
                client,
                "fresh process",
                {"fit": fit, "resources": {"pool": env["FITBOARD_POOL"]}},
            )
            done = wait_status(client, fresh["id"], {"succeeded", "failed"}, timeout_s=240)
            assert done["status"] == "succeeded", done
    finally:
        stop_process(fresh_worker)
    with live_stack.client() as client:
        warm = submit(client, "standby trainer", {"fit": fit})
        done = wait_status(client, warm["id"], {"succeeded", "failed"})
        assert done["status"] == "succeeded", done
        fresh_facts = _started(live_stack, fresh["id"])
        assert fresh_facts["warm"] is False, fresh_facts
        _assert_trains_low_streams_normal_heap_settled(fresh_facts)
        assert _started(live_stack, warm["id"])["warm"] is True
        fresh_history = _epoch_history(client, fresh["id"])
        assert all(len(v) == fit["epochs"] for v in fresh_history.values()), fresh_history
        assert _epoch_history(client, warm["id"]) == fresh_history
