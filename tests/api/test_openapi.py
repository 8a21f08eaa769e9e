"""The OpenAPI document is complete: every operation says what it does, what it returns and
which errors it answers with (in the one error shape), and /docs works without a CDN."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

ERROR_REF = "#/components/schemas/ErrorOut"
# a request body or path/query parameters can be invalid -> 422; a {..._id} path -> 404
MUTATING = {"post", "put", "patch", "delete"}


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def _error_schema_ref(response: dict[str, Any]) -> str | None:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref")


def test_every_operation_is_documented_with_its_errors(api: TestClient) -> None:
    spec = api.app.openapi()  # type: ignore[attr-defined]
    problems: list[str] = []
    operations = _operations(spec)
    assert len(operations) > 30
    public = {("/api/v1/health", "get")}
    for path, method, op in operations:
        where = f"{method.upper()} {path}"
        if not (op.get("summary") and op.get("description")):
            problems.append(f"{where}: no summary/description")
        responses = op.get("responses", {})
        if not any(code.startswith("2") for code in responses):
            problems.append(f"{where}: no success response")
        wanted = set()
        if (path, method) not in public and not path.startswith("/api/v1/auth"):
            wanted.add("401")
        if re.search(r"\{\w+_id\}", path):  # an id that may name nothing
            wanted.add("404")
        if op.get("parameters") or op.get("requestBody"):
            wanted.add("422")
        if (
            method in MUTATING
            and (path, method) not in public
            and not path.startswith(("/api/v1/auth", "/api/v1/worker/"))  # no 403: 401 or allowed
        ):
            wanted.add("403")
        for code in sorted(wanted):
            if code not in responses:
                problems.append(f"{where}: {code} not documented")
        for code, response in responses.items():
            if code[0] in "45" and _error_schema_ref(response) != ERROR_REF:
                problems.append(f"{where}: {code} does not use the ErrorOut schema")
    assert not problems, "\n".join(problems)


def test_error_model_is_the_shape_the_api_answers_with(api: TestClient) -> None:
    schema = api.app.openapi()["components"]["schemas"]  # type: ignore[attr-defined]
    assert set(schema["ErrorOut"]["properties"]) == {"detail", "code", "errors"}
    body = api.get("/api/v1/runs/987654321").json()
    assert set(body) <= {"detail", "code", "errors"} and body["code"] == "not_found"


def test_docs_are_served_without_a_cdn(api: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = api.get(page).text
        assert "cdn." not in html and "unpkg" not in html and "googleapis" not in html
        assets = [part.split('"')[0] for part in html.split('src="')[1:]]
        assets += [part.split('"')[0] for part in html.split('href="')[1:]]
        local = [a for a in assets if a.startswith("/static/api-docs/")]
        assert local, html
        for asset in local:
            assert api.get(asset).status_code == 200, asset
    assert api.get("/openapi.json").json()["info"]["title"] == "Fitboard"
