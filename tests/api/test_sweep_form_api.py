"""What the New sweep form needs from the API: the dry run (trial count, the same 422s, nothing
stored) and hyperparameter importance once enough trials succeeded."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.runs.models import RunStatus
from tests.api.test_sweeps_api import _body, _counts, _finish, _trials

PREVIEW = "/api/v1/sweeps/preview"


@pytest.mark.parametrize(
    ("changes", "trials", "grid_points"),
    [
        ({}, 3, 3),
        (
            {
                "space": {
                    "compile.optimizer.learning_rate": {"choice": [0.1, 0.01]},
                    "model.layers[1].units": {"int": [16, 64], "step": 16},
                }
            },
            8,
            8,
        ),
        ({"max_trials": 2}, 2, 3),
        (
            {
                "strategy": "random",
                "max_trials": 40,
                "space": {"compile.optimizer.learning_rate": {"log_uniform": [1e-4, 1e-2]}},
            },
            40,
            None,
        ),
    ],
)
def test_preview_counts_trials_and_stores_nothing(
    api: TestClient, changes: dict[str, Any], trials: int, grid_points: int | None
) -> None:
    before = _counts()
    r = api.post(PREVIEW, json=_body(**changes))
    assert r.status_code == 200, r.text
    assert r.json()["trials"] == trials and r.json()["grid_points"] == grid_points
    assert r.json()["direction"] == "maximize"
    assert _counts() == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"space": {"model.layers[2].rate": {"choice": [0.2, 1.5]}}}, "space.model.layers[2].rate"),
        ({"space": {"fit.batch_sizes": {"choice": [32]}}}, "space.fit.batch_sizes"),
        ({"strategy": "random"}, "max_trials"),
        ({"max_concurrent": 0}, "max_concurrent"),
        ({"pruner": {"kind": "asha", "reduction_factor": 1}}, "pruner.asha.reduction_factor"),
        ({"preset": "no-such-preset"}, "preset"),
    ],
)
def test_preview_answers_the_same_422_as_create(
    api: TestClient, changes: dict[str, Any], field: str
) -> None:
    previewed = api.post(PREVIEW, json=_body(**changes))
    created = api.post("/api/v1/sweeps", json=_body(**changes))
    assert previewed.status_code == created.status_code == 422, previewed.text
    assert previewed.json()["errors"][0]["field"] == field
    assert created.json()["errors"][0]["field"] == field


def test_importance_waits_for_enough_trials_then_ranks_every_parameter(api: TestClient) -> None:
    space = {
        "compile.optimizer.learning_rate": {"choice": [0.1, 0.03, 0.01, 0.003, 0.001, 0.0003]},
        "fit.batch_size": {"choice": [32, 64]},
    }
    sweep = api.post(
        "/api/v1/sweeps", json=_body(space=space, max_trials=6, max_concurrent=6)
    ).json()
    trials = _trials(sweep["id"])
    url = f"/api/v1/sweeps/{sweep['id']}/importance"
    for trial in trials[:4]:
        lr = (trial.trial_params or {})["compile.optimizer.learning_rate"]
        _finish(trial.id, RunStatus.succeeded, 1.0 - 5 * lr)  # the objective follows lr only
    waiting = api.get(url).json()
    assert waiting | {"finished": 4, "needed": 5, "items": [], "evaluator": "fanova"} == waiting
    _finish(trials[4].id, RunStatus.failed)  # a failed trial does not count
    assert api.get(url).json()["finished"] == 4
    _finish(trials[5].id, RunStatus.succeeded, 0.5)
    ready = api.get(url).json()
    assert ready["finished"] == 5 and ready["objective"] == "val_accuracy"
    items = ready["items"]
    assert {i["param"] for i in items} == set(space)
    assert sum(i["importance"] for i in items) == pytest.approx(1.0)
    assert items[0]["param"] == "compile.optimizer.learning_rate"
    assert api.get(url).json() == ready  # from the cache: the same numbers
    assert api.get("/api/v1/sweeps/999999/importance").status_code == 404
