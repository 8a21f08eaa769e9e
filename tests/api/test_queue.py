"""The queue, seen and steered: queued runs wait in SQL and go to the broker in order
(moved to top, priority, fair share between launchers, age) as the workers that report for
the queue free slots; GET /api/v1/queue shows that order and why each run waits."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import update

from backend import dispatch
from backend.config import get_settings
from backend.db.base import utcnow
from backend.db.session import session_scope
from backend.housekeeping import sweep_once
from backend.runs.models import Run
from backend.workers.models import WorkerHost
from tests.conftest import Identity, create_identity


@pytest.fixture
def queue(api: TestClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A queue of this test's own (the app reads its settings on each call)."""
    name = f"fitboard-queue-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("FITBOARD_QUEUE", name)
    get_settings.cache_clear()
    dispatch.get_celery.cache_clear()
    yield name
    client = redis.Redis.from_url(get_settings().redis_url)
    for key in client.scan_iter(match=f"{name}*"):
        client.delete(key)
    monkeypatch.undo()
    get_settings.cache_clear()
    dispatch.get_celery.cache_clear()


def _client(api: TestClient, identity: Identity) -> TestClient:
    return TestClient(api.app, headers={"Authorization": f"Bearer {identity.token}"})


def _person(api: TestClient, pg_url: str, role: str = "member") -> TestClient:
    return _client(api, create_identity(pg_url, f"q-{role}-{uuid.uuid4().hex[:6]}", role))


def _worker(api: TestClient) -> TestClient:
    token = api.post("/api/v1/worker-tokens", json={"name": "queue"}).json()["token"]
    return TestClient(api.app, headers={"Authorization": f"Bearer {token}"})


def _report(
    worker: TestClient,
    name: str,
    queue: str,
    *,
    concurrency: int,
    gpus: int = 0,
    gpu_name: str = "Fake",
    pool: str | None = None,
) -> None:
    body = {
        "host": "box",
        "resources": {
            "concurrency": concurrency,
            "queue": queue,
            "pool": pool,
            "own_queue": True,
            "gpus": [{"index": i, "name": gpu_name, "memory_mb": 1000} for i in range(gpus)],
        },
    }
    response = worker.put(f"/api/v1/worker/hosts/{name}", json=body)
    assert response.status_code == 200, response.text


def _silence(name: str) -> None:
    """The worker's last report is old: it is offline (without another report's release)."""
    with session_scope() as session:
        session.execute(
            update(WorkerHost)
            .where(WorkerHost.name == name)
            .values(last_seen_at=utcnow() - timedelta(minutes=5))
        )


def _wake(name: str) -> None:
    with session_scope() as session:
        session.execute(
            update(WorkerHost).where(WorkerHost.name == name).values(last_seen_at=utcnow())
        )


