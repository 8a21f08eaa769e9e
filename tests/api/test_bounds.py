"""Integers beyond what the database holds are a 422 naming the parameter, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.bounds import MAX_INT64

HUGE = str(2**63)


def _integers(
    schema: dict[str, Any], components: dict[str, Any], seen: set[str], where: str
) -> Iterator[tuple[str, Any]]:
    """Every integer sub-schema reachable from schema (through $ref, anyOf, items, properties)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            seen.add(name)
            yield from _integers(components[name], components, seen, f"{where}<{name}>")
        return
    if schema.get("type") == "integer":
        yield where, schema
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for sub in schema.get(key, []):
            yield from _integers(sub, components, seen, where)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _integers(schema[key], components, seen, f"{where}[]")
    for prop, sub in schema.get("properties", {}).items():
        yield from _integers(sub, components, seen, f"{where}.{prop}")


def test_every_integer_the_api_reads_is_bounded(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    components = doc["components"]["schemas"]
    unbounded = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            inputs = [(p["name"], p["schema"]) for p in op.get("parameters", [])]
            for media in op.get("requestBody", {}).get("content", {}).values():
                inputs.append(("body", media.get("schema", {})))
            for name, schema in inputs:
                for where, integer in _integers(schema, components, set(), name):
                    if integer.get("maximum", MAX_INT64 + 1) > MAX_INT64:
                        unbounded.append(f"{method.upper()} {path} {where}")
    assert not unbounded, unbounded


@pytest.mark.parametrize(
    ("url", "field"),
    [
        (f"/api/v1/runs/{HUGE}", "run_id"),
        (f"/api/v1/runs/{HUGE}/metrics.json", "run_id"),
        (f"/api/v1/sweeps/{HUGE}", "sweep_id"),
        (f"/api/v1/datasets/{HUGE}", "dataset_id"),
        (f"/api/v1/runs/1/evaluation/epochs/{HUGE}", "epoch"),
        (f"/api/v1/runs?offset={HUGE}", "offset"),
        (f"/api/v1/runs?before_id={HUGE}", "before_id"),
        (f"/api/v1/runs?sweep={HUGE}", "sweep"),
        (f"/api/v1/runs/1/metrics?min_step={HUGE}", "min_step"),
        (f"/api/v1/runs/1/stream?after={HUGE}", "after"),
        (f"/api/v1/runs/1/log?offset={HUGE}", "offset"),
        (f"/api/v1/runs/1/log?offset=-{HUGE}", "offset"),
    ],
)
def test_huge_integer_is_a_422_naming_it(api: TestClient, url: str, field: str) -> None:
    r = api.get(url)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == [field]


def test_huge_last_event_id_is_a_422_naming_the_header(api: TestClient) -> None:
    run = api.post("/api/v1/runs/external", json={"name": "bounds"}).json()
    for url in (f"/api/v1/runs/{run['id']}/stream", f"/api/v1/runs/{run['id']}/log/stream"):
        for bad in (HUGE, "-1", "1e3", "٣".encode()):
            r = api.get(url, headers={"Last-Event-ID": bad})
            assert r.status_code == 422, (url, bad, r.text)
            assert r.json()["errors"][0]["field"] == "Last-Event-ID"


def test_huge_step_in_a_posted_point_is_a_422(api: TestClient) -> None:
    run = api.post("/api/v1/runs/external", json={"name": "bounds"}).json()
    body = {"uid": "x", "points": [{"key": "loss", "step": 2**63, "value": 1.0}]}
    r = api.post(f"/api/v1/runs/{run['id']}/points", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "points.0.step"
    ok = api.post(
        f"/api/v1/runs/{run['id']}/points",
        json={"uid": "x", "points": [{"key": "loss", "step": MAX_INT64, "value": 1.0}]},
    )
    assert ok.status_code == 200, ok.text
