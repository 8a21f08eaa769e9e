"""Every error, from routing and body parsing too, in the one documented shape."""

from __future__ import annotations

from fastapi.testclient import TestClient

JSON = {"Content-Type": "application/json"}


def test_malformed_json_is_a_422_naming_the_body(api: TestClient) -> None:
    for body in (b"{bad", b"\xff\xfe", b'{"name": "x"'):
        r = api.post("/api/v1/runs/external", content=body, headers=JSON)
        assert r.status_code == 422, r.text
        error = r.json()["errors"][0]
        assert error["field"] == "body" and error["type"] == "json_invalid", r.json()
        assert "not valid JSON" in r.json()["detail"]


def test_a_body_of_the_wrong_type_names_the_body(api: TestClient) -> None:
    r = api.post("/api/v1/runs/external", content=b"[1, 2]", headers=JSON)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "body"


def test_routing_errors_have_the_error_shape(api: TestClient) -> None:
    r = api.get("/api/v1/no-such-thing")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found", "code": "not_found"}
    r = api.delete("/api/v1/health")
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"
    assert "GET" in r.headers["allow"]


def test_malformed_multipart_is_a_4xx_with_the_error_shape(api: TestClient) -> None:
    broken = {"Content-Type": "multipart/form-data"}  # no boundary
    for url in ("/api/v1/remote-monitor/broken", "/api/v1/datasets"):
        r = api.post(url, content=b"garbage", headers=broken)
        assert r.status_code == 422, (url, r.text)
        assert r.json()["code"] == "invalid" and r.json()["errors"][0]["field"], r.json()


def test_openapi_documents_every_error_status_in_the_error_shape(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            if "requestBody" in op:
                assert {"400", "422"} <= set(responses), (method, path)
            for status, response in responses.items():
                if status[0] in "45":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (method, path)