def _submit(client: TestClient, name: str, **extra: Any) -> int:
    body = {"name": name, "preset": "digits-mlp", **extra}
    response = client.post("/api/v1/runs", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _sent(run_ids: list[int]) -> set[int]:
    with session_scope() as session:
        return {i for i in run_ids if session.get(Run, i).dispatched_at is not None}  # type: ignore[union-attr]


def _order(api: TestClient, run_ids: list[int]) -> list[int]:
    listed = api.get("/api/v1/queue").json()
    return [item["run_id"] for item in listed["items"] if item["run_id"] in run_ids]


def test_the_queue_orders_by_priority_then_fair_share_then_age(
    api: TestClient, pg_url: str, queue: str
) -> None:
    worker = _worker(api)
    name = f"w-{queue}@box"
    _report(worker, name, queue, concurrency=1)
    blocker = _submit(api, "takes the only slot")
    assert _sent([blocker]) == {blocker}, "a free slot: sent at once"
    busy, colleague = _person(api, pg_url), _person(api, pg_url)
    many = [_submit(busy, f"trial {n}") for n in range(20)]
    single = _submit(colleague, "my one run")
    low = _submit(api, "whenever", priority="low")
    urgent = _submit(api, "now please", priority="high")
    mine = [blocker, *many, single, low, urgent]
    assert _sent(mine) == {blocker}, "no room: the rest wait in SQL, not in the broker"

    order = _order(api, mine)
    assert order[:5] == [blocker, urgent, many[0], single, many[1]], order
    assert order[-1] == low
    assert order[5:-1] == many[2:]
    listed = {i["run_id"]: i for i in api.get("/api/v1/queue").json()["items"]}
    assert listed[blocker]["sent"] and listed[blocker]["waiting"].startswith("sent")
    assert listed[single]["launched_by"].startswith("q-member-")
    assert listed[urgent]["priority"] == "high" and listed[low]["priority"] == "low"
    assert listed[many[5]]["waiting"].startswith("behind ")
    assert listed[urgent]["position"] < listed[many[0]]["position"]

    # the colleague raises their own run; the busy member may not touch it
    assert busy.post(f"/api/v1/runs/{single}/priority", json={"priority": "low"}).status_code == 403
    raised = colleague.post(f"/api/v1/runs/{single}/priority", json={"priority": "high"})
    assert raised.status_code == 200 and raised.json()["priority"] == "high"
    # both high now: fair share puts the colleague (nothing in flight) before the admin
    assert _order(api, mine)[1:3] == [single, urgent]
    # a member cannot move to the top; an admin can, and the latest move goes first
    assert busy.post(f"/api/v1/runs/{many[19]}/move-to-top").status_code == 403
    assert api.post(f"/api/v1/runs/{many[19]}/move-to-top").status_code == 200
    assert api.post(f"/api/v1/runs/{low}/move-to-top").status_code == 200
    assert _order(api, mine)[:5] == [blocker, low, many[19], single, urgent]
    bad = api.post(f"/api/v1/runs/{low}/priority", json={"priority": "urgent"})
    assert bad.status_code == 422
    # a started or finished run has no place in the queue to change
    assert api.post(f"/api/v1/runs/{low}/cancel").status_code == 200
    gone = api.post(f"/api/v1/runs/{low}/priority", json={"priority": "high"})
    assert gone.status_code == 409
    assert low not in _order(api, mine)
    for run_id in mine:
        api.post(f"/api/v1/runs/{run_id}/cancel")


def test_housekeeping_sends_the_next_runs_in_order_as_slots_free(
    api: TestClient, pg_url: str, queue: str
) -> None:
    worker = _worker(api)
    name = f"w-{queue}@box"
    _report(worker, name, queue, concurrency=2)
    _silence(name)  # reported once, offline now: runs wait for it
    other = _person(api, pg_url)
    first = _submit(api, "normal, oldest")
    second = _submit(api, "normal")
    low = _submit(api, "low", priority="low")
    high = _submit(api, "high", priority="high")
    theirs = _submit(other, "another launcher's")
    gpu_run = _submit(api, "two GPUs", overrides={"resources": {"gpus": 2}})
    mine = [first, second, low, high, theirs, gpu_run]
    assert _sent(mine) == set()
    listed = {i["run_id"]: i for i in api.get("/api/v1/queue").json()["items"]}
    assert listed[first]["waiting"].startswith("waiting: no live worker")

    _wake(name)
    sweep_once()  # the housekeeping finds two free slots: the two first in order go
    # high first; then, at normal, fair share: the other launcher has nothing in flight yet
    assert _sent(mine) == {high, theirs}
    listed = {i["run_id"]: i for i in api.get("/api/v1/queue").json()["items"]}
    assert listed[gpu_run]["waiting"] == (
        "waiting: no live worker offers 2 GPUs (the most any offers is 0)"
    )
    sweep_once()
    assert _sent(mine) == {high, theirs}, "sent and not yet taken: they hold the slots"

    # the worker takes both; one ends: its slot goes to the next in order
    for run_id in (high, theirs):
        claimed = worker.post(f"/api/v1/worker/runs/{run_id}/claim", json={"host": name})
        assert claimed.status_code == 200, claimed.text
    sweep_once()
    assert _sent([first, second, low, gpu_run]) == set()
    ended = worker.post(
        f"/api/v1/worker/runs/{high}/finish", json={"attempt": 1, "status": "succeeded"}
    )
    assert ended.status_code == 200, ended.text
    assert _sent([first, second, low, gpu_run]) == {first}, "sent at once, on the end"
    # a worker with 2 GPUs and 2 slots joins: the next run takes a slot and one GPU (a run
    # without a GPU count gets one on a GPU worker), so the 2-GPU run cannot go; the low one can
    _report(worker, f"big-{queue}@box", queue, concurrency=2, gpus=2)
    assert _sent([second, low, gpu_run]) == {second, low}
    listed = {i["run_id"]: i for i in api.get("/api/v1/queue").json()["items"]}
    assert listed[gpu_run]["gpus"] == 2 and not listed[gpu_run]["sent"]
    for run_id in mine:
        api.post(f"/api/v1/runs/{run_id}/cancel")
        ended = {"attempt": 1, "status": "cancelled"}
        worker.post(f"/api/v1/worker/runs/{run_id}/finish", json=ended)


def test_without_reporting_workers_runs_are_sent_at_once(api: TestClient, queue: str) -> None:
    """A worker from before the reports never says it has room: nothing may wait for it."""
    run_ids = [_submit(api, f"old worker {n}", priority="low") for n in range(3)]
    assert _sent(run_ids) == set(run_ids)
    for run_id in run_ids:
        api.post(f"/api/v1/runs/{run_id}/cancel")


def test_a_sweep_gives_its_priority_to_its_trials(api: TestClient, queue: str) -> None:
    body = {
        "name": "prio sweep",
        "preset": "digits-mlp",
        "space": {"fit.batch_size": {"choice": [32, 64]}},
        "strategy": "grid",
        "objective": "val_accuracy",
        "max_concurrent": 1,
        "priority": "high",
    }
    created = api.post("/api/v1/sweeps", json=body)
    assert created.status_code == 201, created.text
    sweep = created.json()
    assert sweep["priority"] == "high"
    trials = api.get("/api/v1/runs", params={"sweep": sweep["id"]}).json()["items"]
    assert {t["priority"] for t in trials} == {"high"}
    listed = [i for i in api.get("/api/v1/queue").json()["items"] if i["sweep_id"] == sweep["id"]]
    assert len(listed) == 2
    assert any("waiting for a slot of sweep" in i["waiting"] for i in listed)
    api.post(f"/api/v1/sweeps/{sweep['id']}/cancel")


def test_a_big_sweep_takes_its_fair_share_and_no_more(
    api: TestClient, pg_url: str, queue: str
) -> None:
    """A sweep's trials wait in the queue like any run once their sweep lets them go: one
    member's 50 trials do not starve a colleague's run at the same priority."""
    worker = _worker(api)
    name = f"w-{queue}@box"
    _report(worker, name, queue, concurrency=1)
    busy, colleague = _person(api, pg_url), _person(api, pg_url)
    body = {
        "name": "fifty",
        "preset": "digits-mlp",
        "space": {"fit.batch_size": {"int": [1, 50]}},
        "strategy": "grid",
        "objective": "val_accuracy",
        "max_concurrent": 50,
    }
    created = busy.post("/api/v1/sweeps", json=body)
    assert created.status_code == 201, created.text
    sweep_id = created.json()["id"]
    trials = [t["id"] for t in _listed_trials(api, sweep_id)]
    assert len(trials) == 50
    assert _sent(trials) == {trials[0]}, "one free slot: one trial sent, 49 wait in SQL"
    claimed = worker.post(f"/api/v1/worker/runs/{trials[0]}/claim", json={"host": name})
    assert claimed.status_code == 200, claimed.text
    single = _submit(colleague, "my one run")
    assert _sent([single]) == set(), "no room yet"
    listed = {i["run_id"]: i for i in api.get("/api/v1/queue").json()["items"]}
    assert listed[single]["position"] < listed[trials[1]]["position"], "fair share"

    # room for one more: the colleague's run goes before the sweep's next trial
    _report(worker, name, queue, concurrency=2)
    assert _sent([single, *trials[1:]]) == {single}
    # the trial ends: the launcher with fewer runs in flight is the sweep's now
    ended = worker.post(
        f"/api/v1/worker/runs/{trials[0]}/finish", json={"attempt": 1, "status": "succeeded"}
    )
    assert ended.status_code == 200, ended.text
    assert _sent(trials[1:]) == {trials[1]}
    assert api.post(f"/api/v1/sweeps/{sweep_id}/cancel").status_code == 200
    api.post(f"/api/v1/runs/{single}/cancel")
    _silence(name)


def test_a_sweep_still_caps_its_trials_in_flight(api: TestClient, queue: str) -> None:
    worker = _worker(api)
    name = f"w-{queue}@box"
    _report(worker, name, queue, concurrency=4, gpus=2)
    body = {
        "name": "capped",
        "preset": "digits-mlp",
        "overrides": {"resources": {"gpus": 1}},
        "space": {"fit.batch_size": {"int": [1, 5]}},
        "strategy": "grid",
        "objective": "val_accuracy",
        "max_concurrent": 3,
    }
    created = api.post("/api/v1/sweeps", json=body)
    assert created.status_code == 201, created.text
    sweep_id = created.json()["id"]
    trials = [t["id"] for t in _listed_trials(api, sweep_id)]
    # the sweep lets three go; the dispatcher books GPUs: 2 free, 1 a trial, so two are sent
    assert _sent(trials) == set(trials[:2])
    sweep_once()
    assert _sent(trials) == set(trials[:2]), "no over-dispatch from the housekeeping"
    listed = {i["run_id"]: i for i in api.get("/api/v1/queue").json()["items"]}
    assert listed[trials[2]]["waiting"].startswith("behind ")
    assert listed[trials[3]]["waiting"].startswith("waiting for a slot of sweep")
    assert api.post(f"/api/v1/sweeps/{sweep_id}/cancel").status_code == 200
    _silence(name)  # the next modules' tests see no worker of this one online


def test_the_dispatcher_reads_the_queue_in_the_order_it_shows(
    api: TestClient, pg_url: str, queue: str
) -> None:
    """The dispatcher reads the held runs in SQL, a page at a time (runqueue.reads); that
    order is order.ordered's, which GET /api/v1/queue shows."""
    from backend.runqueue import reads
    from backend.runqueue import service as runqueue
    from backend.runqueue.order import ordered

    worker = _worker(api)
    name = f"w-{queue}@box"
    _report(worker, name, queue, concurrency=1)
    blocker = _submit(api, "in flight: the admin's fair share counts it")
    busy, colleague = _person(api, pg_url), _person(api, pg_url)
    mine = [blocker]
    for n in range(5):
        mine.append(_submit(busy, f"busy {n}", overrides={"resources": {"gpus": n % 3}}))
    mine += [_submit(colleague, f"colleague {n}") for n in range(2)]
    mine += [_submit(colleague, "urgent", priority="high"), _submit(api, "later", priority="low")]
    mine += [_submit(api, "mine"), _submit(busy, "busy, low", priority="low")]
    assert api.post(f"/api/v1/runs/{mine[3]}/move-to-top").status_code == 200
    assert api.post(f"/api/v1/runs/{mine[-1]}/move-to-top").status_code == 200
    with session_scope() as session:
        flying = runqueue._in_flight_by_launcher(session)
        in_sql = [
            w.run_id for w in reads.held_in_order(session, base=queue, in_flight=flying, page=3)
        ]
        held = runqueue._held(session, base=queue)
        assert in_sql == [w.run_id for w in ordered(held, in_flight=flying)]
    assert set(in_sql) >= set(mine[1:]) and blocker not in in_sql
    assert in_sql[:2] == [mine[-1], mine[3]], "moved to the top: the latest move first"
    for run_id in mine:
        api.post(f"/api/v1/runs/{run_id}/cancel")
    _silence(name)


def _listed_trials(api: TestClient, sweep_id: int) -> list[dict[str, Any]]:
    page = api.get("/api/v1/runs", params={"sweep": sweep_id, "limit": 200}).json()
    return sorted(page["items"], key=lambda t: t["id"])


def _queue_of(run_id: int) -> str | None:
    with session_scope() as session:
        return session.get(Run, run_id).queue  # type: ignore[union-attr]


def test_a_run_for_a_gpu_type_or_a_pool_goes_only_to_a_worker_that_offers_them(
    api: TestClient, queue: str
) -> None:
    worker = _worker(api)
    _report(worker, f"cpu-{queue}@box", queue, concurrency=4)
    _report(worker, f"v100-{queue}@box", queue, concurrency=4, gpus=2, gpu_name="Tesla V100")
    typed = _submit(api, "two A100s", overrides={"resources": {"gpus": 2, "gpu_type": "A100"}})
    pooled = _submit(api, "research pool", overrides={"resources": {"pool": "research"}})
    one_typed = _submit(api, "an A100", overrides={"resources": {"gpu_type": "a100"}})
    assert _sent([typed, pooled, one_typed]) == set(), "no worker offers them: none is sent"
    listed = {i["run_id"]: i for i in api.get("/api/v1/queue").json()["items"]}
    why = "waiting: no live worker offers 2 GPUs of type A100 (the most any offers is 0)"
    assert listed[typed]["waiting"] == why and listed[typed]["gpus"] == 2
    assert api.get(f"/api/v1/runs/{typed}").json()["waiting"] == why
    assert listed[pooled]["waiting"] == "waiting: no live worker in pool research"
    assert listed[one_typed]["gpus"] == 1, "a GPU type without a count asks for one"
    assert (listed[typed]["gpu_type"], listed[pooled]["pool"]) == ("A100", "research")

    # a research worker with two A100s joins: both its GPUs go to the 2-GPU run, and the
    # pool's CPU run takes its second slot; each goes to that worker's own queue
    big = f"a100-{queue}@box"
    _report(
        worker,
        big,
        queue,
        concurrency=2,
        gpus=2,
        gpu_name="NVIDIA A100-SXM4-80GB",
        pool="research",
    )
    assert _sent([typed, pooled, one_typed]) == {typed, pooled}
    assert _queue_of(typed) == _queue_of(pooled) == f"{queue}.on-{big}"
    client = redis.Redis.from_url(get_settings().redis_url)
    assert client.llen(f"{queue}.on-{big}") == 2, "the messages wait on the worker's own queue"
    listed = {i["run_id"]: i for i in api.get("/api/v1/queue").json()["items"]}
    # behind the runs already sent (its two, and other tests' runs in this database)
    behind = re.fullmatch(r"behind (\d+) runs", listed[one_typed]["waiting"])
    assert behind and int(behind.group(1)) >= 2, "an A100 may come free"
    fleet = {w["name"]: w for w in api.get("/api/v1/workers").json()["items"]}
    assert fleet[big]["pool"] == "research" and fleet[f"cpu-{queue}@box"]["pool"] is None

    # it goes offline before taking them: they are held again, for another worker
    _silence(big)
    sweep_once()
    assert _sent([typed, pooled, one_typed]) == set()
    assert _queue_of(typed) == f"{queue}.gpus-2" and _queue_of(pooled) == queue
    for run_id in (typed, pooled, one_typed):
        api.post(f"/api/v1/runs/{run_id}/cancel")


def test_a_gpu_type_needs_a_gpu_and_waits_for_a_worker_report(api: TestClient, queue: str) -> None:
    bad = api.post(
        "/api/v1/runs",
        json={
            "name": "cpu A100",
            "preset": "digits-mlp",
            "overrides": {"resources": {"gpus": 0, "gpu_type": "A100"}},
        },
    )
    assert bad.status_code == 422 and "gpu_type" in bad.text
    # no worker reports for this queue: plain runs go at once, a pooled one waits for a report
    plain = _submit(api, "plain", priority="low")
    pooled = _submit(api, "pooled", overrides={"resources": {"pool": "research"}})
    assert _sent([plain, pooled]) == {plain}
    for run_id in (plain, pooled):
        api.post(f"/api/v1/runs/{run_id}/cancel")
