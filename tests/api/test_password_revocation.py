"""A new password ends what the old one let in: changing your own signs out your other
browsers (not this one); an admin's reset signs the user out everywhere and revokes their
API tokens."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from tests.conftest import create_identity

PASSWORD = "the old password"
NEW = "the new password"


def _signed_in(api: TestClient, username: str, password: str) -> tuple[TestClient, str]:
    client = TestClient(api.app)
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return client, response.json()["csrf_token"]


def test_changing_your_password_signs_out_your_other_browsers(api: TestClient, pg_url: str) -> None:
    name = f"erin-{uuid.uuid4().hex[:6]}"
    erin = create_identity(pg_url, name, "member", password=PASSWORD)
    here, csrf = _signed_in(api, name, PASSWORD)
    elsewhere, _ = _signed_in(api, name, PASSWORD)
    assert elsewhere.get("/api/v1/auth/me").status_code == 200
    changed = here.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW},
        headers={"X-CSRF-Token": csrf},
    )
    assert changed.status_code == 204, changed.text
    assert here.get("/api/v1/auth/me").status_code == 200  # the browser that asked stays in
    assert elsewhere.get("/api/v1/auth/me").status_code == 401
    token = TestClient(api.app, headers={"Authorization": f"Bearer {erin.token}"})
    assert token.get("/api/v1/auth/me").status_code == 200  # tokens are not sessions


def test_changing_it_with_a_token_signs_out_every_browser(api: TestClient, pg_url: str) -> None:
    name = f"fred-{uuid.uuid4().hex[:6]}"
    fred = create_identity(pg_url, name, "member", password=PASSWORD)
    browser, _ = _signed_in(api, name, PASSWORD)
    token = TestClient(api.app, headers={"Authorization": f"Bearer {fred.token}"})
    changed = token.post(
        "/api/v1/auth/password", json={"current_password": PASSWORD, "new_password": NEW}
    )
    assert changed.status_code == 204, changed.text
    assert browser.get("/api/v1/auth/me").status_code == 401


def test_an_admin_reset_revokes_every_session_and_token(api: TestClient, pg_url: str) -> None:
    name = f"gina-{uuid.uuid4().hex[:6]}"
    gina = create_identity(pg_url, name, "member", password=PASSWORD)
    browser, csrf = _signed_in(api, name, PASSWORD)
    made = browser.post(
        "/api/v1/auth/tokens", json={"name": "second"}, headers={"X-CSRF-Token": csrf}
    )
    assert made.status_code == 201
    tokens = [gina.token, made.json()["token"]]
    for token in tokens:
        with_token = TestClient(api.app, headers={"Authorization": f"Bearer {token}"})
        assert with_token.get("/api/v1/auth/me").status_code == 200

    reset = api.patch(f"/api/v1/users/{gina.user_id}", json={"reset_password": True})
    assert reset.status_code == 200, reset.text
    assert browser.get("/api/v1/auth/me").status_code == 401
    for token in tokens:
        with_token = TestClient(api.app, headers={"Authorization": f"Bearer {token}"})
        refused = with_token.get("/api/v1/auth/me")
        assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    # the new password works, and a token made after it does too
    again, csrf = _signed_in(api, name, reset.json()["password"])
    fresh = again.post(
        "/api/v1/auth/tokens", json={"name": "after"}, headers={"X-CSRF-Token": csrf}
    )
    fresh_client = TestClient(api.app, headers={"Authorization": f"Bearer {fresh.json()['token']}"})
    assert fresh_client.get("/api/v1/auth/me").status_code == 200


def test_an_admin_setting_a_password_revokes_too(api: TestClient, pg_url: str) -> None:
    name = f"hal-{uuid.uuid4().hex[:6]}"
    hal = create_identity(pg_url, name, "viewer", password=PASSWORD)
    browser, _ = _signed_in(api, name, PASSWORD)
    assert api.patch(f"/api/v1/users/{hal.user_id}", json={"password": NEW}).status_code == 200
    assert browser.get("/api/v1/auth/me").status_code == 401
    token = TestClient(api.app, headers={"Authorization": f"Bearer {hal.token}"})
    assert token.get("/api/v1/auth/me").status_code == 401
