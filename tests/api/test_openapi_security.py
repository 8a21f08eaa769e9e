"""The OpenAPI names how to authenticate (a Bearer token, or the session cookie with its CSRF
header on changes) on every operation that needs it, and its operationIds are the route
functions' names, once each, so generated clients read well (list_runs, not
list_runs_api_v1_runs_get)."""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from backend.api.docs import _api_routes

ANONYMOUS = {("/api/v1/health", "get"), ("/api/v1/auth/login", "post")}


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def test_operation_ids_are_the_route_function_names(api: TestClient) -> None:
    spec = api.app.openapi()  # type: ignore[attr-defined]
    names = {
        (route.path_format, method.lower()): route.name
        for route in _api_routes(api.app)  # type: ignore[arg-type]
        if isinstance(getattr(route, "original_route", route), APIRoute)
        for method in route.methods
    }
    ids = [op["operationId"] for _, _, op in _operations(spec)]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    for path, method, op in _operations(spec):
        assert op["operationId"] == names[(path, method)], (path, method)
        assert re.fullmatch(r"[a-z][a-z0-9_]*", op["operationId"]), op["operationId"]
        assert "api_v1" not in op["operationId"]
    assert spec["paths"]["/api/v1/runs"]["get"]["operationId"] == "list_runs"


def test_security_schemes_are_declared_and_applied(api: TestClient) -> None:
    spec = api.app.openapi()  # type: ignore[attr-defined]
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerToken"] == {**schemes["bearerToken"], "type": "http", "scheme": "bearer"}
    assert (schemes["sessionCookie"]["in"], schemes["sessionCookie"]["name"]) == (
        "cookie",
        "fitboard_session",
    )
    assert (schemes["csrfHeader"]["in"], schemes["csrfHeader"]["name"]) == (
        "header",
        "X-CSRF-Token",
    )
    for path, method, op in _operations(spec):
        where = f"{method.upper()} {path}"
        if (path, method) in ANONYMOUS:
            assert op["security"] == [], where
            continue
        if path.startswith("/api/v1/worker/"):  # the worker protocol: worker tokens only
            assert op["security"] == [{"workerToken": []}], where
            continue
        assert {"bearerToken": []} in op["security"], where
        session = next(s for s in op["security"] if "sessionCookie" in s)
        # a change made with the cookie needs the CSRF header; a read does not
        assert ("csrfHeader" in session) == (method != "get"), where
        assert "401" in op["responses"], where
