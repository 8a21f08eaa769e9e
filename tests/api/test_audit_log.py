"""The audit log records security-relevant actions (sign-ins, failed ones, tokens, roles,
password changes and resets, deletes), only admins read it (paged, filtered by action and
user), and its migration goes up and down on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect

from tests.conftest import Identity, create_identity

PASSWORD = "audited password"


def _events(api: TestClient, **params: Any) -> list[dict[str, Any]]:
    response = api.get("/api/v1/audit", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def _login(client: TestClient, username: str, password: str) -> int:
    return client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    ).status_code


def test_sign_ins_tokens_and_password_changes_are_logged(api: TestClient, pg_url: str) -> None:
    name = f"aud-{uuid.uuid4().hex[:6]}"
    person = create_identity(pg_url, name, "member", password=PASSWORD)
    browser = TestClient(api.app, client=("198.51.100.7", 5000))
    assert _login(browser, name, "not it") == 401
    assert _login(browser, name, PASSWORD) == 200
    csrf = browser.get("/api/v1/auth/me").json()["csrf_token"]
    headers = {"X-CSRF-Token": csrf}
    token = browser.post("/api/v1/auth/tokens", json={"name": "ci"}, headers=headers).json()
    assert browser.delete(f"/api/v1/auth/tokens/{token['id']}", headers=headers).status_code == 204
    changed = browser.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "another password"},
        headers=headers,
    )
    assert changed.status_code == 204

    events = _events(api, user=name)
    actions = [e["action"] for e in reversed(events)]
    assert actions == [
        "signin_failed",
        "signin",
        "token_created",
        "token_revoked",
        "password_changed",
    ]
    failed, signin = events[-1], events[-2]
    assert failed["actor_id"] is None and failed["actor_name"] == name
    assert failed["address"] == "198.51.100.7"
    assert signin["actor_id"] == person.user_id
    created = next(e for e in events if e["action"] == "token_created")
    assert created["target_type"] == "token" and created["target_name"] == "ci"
    assert created["details"]["prefix"] == token["prefix"]
    # no secret ever lands in the log
    dump = str(events)
    for secret in (PASSWORD, "not it", "another password", token["token"]):
        assert secret not in dump


def test_admin_changes_to_users_are_logged(api: TestClient, admin: Identity) -> None:
    name = f"aud-{uuid.uuid4().hex[:6]}"
    made = api.post("/api/v1/users", json={"username": name, "role": "viewer"}).json()
    user_id = made["user"]["id"]
    api.patch(f"/api/v1/users/{user_id}", json={"role": "member"})
    api.patch(f"/api/v1/users/{user_id}", json={"reset_password": True})
    api.patch(f"/api/v1/users/{user_id}", json={"is_active": False})
    events = _events(api, user=name)
    assert [e["action"] for e in reversed(events)] == [
        "user_created",
        "role_changed",
        "password_reset",
        "user_deactivated",
    ]
    assert all(e["actor_name"] == admin.username for e in events)
    role = next(e for e in events if e["action"] == "role_changed")
    assert role["details"] == {"from": "viewer", "to": "member"}
    reset = next(e for e in events if e["action"] == "password_reset")
    assert reset["details"]["tokens_revoked"] is True
    assert made["password"] not in str(events)


def test_deleting_a_run_is_logged(api: TestClient) -> None:
    name = f"audited run {uuid.uuid4().hex[:6]}"
    run = api.post("/api/v1/runs/external", json={"name": name}).json()
    api.post(f"/api/v1/runs/{run['id']}/finish", json={"status": "succeeded"})
    assert api.delete(f"/api/v1/runs/{run['id']}").status_code == 204
    deleted = _events(api, action="run_deleted", limit=5)
    assert deleted[0]["target_id"] == str(run["id"]) and deleted[0]["target_name"] == name


def test_only_admins_read_it_and_it_pages(api: TestClient, pg_url: str) -> None:
    member = create_identity(pg_url, f"aud-{uuid.uuid4().hex[:6]}", "member")
    as_member = TestClient(api.app, headers={"Authorization": f"Bearer {member.token}"})
    assert as_member.get("/api/v1/audit").status_code == 403
    assert TestClient(api.app).get("/api/v1/audit").status_code == 401
    for _ in range(3):
        assert _login(TestClient(api.app, client=("203.0.113.5", 1)), "nobody-here", "x") == 401
    first = api.get("/api/v1/audit", params={"limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_before"] == first["items"][-1]["id"]
    second = api.get("/api/v1/audit", params={"limit": 2, "before": first["next_before"]}).json()
    assert second["items"][0]["id"] < first["items"][-1]["id"]
    bad = api.get("/api/v1/audit", params={"action": "made_up"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "action"


def test_the_migration_goes_up_and_down_on_sqlite(tmp_path: Path) -> None:
    from alembic import command

    from backend.db.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'audit.db'}"
    command.upgrade(alembic_config(url), "head")
    engine = create_engine(url)
    assert "audit_events" in inspect(engine).get_table_names()
    command.downgrade(alembic_config(url), "0004")
    assert "audit_events" not in inspect(engine).get_table_names()
    command.upgrade(alembic_config(url), "head")
    assert "audit_events" in inspect(engine).get_table_names()
    engine.dispose()


def test_a_reset_from_the_command_line_is_logged(api: TestClient, pg_url: str) -> None:
    from backend.users.__main__ import main

    name = f"aud-{uuid.uuid4().hex[:6]}"
    person = create_identity(pg_url, name, "member", password=PASSWORD)
    assert main(["reset-password", name]) == 0
    event = _events(api, user=name, action="password_reset")[0]
    assert event["actor_name"] == "(command line)" and event["target_user_id"] == person.user_id
    refused = TestClient(api.app, headers={"Authorization": f"Bearer {person.token}"})
    assert refused.get("/api/v1/auth/me").status_code == 401  # its token was revoked
