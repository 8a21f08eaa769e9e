"""What the pages remember per user (GET/PUT /auth/me/preferences), and what the runs table can
offer as columns: GET /runs/columns and the spec values GET /runs?with_params= carries."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect

from backend.db.session import session_scope
from backend.metrics import service as metrics
from backend.runs.models import Run
from tests.conftest import Identity, create_identity

PREFS = "/api/v1/auth/me/preferences"


@pytest.fixture(scope="module")
def other(pg_url: str, app_env: None) -> Identity:
    return create_identity(pg_url, f"prefs-{uuid.uuid4().hex[:8]}", "viewer")


def as_user(api: TestClient, who: Identity) -> TestClient:
    return TestClient(api.app, headers={"Authorization": f"Bearer {who.token}"})


def field_of(response_json: dict) -> str:
    return str(response_json["errors"][0]["field"])


def test_preferences_are_kept_per_user_and_replaced_whole(api: TestClient, other: Identity) -> None:
    viewer = as_user(api, other)
    assert viewer.get(PREFS).json() == {"runs_columns": None}
    columns = ["name", "status", "metric:val_accuracy", "param:fit.batch_size", "duration"]
    saved = viewer.put(PREFS, json={"runs_columns": columns})
    assert saved.status_code == 200, saved.text
    assert saved.json() == {"runs_columns": columns}
    assert viewer.get(PREFS).json() == {"runs_columns": columns}
    # another user (the admin) does not see them
    assert api.get(PREFS).json()["runs_columns"] != columns
    # a field left out goes back to its default
    assert viewer.put(PREFS, json={}).json() == {"runs_columns": None}
    assert viewer.get(PREFS).json() == {"runs_columns": None}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"runs_columns": ["name", "bogus"]}, "runs_columns.1"),
        ({"runs_columns": ["name", "metric:"]}, "runs_columns.1"),
        ({"runs_columns": ["param:fit..epochs"]}, "runs_columns.0"),
        ({"runs_columns": ["name", "name"]}, "runs_columns"),
        ({"runs_columns": [f"metric:m{i}" for i in range(61)]}, "runs_columns"),
        ({"runs_columns": "name"}, "runs_columns"),
        ({"theme": "dark"}, "theme"),
    ],
)
def test_bad_preferences_are_a_422_naming_the_field(
    api: TestClient, body: dict, field: str
) -> None:
    response = api.put(PREFS, json=body)
    assert response.status_code == 422, response.text
    assert field_of(response.json()) == field, response.json()


def test_a_stored_value_this_release_refuses_reads_as_the_default(
    api: TestClient, other: Identity
) -> None:
    from backend.users.models import User

    with session_scope() as session:
        user = session.get(User, other.user_id)
        assert user is not None
        user.preferences = {"runs_columns": ["gone-column"], "old": 1}
    assert as_user(api, other).get(PREFS).json() == {"runs_columns": None}


def test_columns_offer_final_metrics_and_spec_paths_and_rows_carry_asked_values(
    api: TestClient,
) -> None:
    word = f"cols{uuid.uuid4().hex[:8]}"
    body = {"name": word, "preset": "digits-mlp", "overrides": {"fit": {"batch_size": 48}}}
    created = api.post("/api/v1/runs", json=body)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    api.post(f"/api/v1/runs/{run_id}/cancel")
    key = f"val_{word}"
    with session_scope() as session:
        points = [
            metrics.Point(key=k, step=1, value=0.5, wall_time=0.0)
            for k in (key, "batch/loss", "sys/cpu")
        ]
        metrics.record(session, run_id=run_id, points=points, uid="finals")
        assert session.get(Run, run_id) is not None

    columns = api.get("/api/v1/runs/columns")
    assert columns.status_code == 200, columns.text
    assert key in columns.json()["metrics"]
    assert not any(k.startswith(("batch/", "sys/")) for k in columns.json()["metrics"])
    assert {"fit.batch_size", "fit.epochs"} <= set(columns.json()["params"])

    page = api.get("/api/v1/runs", params={"q": word, "with_params": "fit.batch_size,no.such.path"})
    assert page.status_code == 200, page.text
    (item,) = page.json()["items"]
    assert item["params"] == {"fit.batch_size": 48, "no.such.path": None}
    assert item["final_metrics"][key] == 0.5
    # without with_params, no values ride along
    assert api.get("/api/v1/runs", params={"q": word}).json()["items"][0]["params"] == {}


@pytest.mark.parametrize(
    "value", ["fit..batch_size", "fit.batch size", ",".join(f"p{i}" for i in range(61))]
)
def test_bad_with_params_is_a_422_naming_it(api: TestClient, value: str) -> None:
    response = api.get("/api/v1/runs", params={"with_params": value})
    assert response.status_code == 422, response.text
    assert field_of(response.json()) == "with_params", response.json()


def test_the_migration_goes_up_and_down_on_sqlite(tmp_path: Path) -> None:
    from alembic import command

    from backend.db.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'prefs.db'}"
    engine = create_engine(url)

    def columns() -> set[str]:
        return {c["name"] for c in inspect(engine).get_columns("users")}

    command.upgrade(alembic_config(url), "head")
    assert "preferences" in columns()
    command.downgrade(alembic_config(url), "0009")
    assert "preferences" not in columns()
    command.upgrade(alembic_config(url), "head")
    assert "preferences" in columns()
    engine.dispose()
