"""Sorting the runs list by a spec parameter through run_params (one indexed row per leaf).

Every test tags its runs with a fresh tag and filters on it, so runs other tests left in the
shared database never show up in the rows compared.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text, update

from backend.db.session import session_scope
from backend.runs import params
from backend.runs.models import Run, RunParam, RunStatus


def new_tag() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


def make_run(
    api: TestClient, name: str, *, tag: str, overrides: dict[str, Any] | None = None
) -> int:
    body: dict[str, Any] = {"name": name, "preset": "digits-mlp"}
    if overrides:
        body["overrides"] = overrides
    response = api.post("/api/v1/runs", json=body)
    assert response.status_code == 201, response.text
    run_id = int(response.json()["id"])
    assert api.patch(f"/api/v1/runs/{run_id}", json={"tags": [tag]}).status_code == 200
    with session_scope() as session:  # not queued: nothing else picks these up
        session.execute(
            update(Run).where(Run.id == run_id).values(status=RunStatus.cancelled.value)
        )
    return run_id


def set_spec_value(run_id: int, path: str, value: Any) -> None:
    """Edit a stored spec through the ORM (value None: remove the leaf), as an old run might be."""
    with session_scope() as session:
        run = session.get(Run, run_id)
        assert run is not None
        spec: dict[str, Any] = dict(run.spec)
        parts = path.split(".")
        node = spec
        for part in parts[:-1]:
            node[part] = dict(node[part])
            node = node[part]
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
        run.spec = spec


def listed(api: TestClient, tag: str, sort: str, **extra: Any) -> list[int]:
    response = api.get("/api/v1/runs", params={"tag": tag, "sort": sort, **extra})
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["items"]]


def stored(run_id: int) -> dict[str, tuple[float | None, str | None]]:
    with session_scope() as session:
        rows = session.scalars(select(RunParam).where(RunParam.run_id == run_id))
        return {r.key: (r.num_value, r.text_value) for r in rows}


def test_submitted_run_has_its_scalar_leaves_indexed(api: TestClient) -> None:
    run_id = make_run(api, "indexed", tag=new_tag(), overrides={"fit": {"batch_size": 48}})
    rows = stored(run_id)
    assert rows["fit.batch_size"] == (48.0, None)
    assert rows["compile.optimizer.learning_rate"][0] == pytest.approx(1e-3)
    assert rows["compile.optimizer.name"] == (None, "adam")
    assert rows["dataset.name"] == (None, "digits")
    assert rows["fit.shuffle"] == (1.0, None), "booleans as 0/1"
    assert rows["model.layers.0.type"][1], "list positions are path parts"
    assert not any(v == (None, None) for v in rows.values()), "nulls are not stored"
    with session_scope() as session:
        spec = session.get(Run, run_id).spec  # type: ignore[union-attr]
    assert rows == params.flatten(spec)


def test_numbers_both_directions_missing_last_ties_by_id(api: TestClient) -> None:
    tag = new_tag()
    b16 = make_run(api, "b16", tag=tag, overrides={"fit": {"batch_size": 16}})
    b256 = make_run(api, "b256", tag=tag, overrides={"fit": {"batch_size": 256}})
    b64 = make_run(api, "b64", tag=tag, overrides={"fit": {"batch_size": 64}})
    also64 = make_run(api, "b64 again", tag=tag, overrides={"fit": {"batch_size": 64}})
    missing = make_run(api, "no batch size", tag=tag)
    set_spec_value(missing, "fit.batch_size", None)

    assert listed(api, tag, "param:fit.batch_size") == [b16, b64, also64, b256, missing]
    assert listed(api, tag, "-param:fit.batch_size") == [b256, also64, b64, b16, missing]
    assert "fit.batch_size" not in stored(missing), "an edited spec is indexed again"


def test_numbers_before_strings_then_missing(api: TestClient) -> None:
    tag = new_tag()
    ids = [make_run(api, f"r{i}", tag=tag) for i in range(5)]
    for run_id, value in zip(ids, [0.5, "beta", 2, "alpha", None], strict=True):
        set_spec_value(run_id, "model.params.knob", value)
    n_half, s_beta, n_two, s_alpha, none = ids

    assert listed(api, tag, "param:model.params.knob") == [n_half, n_two, s_alpha, s_beta, none]
    assert listed(api, tag, "-param:model.params.knob") == [n_two, n_half, s_beta, s_alpha, none]
    assert listed(api, tag, "param:compile.optimizer.name") == ids, "all equal: by id"
    assert listed(api, tag, "-param:compile.optimizer.name") == ids[::-1]
    assert listed(api, tag, "param:no.such.path") == ids, "all missing: by id"


def test_strings_and_list_positions(api: TestClient) -> None:
    tag = new_tag()
    sgd = make_run(api, "sgd", tag=tag, overrides={"compile": {"optimizer": {"name": "sgd"}}})
    adam = make_run(api, "adam", tag=tag)
    rms = make_run(
        api, "rmsprop", tag=tag, overrides={"compile": {"optimizer": {"name": "rmsprop"}}}
    )
    assert listed(api, tag, "param:compile.optimizer.name") == [adam, rms, sgd]
    assert listed(api, tag, "-param:compile.optimizer.name") == [sgd, rms, adam]
    set_spec_value(adam, "model.layers", [{"type": "Dense", "units": 7}])
    set_spec_value(sgd, "model.layers", [{"type": "Dense", "units": 3}])
    set_spec_value(rms, "model.layers", [{"type": "Flatten"}])
    assert listed(api, tag, "param:model.layers.0.units") == [sgd, adam, rms]
    assert listed(api, tag, "-param:model.layers.0.units") == [adam, sgd, rms]


def test_offset_pages_cross_numbers_strings_and_missing(api: TestClient) -> None:
    tag = new_tag()
    ids = [make_run(api, f"r{i}", tag=tag) for i in range(7)]
    values: list[Any] = [3, "b", None, 1, "a", None, 2]
    for run_id, value in zip(ids, values, strict=True):
        set_spec_value(run_id, "model.params.mixed", value)
    for sort in ("param:model.params.mixed", "-param:model.params.mixed"):
        whole = listed(api, tag, sort)
        assert len(whole) == 7
        for size in (1, 2, 3, 5):
            pages = [listed(api, tag, sort, limit=size, offset=o) for o in range(0, 7, size)]
            assert [i for p in pages for i in p] == whole, (sort, size)
    assert listed(api, tag, "param:model.params.mixed") == [
        ids[3],
        ids[6],
        ids[0],
        ids[4],
        ids[1],
        ids[2],
        ids[5],
    ]


def test_flatten_skips_long_lists_long_text_and_non_finite() -> None:
    spec = {
        "dataset": {"classes": list(range(params.MAX_LIST_ITEMS + 1)), "name": "x" * 500},
        "short": [1, 2],
        "fit": {"epochs": 3, "seed": None, "bad": float("nan"), "flag": False},
    }
    flat = params.flatten(spec)
    assert not any(k.startswith("dataset.classes") for k in flat)
    assert flat["dataset.name"] == (None, "x" * params.MAX_TEXT)
    assert flat["short.0"] == (1.0, None) and flat["short.1"] == (2.0, None)
    assert flat["fit.epochs"] == (3.0, None) and flat["fit.flag"] == (0.0, None)
    assert "fit.seed" not in flat and "fit.bad" not in flat


def test_migration_0004_backfills_existing_runs(tmp_path: Path) -> None:
    from alembic import command

    from backend.db.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'backfill.db'}"
    command.upgrade(alembic_config(url), "0003")
    engine = create_engine(url)
    spec = {"fit": {"batch_size": 24, "shuffle": True}, "compile": {"optimizer": {"name": "sgd"}}}
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (id, name, status, spec, created_at) "
                "VALUES (5, 'old', 'succeeded', :spec, '2025-01-01 00:00:00')"
            ),
            {"spec": json.dumps(spec)},
        )
        conn.execute(text("INSERT INTO run_tags (run_id, tag) VALUES (5, 'kept')"))
    command.upgrade(alembic_config(url), "head")
    with engine.connect() as conn:
        rows = {
            key: (num, txt)
            for key, num, txt in conn.execute(
                text("SELECT key, num_value, text_value FROM run_params WHERE run_id = 5")
            )
        }
        # SQLite rebuilds runs in 0004; rows that refer to a run must survive that
        tags = conn.execute(text("SELECT tag FROM run_tags WHERE run_id = 5")).scalars().all()
    engine.dispose()
    assert tags == ["kept"]
    assert rows == {
        "fit.batch_size": (24.0, None),
        "fit.shuffle": (1.0, None),
        "compile.optimizer.name": (None, "sgd"),
    }


def test_param_filter_matches_numbers_booleans_and_text(api: TestClient) -> None:
    tag = new_tag()
    b64 = make_run(api, "b64", tag=tag, overrides={"fit": {"batch_size": 64}})
    b16 = make_run(api, "b16", tag=tag, overrides={"fit": {"batch_size": 16}})
    sgd = make_run(
        api,
        "sgd",
        tag=tag,
        overrides={"compile": {"optimizer": {"name": "sgd"}}, "fit": {"shuffle": False}},
    )

    def matching(**extra: Any) -> list[int]:
        response = api.get("/api/v1/runs", params={"tag": tag, **extra})
        assert response.status_code == 200, response.text
        return sorted(r["id"] for r in response.json()["items"])

    assert matching(**{"param.fit.batch_size": "64"}) == [b64]
    assert matching(**{"param.fit.batch_size": "64.0"}) == [b64], "compared as numbers"
    assert matching(**{"param.compile.optimizer.name": "sgd"}) == [sgd]
    assert matching(**{"param.fit.shuffle": "false"}) == [sgd]
    assert matching(**{"param.fit.shuffle": "true"}) == sorted([b16, b64])
    both = {"param.fit.shuffle": "true", "param.fit.batch_size": "16"}
    assert matching(**both) == [b16], "every filter must hold"
    assert matching(**{"param.no.such": "1"}) == []
    bad = api.get("/api/v1/runs", params={"param.fit..x": "1"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "param.fit..x"
