"""Every request before a route sees it: a JSON body over FITBOARD_MAX_JSON_MB is a 413; a NUL
character anywhere a request carries text is a 422 naming where (PostgreSQL can store
it in neither text nor JSON: it used to be a 500). Found by the fuzz stage."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "a\x00b"}, "body.name"),
        ({"name": "ok", "spec": {"\x00": None}}, "body.spec"),
        ({"name": "ok", "params": {"lr": ["x", "y\x00"]}}, "body.params.lr[1]"),
    ],
)
def test_nul_in_a_json_body_is_a_422_naming_it(api: TestClient, body: dict, field: str) -> None:
    before = api.get("/api/v1/runs").json()["total"]
    r = api.post("/api/v1/runs/external", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field
    assert "NUL" in r.json()["detail"]
    assert api.get("/api/v1/runs").json()["total"] == before, "nothing stored"


def test_nul_in_a_query_parameter_or_the_path_is_a_422(api: TestClient) -> None:
    r = api.get("/api/v1/runs", params={"q": "loss\x00"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "q"
    r = api.get("/api/v1/runs/1%00")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "path"


def test_a_raw_nul_byte_in_a_json_body_is_a_422(api: TestClient) -> None:
    raw = json.dumps({"name": "x"}).encode().replace(b"x", b"x\x00")
    r = api.post("/api/v1/runs/external", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text


def test_text_without_nul_passes_untouched(api: TestClient) -> None:
    r = api.post("/api/v1/runs/external", json={"name": "fine \\u0000 as text", "params": {}})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "fine \\u0000 as text"


def test_a_json_body_over_the_limit_is_a_413_before_it_is_read(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.config import get_settings

    monkeypatch.setenv("FITBOARD_MAX_JSON_MB", "1")
    get_settings.cache_clear()
    try:
        big = {"name": "big", "params": {"blob": "x" * (1024 * 1024 + 10)}}
        r = api.post("/api/v1/runs/external", json=big)
        assert r.status_code == 413, r.text
        assert r.json()["code"] == "too_large" and "FITBOARD_MAX_JSON_MB" in r.json()["detail"]

        # a body that claims to be small but is not: cut off while it streams in
        def chunks():  # type: ignore[no-untyped-def]
            for _ in range(3):
                yield b" " * (600 * 1024)

        r = api.post(
            "/api/v1/runs/external",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413, r.text
        assert api.post("/api/v1/runs/external", json={"name": "small"}).status_code == 201
    finally:
        monkeypatch.delenv("FITBOARD_MAX_JSON_MB")
        get_settings.cache_clear()


def test_every_operation_with_a_body_documents_413(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if operation.get("requestBody"):
                assert "413" in operation["responses"], f"{method.upper()} {path}"
