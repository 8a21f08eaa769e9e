"""The same API on SQLite (the embedded stack's database): large batches and deletes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.api.points_columns_cases import assert_same_points, send_both_ways
from tests.conftest import create_identity


@pytest.fixture(scope="module")
def sqlite_api(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Path]]:
    """The app in-process on a fresh SQLite file, as an admin; yields it and FITBOARD_HOME."""
    from backend.api.app import create_app
    from backend.config import get_settings
    from backend.db.migrate import upgrade
    from backend.dispatch import get_celery

    home = tmp_path_factory.mktemp("sqlite-home")
    url = f"sqlite:///{home / 'fitboard.db'}"
    upgrade(url)
    keys = ("DATABASE_URL", "REDIS_URL", "FITBOARD_HOME", "FITBOARD_QUEUE", "FITBOARD_AUTH")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(
        DATABASE_URL=url,
        REDIS_URL=redis_url,
        FITBOARD_HOME=str(home),
        FITBOARD_QUEUE="fitboard-sqlite-tests-unread",
        FITBOARD_AUTH="on",
    )
    get_settings.cache_clear()
    get_celery.cache_clear()
    admin = create_identity(url, "sqlite-admin", "admin")
    try:
        headers = {"Authorization": f"Bearer {admin.token}"}
        with TestClient(create_app(), headers=headers) as client:
            yield client, home
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
        get_celery.cache_clear()


def test_points_with_thousands_of_distinct_keys(sqlite_api: tuple[TestClient, Path]) -> None:
    api, _ = sqlite_api
    run_id = api.post("/api/v1/runs/external", json={"name": "keys"}).json()["id"]
    points = [{"key": f"k{i}", "step": 1, "value": float(i)} for i in range(3000)]
    r = api.post(f"/api/v1/runs/{run_id}/points", json={"uid": "many", "points": points})
    assert r.status_code == 200, r.text
    assert r.json()["points"] == 3000
    # an out-of-order step for every key drops their rollups, again in one post
    points = [{"key": f"k{i}", "step": 0, "value": 0.0} for i in range(3000)]
    r = api.post(f"/api/v1/runs/{run_id}/points", json={"uid": "back", "points": points})
    assert r.status_code == 200, r.text
    final = api.get(f"/api/v1/runs/{run_id}").json()["final_metrics"]
    assert len(final) == 3000 and final["k2999"] == 2999.0


def _finished_external_run(api: TestClient, name: str) -> int:
    run_id = int(api.post("/api/v1/runs/external", json={"name": name}).json()["id"])
    r = api.post(f"/api/v1/runs/{run_id}/finish", json={"status": "succeeded"})
    assert r.status_code == 200, r.text
    return run_id


def test_a_deleted_run_id_is_never_reused_and_its_log_goes(
    sqlite_api: tuple[TestClient, Path],
) -> None:
    api, home = sqlite_api
    newest = _finished_external_run(api, "to delete")
    log = home / "logs" / f"run-{newest}.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text("the deleted run's training log\n")
    assert api.delete(f"/api/v1/runs/{newest}").status_code == 204
    assert not log.exists()
    after = _finished_external_run(api, "after the delete")
    assert after > newest
    r = api.get(f"/api/v1/runs/{after}/log")
    assert r.status_code == 200 and r.json()["text"] == "", r.text


def test_runs_sweeps_and_datasets_tables_never_reuse_ids_on_sqlite(
    sqlite_api: tuple[TestClient, Path],
) -> None:
    from sqlalchemy import text

    from backend.db.session import session_scope

    with session_scope() as session:
        sql = dict(
            session.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")).all()
        )
    for table in ("runs", "sweeps", "datasets"):
        assert "AUTOINCREMENT" in sql[table], table


def test_columns_store_what_points_store_on_sqlite(sqlite_api: tuple[TestClient, Path]) -> None:
    api, home = sqlite_api
    by_points, by_columns = send_both_ways(api)
    assert_same_points(f"sqlite:///{home / 'fitboard.db'}", by_points, by_columns)
