"""Sweeps through the API on PostgreSQL: validation before anything is queued, bulk trials,
only max_concurrent dispatched, the next one on each finish, pruning decisions, cancel."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, exists, func, select, update

from backend.db.session import session_scope
from backend.housekeeping import sweep_once
from backend.metrics import service as metrics
from backend.metrics.service import Point
from backend.runs import service as runs
from backend.runs.models import Run, RunParam, RunSearch, RunStatus
from backend.sweeps import pruning, scheduler
from backend.sweeps.models import Sweep


def _body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "lr sweep",
        "preset": "digits-mlp",
        "overrides": {"fit": {"epochs": 2}},
        "space": {"compile.optimizer.learning_rate": {"choice": [0.01, 0.001, 0.0001]}},
        "strategy": "grid",
        "objective": "val_accuracy",
        "max_concurrent": 2,
    }
    body.update(changes)
    return body


def _counts() -> tuple[int, int]:
    with session_scope() as session:
        return (
            int(session.scalar(select(func.count()).select_from(Sweep)) or 0),
            int(session.scalar(select(func.count()).select_from(Run)) or 0),
        )


def _trials(sweep_id: int) -> list[Run]:
    with session_scope() as session:
        return list(
            session.scalars(select(Run).where(Run.sweep_id == sweep_id).order_by(Run.trial_number))
        )


def _dispatched(sweep_id: int) -> list[int]:
    return [r.id for r in _trials(sweep_id) if r.dispatched_at is not None]


@pytest.mark.parametrize(
    ("space", "field"),
    [
        ({"model.layers[7].rate": {"uniform": [0.1, 0.6]}}, "space.model.layers[7].rate"),
        ({"fit.batch_sizes": {"choice": [32]}}, "space.fit.batch_sizes"),
        ({"model.layers[2].rate": {"choice": [0.2, 1.5]}}, "space.model.layers[2].rate"),
        ({"fit.batch_size": {"int": [0, 64]}}, "space.fit.batch_size"),
    ],
)
def test_bad_space_is_422_naming_the_field_and_nothing_is_queued(
    api: TestClient, space: dict[str, Any], field: str
) -> None:
    before = _counts()
    r = api.post("/api/v1/sweeps", json=_body(space=space))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field
    assert field in r.json()["detail"]
    assert _counts() == before


def test_random_needs_max_trials_and_a_grid_needs_discrete_dimensions(api: TestClient) -> None:
    space = {"compile.optimizer.learning_rate": {"log_uniform": [1e-5, 1e-2]}}
    r = api.post("/api/v1/sweeps", json=_body(space=space, strategy="random"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "max_trials"
    r = api.post("/api/v1/sweeps", json=_body(space=space))
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "space.compile.optimizer.learning_rate"
    r = api.post("/api/v1/sweeps", json=_body(pruner={"kind": "nope"}))
    assert r.status_code == 422


def test_thousand_trial_grid_creates_every_run_but_dispatches_max_concurrent(
    api: TestClient,
) -> None:
    space = {
        "fit.batch_size": {"int": [1, 100]},
        "model.layers[2].rate": {"choice": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]},
    }
    r = api.post("/api/v1/sweeps", json=_body(name="big grid", space=space, max_concurrent=3))
    assert r.status_code == 201, r.text
    sweep = r.json()
    assert sweep["max_trials"] == 1000 and sweep["status"] == "running"
    assert sweep["progress"]["queued"] == 1000 and sweep["progress"]["created"] == 1000
    trials = _trials(sweep["id"])
    assert len(trials) == 1000
    assert [t.trial_number for t in trials] == list(range(1, 1001))
    assert {t.status for t in trials} == {"queued"}
    assert len(_dispatched(sweep["id"])) == 3
    last = trials[-1]
    assert last.trial_params == {"fit.batch_size": 100, "model.layers[2].rate": 0.9}
    assert last.spec["fit"]["batch_size"] == 100 and last.spec["model"]["layers"][2]["rate"] == 0.9
    assert last.launched_by_id == sweep["launched_by_id"] is not None
    with session_scope() as session:
        # the bulk insert wrote what an ORM insert would: search text and flattened params
        assert session.get(RunSearch, last.id) is not None
        param = session.get(RunParam, (last.id, "fit.batch_size"))
        assert param is not None and param.num_value == 100
        # ...the params just after the response, for every trial
        assert _unindexed(sweep["id"]) == 0
        assert session.get(Sweep, sweep["id"]).params_indexed  # type: ignore[union-attr]
    page = api.get("/api/v1/runs", params={"sweep": sweep["id"], "limit": 5}).json()
    assert page["total"] == 1000
    r = api.post(f"/api/v1/sweeps/{sweep['id']}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert r.json()["progress"]["cancelled"] == 1000
    assert api.post(f"/api/v1/sweeps/{sweep['id']}/cancel").status_code == 409


def _unindexed(sweep_id: int) -> int:
    with session_scope() as session:
        stmt = select(func.count()).where(
            Run.sweep_id == sweep_id, ~exists().where(RunParam.run_id == Run.id)
        )
        return int(session.scalar(stmt) or 0)


def test_housekeeping_indexes_params_an_interrupted_sweep_left_out(api: TestClient) -> None:
    space = {"fit.batch_size": {"int": [1, 300]}}
    r = api.post("/api/v1/sweeps", json=_body(name="interrupted", space=space))
    assert r.status_code == 201, r.text
    sweep_id = r.json()["id"]
    # as if the API stopped between the commit and the after-response job
    with session_scope() as session:
        run_ids = select(Run.id).where(Run.sweep_id == sweep_id).scalar_subquery()
        session.execute(delete(RunParam).where(RunParam.run_id.in_(run_ids)))
        session.execute(update(Sweep).where(Sweep.id == sweep_id).values(params_indexed=False))
    # the app's own housekeeping (every 2 s) may get there first; either way it ends indexed
    assert _unindexed(sweep_id) in (300, 0)
    sweep_once()
    assert _unindexed(sweep_id) == 0
    page = api.get(
        "/api/v1/runs", params={"sweep": sweep_id, "sort": "-param:fit.batch_size", "limit": 1}
    ).json()
    assert page["items"][0]["name"] == "interrupted #300"
    api.post(f"/api/v1/sweeps/{sweep_id}/cancel")


def _finish(run_id: int, status: RunStatus, objective: float | None = None) -> None:
    with session_scope() as session:
        assert runs.claim(session, run_id=run_id, worker_host="test")
    with session_scope() as session:
        if objective is not None:
            points: list[Point] = [
                {"key": "val_accuracy", "step": 1, "value": objective, "wall_time": 0.0}
            ]
            metrics.record(session, run_id=run_id, points=points, uid=f"t{run_id}")
        assert runs.finish(session, run_id=run_id, status=status)


def test_each_finished_trial_dispatches_the_next_and_the_sweep_finishes(api: TestClient) -> None:
    space = {"compile.optimizer.learning_rate": {"choice": [0.1, 0.01, 0.001, 0.0001]}}
    sweep = api.post("/api/v1/sweeps", json=_body(space=space, max_concurrent=2)).json()
    sweep_id = sweep["id"]
    first = _dispatched(sweep_id)
    assert len(first) == 2
    _finish(first[0], RunStatus.succeeded, 0.7)
    assert len(_dispatched(sweep_id)) == 3
    # the housekeeping top-up never over-dispatches: two are in flight already
    scheduler.top_up()
    assert len(_dispatched(sweep_id)) == 3
    _finish(first[1], RunStatus.pruned, 0.1)
    trials = _trials(sweep_id)
    assert len(_dispatched(sweep_id)) == 4
    _finish(trials[2].id, RunStatus.succeeded, 0.9)
    with session_scope() as session:  # a queued trial cancelled on its own also frees a slot
        runs.request_cancel(session, run_id=trials[3].id)
    got = api.get(f"/api/v1/sweeps/{sweep_id}").json()
    assert got["status"] == "finished" and got["finished_at"]
    assert got["progress"] | {"total": 4, "done": 4, "succeeded": 2, "pruned": 1} == got["progress"]
    assert got["progress"]["cancelled"] == 1
    assert got["best"] == {
        "run_id": trials[2].id,
        "trial_number": 3,
        "params": {"compile.optimizer.learning_rate": 0.001},
        "objective": 0.9,
    }
    listed = api.get(f"/api/v1/sweeps/{sweep_id}/trials").json()
    assert [t["status"] for t in listed["items"]] == [
        "succeeded",
        "pruned",
        "succeeded",
        "cancelled",
    ]
    assert [t["objective"] for t in listed["items"]] == [0.7, 0.1, 0.9, None]
    page = api.get("/api/v1/sweeps", params={"limit": 200}).json()
    assert sweep_id in [s["id"] for s in page["items"]]
    assert api.get("/api/v1/sweeps/999999").status_code == 404


def test_bayesian_trials_are_asked_for_as_slots_free(api: TestClient) -> None:
    space = {
        "compile.optimizer.learning_rate": {"log_uniform": [1e-4, 1e-1]},
        "model.layers[1].units": {"int": [16, 128], "step": 16},
    }
    name = "bayes \\ tab\there"  # COPY's text format escapes these
    body = _body(
        name=name, space=space, strategy="bayesian", max_trials=3, max_concurrent=2, seed=5
    )
    sweep = api.post("/api/v1/sweeps", json=body).json()
    trials = _trials(sweep["id"])
    assert len(trials) == 2 and len(_dispatched(sweep["id"])) == 2
    assert [t.name for t in trials] == [f"{name} #1", f"{name} #2"]
    _finish(trials[0].id, RunStatus.succeeded, 0.8)
    trials = _trials(sweep["id"])
    assert len(trials) == 3 and len(_dispatched(sweep["id"])) == 3
    for trial in trials:
        params = trial.trial_params or {}
        lr = params["compile.optimizer.learning_rate"]
        assert 1e-4 <= lr <= 1e-1 and trial.spec["compile"]["optimizer"]["learning_rate"] == lr
        assert params["model.layers[1].units"] % 16 == 0
    _finish(trials[1].id, RunStatus.succeeded, 0.6)
    _finish(trials[2].id, RunStatus.failed)
    assert len(_trials(sweep["id"])) == 3
    assert api.get(f"/api/v1/sweeps/{sweep['id']}").json()["status"] == "finished"


def test_median_pruning_decision_reads_the_other_trials_epochs(api: TestClient) -> None:
    body = _body(
        objective="val_loss",
        max_concurrent=3,
        pruner={"kind": "median", "warmup_epochs": 1, "min_trials": 2},
    )
    sweep = api.post("/api/v1/sweeps", json=body).json()
    assert sweep["direction"] == "minimize"
    a, b, c = (t.id for t in _trials(sweep["id"]))
    with session_scope() as session:
        for run_id, values in ((a, [0.5, 0.3]), (b, [0.6, 0.5])):
            points = [
                {"key": "val_loss", "step": i + 1, "value": v, "wall_time": 0.0}
                for i, v in enumerate(values)
            ]
            metrics.record(session, run_id=run_id, points=points, uid=f"p{run_id}")  # type: ignore[arg-type]
    with session_scope() as session:
        rule = pruning.rule_for(session, run_id=c)
        assert rule is not None and not rule.maximize
        assert pruning.decide(session, rule=rule, run_id=c, epoch=1, value=9.0) is None  # warmup
        assert pruning.decide(session, rule=rule, run_id=c, epoch=2, value=0.35) is None
        why = pruning.decide(session, rule=rule, run_id=c, epoch=2, value=0.9)
        assert why == "pruned at epoch 2: val_loss 0.9 worse than median 0.4 of 2 trials"
        plain = runs.submit(session, name="not a trial", preset="digits-mlp")
        session.flush()
        assert pruning.rule_for(session, run_id=plain.id) is None
        plain_id = plain.id
    api.post(f"/api/v1/sweeps/{sweep['id']}/cancel")
    api.post(f"/api/v1/runs/{plain_id}/cancel")  # the queue's tests count what is left queued


def test_asha_decision_at_rungs_through_sql(api: TestClient) -> None:
    space = {"compile.optimizer.learning_rate": {"choice": [0.1, 0.01, 0.001, 0.0001]}}
    body = _body(
        space=space,
        objective="val_accuracy",
        max_concurrent=4,
        pruner={"kind": "asha", "min_epochs": 1, "reduction_factor": 2},
    )
    sweep = api.post("/api/v1/sweeps", json=body).json()
    a, b, c, d = (t.id for t in _trials(sweep["id"]))
    with session_scope() as session:
        for run_id, value in ((a, 0.9), (b, 0.8), (c, 0.3)):
            points: list[Point] = [
                {"key": "val_accuracy", "step": 2, "value": value, "wall_time": 0.0}
            ]
            metrics.record(session, run_id=run_id, points=points, uid=f"a{run_id}")
    with session_scope() as session:
        rule = pruning.rule_for(session, run_id=d)
        assert rule is not None and rule.maximize
        assert pruning.decide(session, rule=rule, run_id=d, epoch=3, value=0.1) is None  # no rung
        # rung 2 with four trials and factor 2: the best two go on (cut-off 0.8)
        assert pruning.decide(session, rule=rule, run_id=d, epoch=2, value=0.85) is None
        why = pruning.decide(session, rule=rule, run_id=d, epoch=2, value=0.5)
        assert why is not None and why.startswith("pruned at epoch 2: val_accuracy 0.5 not in")
    api.post(f"/api/v1/sweeps/{sweep['id']}/cancel")
