"""A warm start: the worker keeps a standby training process that has imported Keras and
TensorFlow before a run exists, hands it the next run, and starts the next standby. The run
says so in its first stage (process_started: warm), its log holds its own lines only, and the
run after it is warm too. (How much sooner it starts is measured in bench/startup.py.)"""

from __future__ import annotations

import pytest

from tests.conftest import LiveStack
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
        log = client.get(
            f"/api/v1/runs/{second['id']}/log", params={"offset": 0, "limit": 1_000_000}
        ).json()["text"]
        assert f"run={second['id']} event=fit_start" in log
        assert f"run={first['id']} " not in log, "each run's log holds its own lines only"
