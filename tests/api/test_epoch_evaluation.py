"""GET /runs/{id}/evaluation/epochs and /evaluation/epochs/{epoch}; the spec option."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.db.session import session_scope
from backend.evaluation import service as evaluation
from backend.events.models import RunEvent


def _submit(api: TestClient, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "epochs", "preset": "digits-mlp", "overrides": overrides}
    response = api.post("/api/v1/runs", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _save(run_id: int, epoch: int, matrix: list[list[int]]) -> None:
    total = sum(map(sum, matrix))
    with session_scope() as session:
        evaluation.save_epoch(
            session,
            run_id=run_id,
            epoch=epoch,
            split="test",
            class_names=["cat", "dog"],
            confusion_matrix=matrix,
            report={"accuracy": (matrix[0][0] + matrix[1][1]) / total},
        )


def test_spec_option_is_typed_defaulted_and_in_the_schema(api: TestClient) -> None:
    assert _submit(api)["spec"]["evaluation"] == {"every_epoch": False}
    assert _submit(api, evaluation={"every_epoch": True})["spec"]["evaluation"]["every_epoch"]
    bad = api.post(
        "/api/v1/runs",
        json={"name": "x", "preset": "digits-mlp", "overrides": {"evaluation": {"every": 1}}},
    )
    assert bad.status_code == 422, bad.text
    schema = api.get("/api/v1/spec/schema").json()
    text = str(schema)
    assert "every_epoch" in text and "EvaluationSpec" in text


def test_epochs_listed_in_order_and_each_readable(api: TestClient) -> None:
    run_id = _submit(api, evaluation={"every_epoch": True})["id"]
    assert api.get(f"/api/v1/runs/{run_id}/evaluation/epochs").json() == {
        "run_id": run_id,
        "items": [],
    }
    _save(run_id, 2, [[3, 1], [0, 4]])
    _save(run_id, 1, [[2, 2], [2, 2]])
    listed = api.get(f"/api/v1/runs/{run_id}/evaluation/epochs").json()["items"]
    assert listed == [
        {"epoch": 1, "split": "test", "accuracy": 0.5},
        {"epoch": 2, "split": "test", "accuracy": 0.875},
    ]
    one = api.get(f"/api/v1/runs/{run_id}/evaluation/epochs/2").json()
    assert one["epoch"] == 2 and one["confusion_matrix"] == [[3, 1], [0, 4]]
    assert one["class_names"] == ["cat", "dog"] and one["report"]["accuracy"] == 0.875

    _save(run_id, 2, [[4, 0], [0, 4]])  # saved again (a retried write): replaced
    assert api.get(f"/api/v1/runs/{run_id}/evaluation/epochs/2").json()["confusion_matrix"] == [
        [4, 0],
        [0, 4],
    ]
    with session_scope() as session:
        events = session.scalars(
            select(RunEvent.data).where(
                RunEvent.run_id == run_id, RunEvent.kind == evaluation.EPOCH_EVENT
            )
        ).all()
    assert sorted(e["epoch"] for e in events) == [1, 2], "one live event per epoch"


def test_unknown_epoch_and_run_are_404(api: TestClient) -> None:
    run_id = _submit(api)["id"]
    missing = api.get(f"/api/v1/runs/{run_id}/evaluation/epochs/7")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert api.get("/api/v1/runs/999999999/evaluation/epochs").status_code == 404
    assert api.get("/api/v1/runs/999999999/evaluation/epochs/1").status_code == 404
