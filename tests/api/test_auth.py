"""Sign-in, sessions with CSRF, API tokens, secrets at rest, FITBOARD_AUTH=off, first admin."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from tests.conftest import ROOT, Identity, create_identity, free_port

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def alice(pg_url: str, app_env: None) -> Identity:
    """A member who signs in with a password (hashed once for the module)."""
    return create_identity(pg_url, "alice", "member", password=PASSWORD)


@pytest.fixture
def browser(api: TestClient) -> Iterator[TestClient]:
    """A client with a cookie jar and no token, like a browser."""
    with TestClient(api.app) as client:
        yield client


def _login(client: TestClient, username: str, password: str) -> dict:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def test_login_me_logout(browser: TestClient, alice: Identity) -> None:
    assert browser.get("/api/v1/auth/me").status_code == 401
    response = browser.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["username"] == "alice" and body["user"]["role"] == "member"
    assert body["auth"] == "session" and len(body["csrf_token"]) >= 32
    cookies = response.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith("fitboard_session="))
    assert "HttpOnly" in session_cookie and "SameSite=lax" in session_cookie
    assert "Secure" not in session_cookie  # plain http here
    me = browser.get("/api/v1/auth/me").json()
    assert me["user"]["username"] == "alice" and me["csrf_token"] == body["csrf_token"]
    assert browser.get("/api/v1/runs").status_code == 200  # reads with the cookie

    out = browser.post("/api/v1/auth/logout", headers={"X-CSRF-Token": body["csrf_token"]})
    assert out.status_code == 204
    browser.cookies.clear()
    assert browser.get("/api/v1/auth/me").status_code == 401


def test_session_cookie_is_secure_over_https(api: TestClient, alice: Identity) -> None:
    with TestClient(api.app, base_url="https://testserver") as client:
        response = client.post(
            "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
        )
    assert response.status_code == 200
    session_cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("fitboard_session=")
    )
    assert "Secure" in session_cookie and "HttpOnly" in session_cookie


def test_wrong_password_is_401_without_telling_who_exists(
    browser: TestClient, alice: Identity, api: TestClient, pg_url: str
) -> None:
    wrong = browser.post("/api/v1/auth/login", json={"username": "alice", "password": "nope!"})
    unknown = browser.post("/api/v1/auth/login", json={"username": "nobody", "password": "x"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["detail"] == "wrong username or password"
    assert "set-cookie" not in wrong.headers
    # a deactivated user answers the same
    deactivated = create_identity(pg_url, "gone", "member", password=PASSWORD)
    assert api.patch(f"/api/v1/users/{deactivated.user_id}", json={"is_active": False}).is_success
    gone = browser.post("/api/v1/auth/login", json={"username": "gone", "password": PASSWORD})
    assert gone.status_code == 401 and gone.json() == wrong.json()
    bearer = TestClient(api.app, headers={"Authorization": f"Bearer {deactivated.token}"})
    assert bearer.get("/api/v1/runs").status_code == 401


def test_cookie_post_needs_the_csrf_header(browser: TestClient, alice: Identity) -> None:
    csrf = _login(browser, "alice", PASSWORD)["csrf_token"]
    body = {"name": "csrf", "preset": "digits-mlp"}
    refused = browser.post("/api/v1/runs", json=body)
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden" and "X-CSRF-Token" in refused.json()["detail"]
    forged = browser.post("/api/v1/runs", json=body, headers={"X-CSRF-Token": "guess" * 8})
    assert forged.status_code == 403
    made = browser.post("/api/v1/runs", json=body, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text
    assert made.json()["launched_by"] == "alice"
    # reads need no CSRF token
    assert browser.get(f"/api/v1/runs/{made.json()['id']}").status_code == 200


def test_login_from_another_site_is_refused(browser: TestClient, alice: Identity) -> None:
    creds = {"username": "alice", "password": PASSWORD}
    evil = browser.post(
        "/api/v1/auth/login", json=creds, headers={"Origin": "https://evil.example"}
    )
    assert evil.status_code == 403 and "set-cookie" not in evil.headers
    same = browser.post("/api/v1/auth/login", json=creds, headers={"Origin": "http://testserver"})
    assert same.status_code == 200


def test_api_token_shown_once_used_then_revoked(
    browser: TestClient, alice: Identity, pg_url: str
) -> None:
    csrf = _login(browser, "alice", PASSWORD)["csrf_token"]
    created = browser.post(
        "/api/v1/auth/tokens", json={"name": "laptop"}, headers={"X-CSRF-Token": csrf}
    )
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    assert token.startswith(created.json()["prefix"]) and len(token) > 40
    listed = browser.get("/api/v1/auth/tokens").json()["items"]
    mine = next(t for t in listed if t["id"] == created.json()["id"])
    assert "token" not in mine and mine["last_used_at"] is None
    assert token not in browser.get("/api/v1/auth/tokens").text  # never shown again

    script = TestClient(browser.app, headers={"Authorization": f"Bearer {token}"})
    me = script.get("/api/v1/auth/me").json()
    assert me["user"]["username"] == "alice" and me["auth"] == "token"
    # a Bearer request needs no CSRF token
    run = script.post("/api/v1/runs", json={"name": "by token", "preset": "digits-mlp"})
    assert run.status_code == 201 and run.json()["launched_by"] == "alice"
    used = next(
        t for t in browser.get("/api/v1/auth/tokens").json()["items"] if t["id"] == mine["id"]
    )
    assert used["last_used_at"] is not None
    # last_used_at is written at most once a minute: not again 10 s later, again 2 min later
    for age_s, rewritten in ((10, False), (120, True)):
        before = _age_last_used(pg_url, mine["id"], seconds=age_s)
        assert script.get("/api/v1/auth/me").status_code == 200
        assert (_last_used(pg_url, mine["id"]) != before) is rewritten

    revoked = browser.delete(f"/api/v1/auth/tokens/{mine['id']}", headers={"X-CSRF-Token": csrf})
    assert revoked.status_code == 204
    after = script.get("/api/v1/runs")
    assert after.status_code == 401 and after.json()["code"] == "unauthenticated"
    assert mine["id"] not in [t["id"] for t in browser.get("/api/v1/auth/tokens").json()["items"]]
    assert (
        TestClient(browser.app, headers={"Authorization": "Bearer nonsense"})
        .get("/api/v1/runs")
        .status_code
        == 401
    )


def _age_last_used(url: str, token_id: int, *, seconds: int) -> datetime:
    from backend.db.session import session_scope
    from backend.users.models import ApiToken

    with session_scope(url) as session:
        token = session.get(ApiToken, token_id)
        assert token is not None
        token.last_used_at = datetime.now(UTC) - timedelta(seconds=seconds)
        return token.last_used_at


def _last_used(url: str, token_id: int) -> datetime | None:
    from backend.db.session import session_scope
    from backend.users.models import ApiToken

    with session_scope(url) as session:
        token = session.get(ApiToken, token_id)
        assert token is not None
        return token.last_used_at


def test_passwords_tokens_and_sessions_are_hashed_at_rest(
    browser: TestClient, alice: Identity, pg_url: str
) -> None:
    login = browser.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    session_id = login.cookies["fitboard_session"]
    csrf = login.json()["csrf_token"]
    token = browser.post(
        "/api/v1/auth/tokens", json={"name": "at rest"}, headers={"X-CSRF-Token": csrf}
    ).json()["token"]
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        dump = "\n".join(
            str(tuple(row))
            for table in ("users", "api_tokens", "user_sessions")
            for row in conn.execute(text(f"SELECT * FROM {table}"))
        )
        stored_hash = conn.execute(
            text("SELECT password_hash FROM users WHERE username = 'alice'")
        ).scalar_one()
        token_hashes = set(conn.execute(text("SELECT token_hash FROM api_tokens")).scalars())
    engine.dispose()
    for secret in (PASSWORD, token, session_id):
        assert secret not in dump
    assert stored_hash.startswith("$argon2")
    assert hashlib.sha256(token.encode()).hexdigest() in token_hashes
    assert hashlib.sha256(session_id.encode()).hexdigest() in dump


def test_members_change_only_their_own_runs(api: TestClient, alice: Identity, pg_url: str) -> None:
    as_alice = TestClient(api.app, headers={"Authorization": f"Bearer {alice.token}"})
    bob = create_identity(pg_url, "bob", "member")
    as_bob = TestClient(api.app, headers={"Authorization": f"Bearer {bob.token}"})
    run = as_alice.post("/api/v1/runs", json={"name": "alice's", "preset": "digits-mlp"}).json()
    refused = as_bob.patch(f"/api/v1/runs/{run['id']}", json={"notes": "mine now"})
    assert refused.status_code == 403 and "launched" in refused.json()["detail"]
    assert as_bob.post(f"/api/v1/runs/{run['id']}/cancel").status_code == 403
    assert as_alice.patch(f"/api/v1/runs/{run['id']}", json={"notes": "ok"}).status_code == 200
    assert api.post(f"/api/v1/runs/{run['id']}/cancel").status_code == 200  # an admin may
    # the history filters by launcher
    listed = as_bob.get("/api/v1/runs", params={"launcher": "alice"}).json()["items"]
    assert listed and {r["launched_by"] for r in listed} == {"alice"}
    assert as_bob.get("/api/v1/runs", params={"launcher": "bob"}).json()["items"] == []
    facets = as_bob.get("/api/v1/runs/facets").json()
    assert "alice" in {f["value"] for f in facets["launchers"]}


def test_admin_manages_users_and_the_last_admin_stays(api: TestClient, alice: Identity) -> None:
    made = api.post("/api/v1/users", json={"username": "carol", "role": "viewer"})
    assert made.status_code == 201, made.text
    password = made.json()["password"]
    assert password and made.json()["user"]["role"] == "viewer"
    with TestClient(api.app) as carol:
        _login(carol, "carol", password)
        assert carol.get("/api/v1/users").status_code == 403
        csrf = carol.get("/api/v1/auth/me").json()["csrf_token"]
        viewer_post = carol.post(
            "/api/v1/runs",
            json={"name": "x", "preset": "digits-mlp"},
            headers={"X-CSRF-Token": csrf},
        )
        assert viewer_post.status_code == 403
    promoted = api.patch(f"/api/v1/users/{made.json()['user']['id']}", json={"role": "member"})
    assert promoted.json()["user"]["role"] == "member"
    reset = api.patch(f"/api/v1/users/{made.json()['user']['id']}", json={"reset_password": True})
    assert reset.json()["password"] and reset.json()["password"] != password
    assert api.post("/api/v1/users", json={"username": "carol"}).status_code == 409
    me = api.get("/api/v1/auth/me").json()["user"]
    admins = [u for u in api.get("/api/v1/users").json()["items"] if u["role"] == "admin"]
    if len(admins) == 1:
        demote = api.patch(f"/api/v1/users/{me['id']}", json={"role": "viewer"})
        assert demote.status_code == 409


def test_change_own_password(browser: TestClient, pg_url: str) -> None:
    create_identity(pg_url, "dave", "viewer", password=PASSWORD)
    csrf = _login(browser, "dave", PASSWORD)["csrf_token"]
    wrong = browser.post(
        "/api/v1/auth/password",
        json={"current_password": "not mine", "new_password": "a new secret"},
        headers={"X-CSRF-Token": csrf},
    )
    assert wrong.status_code == 422
    changed = browser.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "a new secret"},
        headers={"X-CSRF-Token": csrf},
    )
    assert changed.status_code == 204
    browser.cookies.clear()
    _login(browser, "dave", "a new secret")


def test_auth_off_refuses_to_start_on_a_public_host(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "FITBOARD_AUTH": "off",
        "FITBOARD_HOST": "0.0.0.0",
        "FITBOARD_HOME": str(tmp_path),
    }
    port = str(free_port())
    started = subprocess.run(
        [sys.executable, "-m", "uvicorn", "backend.main:app", "--host", "0.0.0.0", "--port", port],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode != 0
    assert "FITBOARD_AUTH=off" in started.stderr and "loopback" in started.stderr


def test_auth_off_on_loopback_makes_everyone_a_local_admin(
    app_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.api.app import create_app
    from backend.config import get_settings

    monkeypatch.setenv("FITBOARD_AUTH", "off")
    monkeypatch.setenv("FITBOARD_HOST", "localhost")
    get_settings.cache_clear()
    try:
        client = TestClient(create_app(), base_url="http://127.0.0.1:8000")
        me = client.get("/api/v1/auth/me").json()
        assert me["auth"] == "off" and me["user"]["role"] == "admin"
        made = client.post("/api/v1/runs", json={"name": "laptop", "preset": "digits-mlp"})
        assert made.status_code == 201 and made.json()["launched_by"] == "local"
        # a connection to any other address of the machine gets no identity for free
        remote = TestClient(create_app(), base_url="http://10.1.2.3:8000")
        refused = remote.post("/api/v1/runs", json={"name": "lan", "preset": "digits-mlp"})
        assert refused.status_code == 403 and "loopback" in refused.json()["detail"]
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_stack_bootstrap_creates_the_first_admin_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from backend.config import get_settings
    from backend.db.migrate import upgrade
    from backend.db.session import session_scope
    from backend.users import bootstrap
    from backend.users import service as users

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("FITBOARD_ADMIN_PASSWORD", raising=False)
    get_settings.cache_clear()
    try:
        bootstrap.announce_first_admin(get_settings(), "http://127.0.0.1:8000")
        printed = capsys.readouterr().out
        password = printed.split("password ")[1].split()[0]
        assert "username 'admin'" in printed and len(password) >= 12
        with session_scope(url) as session:
            admin = users.authenticate(session, username="admin", password=password)
            assert admin.role == "admin"
        bootstrap.announce_first_admin(get_settings(), "http://127.0.0.1:8000")
        assert capsys.readouterr().out == ""  # only on a database nobody can sign in to

        # FITBOARD_ADMIN_PASSWORD on another fresh database; then the admin CLI
        other = f"sqlite:///{tmp_path / 'other.db'}"
        upgrade(other)
        monkeypatch.setenv("DATABASE_URL", other)
        monkeypatch.setenv("FITBOARD_ADMIN_PASSWORD", "chosen password")
        get_settings.cache_clear()
        assert bootstrap.bootstrap_admin(get_settings()) == "chosen password"
        cli = subprocess.run(
            [sys.executable, "-m", "backend.users", "create-user", "erin", "--role", "viewer"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": other},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert cli.returncode == 0, cli.stderr
        erin_password = cli.stdout.rsplit(": ", 1)[1].strip()
        with session_scope(other) as session:
            users.authenticate(session, username="admin", password="chosen password")
            erin = users.authenticate(session, username="erin", password=erin_password)
            assert erin.role == "viewer"

        # what docker compose runs after migrating: the same, from the command line, once
        third = f"sqlite:///{tmp_path / 'third.db'}"
        upgrade(third)
        env = {**os.environ, "DATABASE_URL": third}
        env.pop("FITBOARD_ADMIN_PASSWORD", None)
        command = [sys.executable, "-m", "backend.users", "first-admin"]
        first = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        assert first.returncode == 0, first.stderr
        printed_password = first.stdout.split("password ")[1].split()[0]
        with session_scope(third) as session:
            users.authenticate(session, username="admin", password=printed_password)
        again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        assert again.returncode == 0 and "admin" not in again.stdout
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
