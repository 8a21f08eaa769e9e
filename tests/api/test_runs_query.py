"""The runs list as the history page uses it: search, filters, sorts, paging, edit and delete.

Every test tags its runs with a fresh tag and filters on it, so runs other tests left in the
shared database never show up in the rows compared.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from backend.artifacts import service as artifacts
from backend.artifacts.models import Artifact
from backend.artifacts.store import get_store
from backend.db.session import session_scope
from backend.events.models import RunEvent
from backend.metrics import service as metrics
from backend.metrics.models import LatestMetric, MetricPoint
from backend.runs import query
from backend.runs import service as runs_service
from backend.runs.models import Run, RunStatus, RunTag

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def new_tag() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def make_run(
    api: TestClient,
    name: str,
    *,
    tags: list[str],
    preset: str = "digits-mlp",
    overrides: dict[str, Any] | None = None,
    notes: str | None = None,
    **columns: Any,
) -> int:
    """A run through the API, tagged; columns (status, timings) then set in the database."""
    body: dict[str, Any] = {"name": name, "preset": preset}
    if overrides:
        body["overrides"] = overrides
    response = api.post("/api/v1/runs", json=body)
    assert response.status_code == 201, response.text
    run_id = int(response.json()["id"])
    patch: dict[str, Any] = {"tags": tags}
    if notes is not None:
        patch["notes"] = notes
    assert api.patch(f"/api/v1/runs/{run_id}", json=patch).status_code == 200
    columns.setdefault("status", RunStatus.cancelled.value)
    with session_scope() as session:
        session.execute(update(Run).where(Run.id == run_id).values(**columns))
    return run_id


def final_metric(run_id: int, key: str, value: float) -> None:
    point = metrics.Point(key=key, step=1, value=value, wall_time=0.0)
    with session_scope() as session:
        metrics.record(session, run_id=run_id, points=[point], uid=f"m-{key}")


def listed(api: TestClient, **params: Any) -> list[int]:
    response = api.get("/api/v1/runs", params=params)
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["items"]]


def error_fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] in {"validation_error", "invalid"}
    return [e["field"] for e in body["errors"]]


# ---- edit ----


def test_patch_sets_name_tags_and_notes(api: TestClient) -> None:
    tag = new_tag()
    run_id = make_run(api, "before", tags=[tag])
    response = api.patch(
        f"/api/v1/runs/{run_id}",
        json={
            "name": "  after  ",
            "tags": [" zeta ", "alpha", "zeta", tag],
            "notes": "lr too high",
        },
    )
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["name"] == "after"
    assert run["tags"] == sorted(["zeta", "alpha", tag]), "trimmed, deduplicated, sorted"
    assert run["notes"] == "lr too high"
    assert run["spec"]["dataset"]["name"] == "digits", "RunOut keeps its spec"

    # a field left out stays; tags given replace the old ones
    run = api.patch(f"/api/v1/runs/{run_id}", json={"tags": [tag, "alpha"]}).json()
    assert (run["name"], run["notes"], run["tags"]) == ("after", "lr too high", ["alpha", tag])
    summary = api.get("/api/v1/runs", params={"tag": tag}).json()["items"][0]
    assert summary["tags"] == ["alpha", tag] and "notes" not in summary
    assert api.patch(f"/api/v1/runs/{run_id}", json={"tags": []}).json()["tags"] == []
    assert api.patch("/api/v1/runs/99999999", json={"notes": "x"}).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tags": [""]}, "tags.0"),
        ({"tags": ["ok", "   "]}, "tags.1"),
        ({"tags": ["x" * 51]}, "tags.0"),
        ({"tags": [f"tag{i}" for i in range(21)]}, "tags"),
        ({"tags": "not-a-list"}, "tags"),
        ({"tags": None}, "tags"),
        ({"notes": "x" * 10_001}, "notes"),
        ({"notes": 5}, "notes"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": None}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"status": "succeeded"}, "status"),
    ],
)
def test_patch_rejects_bad_input_naming_the_field(
    api: TestClient, body: dict[str, Any], field: str
) -> None:
    tag = new_tag()
    run_id = make_run(api, "patch me", tags=[tag], notes="keep")
    assert field in error_fields(api.patch(f"/api/v1/runs/{run_id}", json=body))
    run = api.get(f"/api/v1/runs/{run_id}").json()
    assert (run["name"], run["tags"], run["notes"]) == ("patch me", [tag], "keep"), "unchanged"


def test_twenty_tags_and_fifty_characters_are_fine(api: TestClient) -> None:
    tags = [f"{i:02d}" + "x" * 48 for i in range(20)]
    run_id = make_run(api, "many tags", tags=[new_tag()])
    response = api.patch(f"/api/v1/runs/{run_id}", json={"tags": [*tags, tags[0]]})
    assert response.status_code == 200, response.text
    assert response.json()["tags"] == tags


# ---- search and filters ----


def test_search_matches_name_tags_and_notes_case_insensitively(api: TestClient) -> None:
    tag = new_tag()
    by_name = make_run(api, "Sweep LEARNING-rate 100%", tags=[tag])
    by_tag = make_run(api, "b", tags=[tag, "Learning-Curve"])
    by_notes = make_run(api, "c", tags=[tag], notes="Overfits: needs more LEARNING.")
    other = make_run(api, "d", tags=[tag], notes="nothing here")

    assert set(listed(api, tag=tag, q="learning")) == {by_name, by_tag, by_notes}
    assert listed(api, tag=tag, q="  learning   CURVE ") == [by_tag], "every word must match"
    assert listed(api, tag=tag, q="overfits") == [by_notes]
    assert listed(api, tag=tag, q="100%") == [by_name]
    assert listed(api, tag=tag, q="%") == [by_name], "% is a character, not a wildcard"
    assert listed(api, tag=tag, q="_") == [], "_ is a character, not a wildcard"
    assert listed(api, tag=tag, q="nothing") == [other]
    # a word never spans two fields: name "b" + tag "t-..." is not "bt-"
    assert listed(api, tag=tag, q=f"b{tag}") == []
    assert set(listed(api, tag=tag, q="")) == {by_name, by_tag, by_notes, other}


def test_filters_by_status_dataset_preset_and_tags(api: TestClient) -> None:
    tag, second = new_tag(), new_tag()
    ok = make_run(api, "ok", tags=[tag, second], status="succeeded")
    failed = make_run(api, "failed", tags=[tag], status="failed")
    queued = make_run(api, "queued", tags=[tag], status="queued")
    mnist = make_run(api, "mnist", tags=[tag], preset="mnist-mlp", status="succeeded")

    assert listed(api, tag=tag, status="succeeded") == [mnist, ok]
    assert listed(api, tag=tag, status="failed,queued") == [queued, failed]
    assert listed(api, tag=tag, status=["failed", "queued"]) == [queued, failed]
    assert listed(api, tag=tag, dataset="mnist") == [mnist]
    assert listed(api, tag=tag, dataset="digits") == [queued, failed, ok]
    assert listed(api, tag=tag, preset="mnist-mlp") == [mnist]
    assert listed(api, tag=[tag, second]) == [ok], "several tags: runs with all of them"
    assert listed(api, tag=tag.upper()) == [], "tags match exactly"
    assert "status" in error_fields(api.get("/api/v1/runs", params={"status": "ok,bogus"}))


def test_filters_by_creation_date_range(api: TestClient) -> None:
    tag = new_tag()
    early = make_run(api, "early", tags=[tag], created_at=T0)
    late_evening = make_run(api, "late", tags=[tag], created_at=T0 + timedelta(hours=11.5))
    next_day = make_run(api, "next", tags=[tag], created_at=T0 + timedelta(days=1))

    assert listed(api, tag=tag, created_after="2025-03-10", created_before="2025-03-11") == [
        late_evening,
        early,
    ]
    assert listed(api, tag=tag, created_after="2025-03-11") == [next_day]
    assert listed(api, tag=tag, created_before="2025-03-10T12:00:00Z") == []
    assert listed(api, tag=tag, created_after="2025-03-10T12:00:00Z") == [
        next_day,
        late_evening,
        early,
    ], "created_after is inclusive"
    # a zone is honoured: 13:30+01:00 is 12:30 UTC
    assert listed(api, tag=tag, created_after="2025-03-10T13:30:00+01:00") == [
        next_day,
        late_evening,
    ]
    assert listed(api, tag=tag, created_before="2025-03-10T12:30:00") == [early], "naive is UTC"
    for param in ("created_after", "created_before"):
        for bad in ("yesterday", "2025-13-01", "2025-03-10T25:00"):
            assert param in error_fields(api.get("/api/v1/runs", params={param: bad}))


# ---- sort ----


def test_sort_by_columns_both_ways(api: TestClient) -> None:
    tag = new_tag()
    a = make_run(
        api,
        "alpha",
        tags=[tag],
        status="succeeded",
        created_at=T0,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=30),
    )
    b = make_run(
        api,
        "Bravo",
        tags=[tag],
        preset="mnist-mlp",
        status="failed",
        created_at=T0 + timedelta(minutes=1),
        started_at=T0,
        finished_at=T0 + timedelta(seconds=90),
    )
    c = make_run(api, "charlie", tags=[tag], status="queued", created_at=T0 + timedelta(minutes=2))

    def check(sort: str, expected: list[int]) -> None:
        assert listed(api, tag=tag, sort=sort) == expected, sort

    check("created_at", [a, b, c])
    check("-created_at", [c, b, a])
    check("name", [a, b, c])  # case-insensitive: Bravo between alpha and charlie
    check("-name", [c, b, a])
    check("status", [c, a, b])  # lifecycle order: queued, running, succeeded, failed, ...
    check("-status", [b, a, c])
    check("duration", [a, b, c])  # c never started: last both ways
    check("-duration", [b, a, c])
    check("dataset", [a, c, b])  # digits (ties by id, same direction), mnist
    check("-dataset", [b, c, a])
    check("preset", [a, c, b])  # digits-mlp, mnist-mlp
    check("-preset", [b, c, a])


def test_sort_by_final_metric_with_missing_values_last(api: TestClient) -> None:
    tag = new_tag()
    low = make_run(api, "low", tags=[tag])
    high = make_run(api, "high", tags=[tag])
    mid = make_run(api, "mid", tags=[tag])
    nan = make_run(api, "nan", tags=[tag])
    none = make_run(api, "no metric", tags=[tag])
    other_key = make_run(api, "other key", tags=[tag])
    final_metric(low, "val_accuracy", 0.5)
    final_metric(high, "val_accuracy", 0.9)
    final_metric(mid, "val_accuracy", 0.7)
    final_metric(nan, "val_accuracy", math.nan)
    final_metric(other_key, "loss", 0.1)

    lacking_desc = [other_key, none, nan]
    assert listed(api, tag=tag, sort="-metric:val_accuracy") == [high, mid, low, *lacking_desc]
    assert listed(api, tag=tag, sort="metric:val_accuracy") == [low, mid, high, *lacking_desc[::-1]]
    assert listed(api, tag=tag, sort="metric:loss") == [other_key, low, high, mid, nan, none]
    items = api.get("/api/v1/runs", params={"tag": tag, "sort": "-metric:val_accuracy"}).json()
    assert items["items"][0]["final_metrics"] == {"val_accuracy": 0.9}

    # pages cut anywhere, even across the runs with and without a value, add up to the whole
    for sort in ("-metric:val_accuracy", "metric:val_accuracy"):
        whole = listed(api, tag=tag, sort=sort)
        for size in (1, 2, 4):
            pages = [
                listed(api, tag=tag, sort=sort, limit=size, offset=offset)
                for offset in range(0, len(whole) + size, size)
            ]
            assert [i for p in pages for i in p] == whole, (sort, size)
        assert listed(api, tag=tag, sort=sort, offset=4, limit=50) == whole[4:]


def test_sort_by_spec_parameter_with_missing_values_last(api: TestClient) -> None:
    tag = new_tag()
    small = make_run(api, "b16", tags=[tag], overrides={"fit": {"batch_size": 16}})
    large = make_run(api, "b256", tags=[tag], overrides={"fit": {"batch_size": 256}})
    mid = make_run(api, "b64", tags=[tag], overrides={"fit": {"batch_size": 64}})
    sgd = make_run(
        api,
        "sgd",
        tags=[tag],
        overrides={"compile": {"optimizer": {"name": "sgd", "learning_rate": 0.1}}},
    )
    missing = make_run(api, "no batch size", tags=[tag])
    with session_scope() as session:  # an older spec without the field
        run = session.get(Run, missing)
        assert run is not None
        spec = dict(run.spec)
        spec["fit"] = {k: v for k, v in spec["fit"].items() if k != "batch_size"}
        run.spec = spec

    # sgd keeps digits-mlp's batch size 32
    assert listed(api, tag=tag, sort="param:fit.batch_size") == [small, sgd, mid, large, missing]
    assert listed(api, tag=tag, sort="-param:fit.batch_size") == [large, mid, sgd, small, missing]
    lr = listed(api, tag=tag, sort="-param:compile.optimizer.learning_rate")
    assert lr[0] == sgd
    by_name = listed(api, tag=tag, sort="param:compile.optimizer.name")
    assert by_name[-1] == sgd, "strings sort as text: adam < sgd"
    everyone = [small, large, mid, sgd, missing]
    assert listed(api, tag=tag, sort="param:no.such.field") == everyone, "all missing: by id"
    assert listed(api, tag=tag, sort="-param:model.layers.0.type") == everyone[::-1]


@pytest.mark.parametrize(
    "sort",
    ["bogus", "-", "metric:", "param:", "param:fit..x", "param:fit.batch size", "metric:a b"],
)
def test_bad_sort_is_422_naming_sort(api: TestClient, sort: str) -> None:
    assert error_fields(api.get("/api/v1/runs", params={"sort": sort})) == ["sort"]


# ---- paging ----


def test_offset_paging_and_cursor(api: TestClient) -> None:
    tag = new_tag()
    ids = [
        make_run(api, f"p{i}", tags=[tag], created_at=T0 + timedelta(minutes=i)) for i in range(5)
    ]
    newest_first = ids[::-1]
    page = api.get("/api/v1/runs", params={"tag": tag, "limit": 2, "offset": 2}).json()
    assert [r["id"] for r in page["items"]] == newest_first[2:4]
    assert (page["total"], page["offset"], page["limit"]) == (5, 2, 2)
    assert listed(api, tag=tag, limit=2, offset=4) == newest_first[4:]
    assert listed(api, tag=tag, offset=10) == []

    # the before_id cursor of the default sort keeps working
    first = api.get("/api/v1/runs", params={"tag": tag, "limit": 2}).json()
    second = api.get(
        "/api/v1/runs", params={"tag": tag, "limit": 2, "before_id": first["next_cursor"]}
    ).json()
    assert [r["id"] for r in second["items"]] == newest_first[2:4]
    assert second["total"] == 5

    sorted_page = api.get("/api/v1/runs", params={"tag": tag, "limit": 2, "sort": "name"}).json()
    assert sorted_page["next_cursor"] is None, "other sorts page by offset"
    bad = api.get("/api/v1/runs", params={"sort": "name", "before_id": ids[0]})
    assert error_fields(bad) == ["before_id"]
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}):
        assert list(params) == error_fields(api.get("/api/v1/runs", params=params))


def test_facets_count_values_in_use(api: TestClient) -> None:
    tag = new_tag()
    make_run(api, "f1", tags=[tag])
    make_run(api, "f2", tags=[tag, "shared-facet"])
    facets = api.get("/api/v1/runs/facets").json()
    tags = {f["value"]: f["count"] for f in facets["tags"]}
    assert tags[tag] == 2
    assert {f["value"] for f in facets["datasets"]} >= {"digits"}
    assert {f["value"] for f in facets["presets"]} >= {"digits-mlp"}
    assert {f["value"] for f in facets["statuses"]} >= {"cancelled"}


# ---- delete ----


@pytest.fixture
def artifact_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "model.keras"
    path.write_bytes(b"weights")
    yield path


def test_delete_refuses_unfinished_runs(api: TestClient) -> None:
    tag = new_tag()
    running = make_run(api, "running", tags=[tag], status="running")
    queued = make_run(api, "queued", tags=[tag], status="queued")
    response = api.delete(f"/api/v1/runs/{running}")
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"run {running} is running: cancel it first",
        "code": "conflict",
    }
    response = api.delete(f"/api/v1/runs/{queued}")
    assert response.status_code == 409 and "cancel it first" in response.json()["detail"]
    assert api.get(f"/api/v1/runs/{running}").status_code == 200
    assert api.delete("/api/v1/runs/99999999").status_code == 404


def test_delete_removes_rows_and_artifact_files(api: TestClient, artifact_file: Path) -> None:
    tag = new_tag()
    doomed = make_run(api, "doomed", tags=[tag, "x"], status="succeeded")
    kept = make_run(api, "kept", tags=[tag], status="succeeded")
    final_metric(doomed, "loss", 0.3)
    store = get_store()
    with session_scope() as session:
        for run_id in (doomed, kept):
            artifacts.add(
                session,
                store=store,
                run_id=run_id,
                name="model.keras",
                kind="model",
                source=artifact_file,
            )
    doomed_dir = store.local_path(f"runs/{doomed}/model.keras")
    kept_file = store.local_path(f"runs/{kept}/model.keras")
    assert doomed_dir is not None and kept_file is not None and doomed_dir.exists()

    response = api.delete(f"/api/v1/runs/{doomed}")
    assert response.status_code == 204 and response.content == b""
    assert api.get(f"/api/v1/runs/{doomed}").status_code == 404
    assert api.delete(f"/api/v1/runs/{doomed}").status_code == 404
    assert listed(api, tag=tag) == [kept]
    with session_scope() as session:
        for model in (MetricPoint, LatestMetric, RunEvent, RunTag, Artifact):
            table = model.__table__
            left = session.scalar(select(func.count()).where(table.c.run_id == doomed))
            assert left == 0, model.__tablename__
    assert not doomed_dir.exists() and not doomed_dir.parent.exists()
    assert kept_file.read_bytes() == b"weights", "another run's files stay"


# ---- SQLite: the same queries, on the embedded database ----


def test_queries_run_on_sqlite(tmp_path: Path) -> None:
    from backend.db.migrate import upgrade
    from backend.db.session import session_factory

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    upgrade(url)
    with session_factory(url)() as session:
        runs = []
        for i, (batch, optimizer) in enumerate([(64, "adam"), (16, "sgd"), (None, "adam")]):
            fit: dict[str, Any] = {"epochs": 1} if batch is None else {"batch_size": batch}
            spec = {"dataset": {"name": "digits"}, "fit": fit}
            spec["compile"] = {"optimizer": {"name": optimizer}}
            run = Run(
                name=f"Run {i}",
                status="succeeded",
                spec=spec,
                created_at=T0 + timedelta(minutes=i),
                started_at=T0 if i < 2 else None,
                finished_at=T0 + timedelta(seconds=10 * (2 - i)) if i < 2 else None,
            )
            session.add(run)
            runs.append(run)
        session.flush()
        a, b, c = (r.id for r in runs)
        runs_service.edit(session, run_id=b, tags=["best"])
        metrics.record(
            session,
            run_id=a,
            points=[metrics.Point(key="val_accuracy", step=1, value=0.8, wall_time=0.0)],
            uid="m",
        )
        session.flush()

        def ids(sort: str = "-created_at", **params: Any) -> list[int]:
            page = query.page(
                session,
                filters=query.parse_filters(**params),
                sort=query.parse_sort(sort),
                limit=10,
            )
            return [r.id for r in page.items]

        assert ids() == [c, b, a]
        assert ids(q="BEST") == [b] and ids(tag=["best"]) == [b]
        assert ids(dataset="digits", created_after="2025-03-10T12:01:00Z") == [c, b]
        assert ids("param:fit.batch_size") == [b, a, c]
        assert ids("-param:fit.batch_size") == [a, b, c]
        assert ids("param:compile.optimizer.name") == [a, c, b]
        assert ids("-metric:val_accuracy") == [a, c, b]
        assert ids("duration") == [b, a, c]
        assert ids("-duration") == [a, b, c]
        assert ids("name") == [a, b, c]
        assert [v for v, _ in query.facets(session)["tags"]] == ["best"]
