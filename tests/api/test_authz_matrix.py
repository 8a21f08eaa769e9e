"""Every /api/v1 route, tried as anonymous, viewer, member, another member and admin.

The routes come from the app itself: a new mutating endpoint that is not in ``MUTATING`` fails
the test, so nobody can add one without deciding who may call it. Allowed means anything but
401/403; denied means exactly 401 for anonymous and exactly 403 for a signed-in identity.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from tests.conftest import Identity, create_identity

WHO = ("anonymous", "viewer", "member", "other", "admin")
# who may call a route of each rule ("member" owns what the owner rules act on)
ALLOWED: dict[str, set[str]] = {
    "public": set(WHO),
    "reader": {"viewer", "member", "other", "admin"},
    "member": {"member", "other", "admin"},
    "owner": {"member", "admin"},
    "admin": {"admin"},
    # the worker protocol: worker tokens only; every user identity is a 401 (not a user's door)
    "worker": set(),
}
MISSING = "999999999"  # an id nothing has: a read that gets past auth answers 404
_names = itertools.count()


@dataclass
class Request:
    method: str
    path: str
    json: Any = None
    data: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None


@dataclass
class Setup:
    """What the requests need: clients per identity and fresh things owned by `member`."""

    clients: dict[str, TestClient]
    login: Identity

    def _created(self, path: str, body: dict[str, Any]) -> int:
        response = self.clients["member"].post(path, json=body)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    def run(self) -> int:
        """A queued run launched by `member` (its queue has no worker)."""
        return self._created(
            "/api/v1/runs", {"name": f"matrix run {next(_names)}", "preset": "digits-mlp"}
        )

    def finished_run(self) -> int:
        run_id = self.run()
        cancelled = self.clients["admin"].post(f"/api/v1/runs/{run_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        return run_id

    def external_run(self) -> int:
        return self._created("/api/v1/runs/external", {"name": f"matrix ext {next(_names)}"})

    def sweep(self) -> int:
        return self._created("/api/v1/sweeps", _sweep_body())


def _sweep_body() -> dict[str, Any]:
    return {
        "name": f"matrix sweep {next(_names)}",
        "preset": "digits-mlp",
        "space": {"fit.batch_size": {"choice": [32]}},
        "max_trials": 1,
    }


Build = Callable[[Setup], Request]
# every POST/PUT/PATCH/DELETE under /api/v1: (rule, how to call it)
MUTATING: dict[tuple[str, str], tuple[str, Build]] = {
    ("POST", "/api/v1/auth/login"): (
        "public",
        lambda s: Request(
            "POST",
            "/api/v1/auth/login",
            {"username": s.login.username, "password": s.login.password},
        ),
    ),
    ("POST", "/api/v1/auth/logout"): ("reader", lambda s: Request("POST", "/api/v1/auth/logout")),
    ("POST", "/api/v1/auth/password"): (
        "reader",
        # a wrong current password: 422 shows the call got past authorization
        lambda s: Request(
            "POST",
            "/api/v1/auth/password",
            {"current_password": "not it at all", "new_password": "long enough pw"},
        ),
    ),
    ("POST", "/api/v1/auth/tokens"): (
        "reader",
        lambda s: Request("POST", "/api/v1/auth/tokens", {"name": "matrix"}),
    ),
    ("DELETE", "/api/v1/auth/tokens/{token_id}"): (
        "reader",
        lambda s: Request("DELETE", f"/api/v1/auth/tokens/{MISSING}"),
    ),
    ("PUT", "/api/v1/auth/me/preferences"): (
        "reader",
        # each identity replaces only its own (an empty body: the page defaults)
        lambda s: Request("PUT", "/api/v1/auth/me/preferences", {}),
    ),
    ("PUT", "/api/v1/notifications/settings"): (
        "reader",
        # each identity replaces only its own (an empty body: nothing asked for)
        lambda s: Request("PUT", "/api/v1/notifications/settings", {}),
    ),
    ("POST", "/api/v1/notifications/settings/secret"): (
        "reader",
        lambda s: Request("POST", "/api/v1/notifications/settings/secret"),
    ),
    ("POST", "/api/v1/users"): (
        "admin",
        lambda s: Request(
            "POST", "/api/v1/users", {"username": f"matrix-{next(_names)}", "role": "viewer"}
        ),
    ),
    ("PATCH", "/api/v1/users/{user_id}"): (
        "admin",
        lambda s: Request("PATCH", f"/api/v1/users/{s.login.user_id}", {"display_name": "M"}),
    ),
    ("POST", "/api/v1/runs"): (
        "member",
        lambda s: Request("POST", "/api/v1/runs", {"name": "matrix", "preset": "digits-mlp"}),
    ),
    ("PATCH", "/api/v1/runs/{run_id}"): (
        "owner",
        lambda s: Request("PATCH", f"/api/v1/runs/{s.run()}", {"notes": "checked"}),
    ),
    ("DELETE", "/api/v1/runs/{run_id}"): (
        "owner",
        lambda s: Request("DELETE", f"/api/v1/runs/{s.finished_run()}"),
    ),
    ("POST", "/api/v1/runs/{run_id}/cancel"): (
        "owner",
        lambda s: Request("POST", f"/api/v1/runs/{s.run()}/cancel"),
    ),
    # no checkpoint: 409 shows the call got past authorization
    ("POST", "/api/v1/runs/{run_id}/resume"): (
        "owner",
        lambda s: Request("POST", f"/api/v1/runs/{s.finished_run()}/resume"),
    ),
    # any member forks any run (the fork is theirs)
    ("POST", "/api/v1/runs/{run_id}/fork"): (
        "member",
        lambda s: Request("POST", f"/api/v1/runs/{s.finished_run()}/fork", {"name": "matrix"}),
    ),
    ("POST", "/api/v1/runs/{run_id}/priority"): (
        "owner",
        lambda s: Request("POST", f"/api/v1/runs/{s.run()}/priority", {"priority": "high"}),
    ),
    ("POST", "/api/v1/runs/{run_id}/move-to-top"): (
        "admin",
        lambda s: Request("POST", f"/api/v1/runs/{s.run()}/move-to-top"),
    ),
    ("POST", "/api/v1/runs/external"): (
        "member",
        lambda s: Request("POST", "/api/v1/runs/external", {"name": "matrix external"}),
    ),
    ("POST", "/api/v1/runs/{run_id}/points"): (
        "owner",
        lambda s: Request(
            "POST",
            f"/api/v1/runs/{s.external_run()}/points",
            {"points": [{"key": "loss", "step": 1, "value": 0.5}]},
        ),
    ),
    ("POST", "/api/v1/runs/{run_id}/evaluation"): (
        "owner",
        lambda s: Request(
            "POST",
            f"/api/v1/runs/{s.external_run()}/evaluation",
            {"class_names": ["a", "b"], "confusion_matrix": [[3, 1], [0, 4]]},
        ),
    ),
    ("POST", "/api/v1/runs/{run_id}/finish"): (
        "owner",
        lambda s: Request(
            "POST", f"/api/v1/runs/{s.external_run()}/finish", {"status": "succeeded"}
        ),
    ),
    ("POST", "/api/v1/remote-monitor/{name}"): (
        "member",
        lambda s: Request(
            "POST", f"/api/v1/remote-monitor/matrix-{next(_names)}", {"epoch": 0, "loss": 0.5}
        ),
    ),
    ("POST", "/api/v1/sweeps"): (
        "member",
        lambda s: Request("POST", "/api/v1/sweeps", _sweep_body()),
    ),
    ("POST", "/api/v1/sweeps/preview"): (
        "member",
        lambda s: Request("POST", "/api/v1/sweeps/preview", _sweep_body()),
    ),
    ("POST", "/api/v1/sweeps/{sweep_id}/cancel"): (
        "owner",
        lambda s: Request("POST", f"/api/v1/sweeps/{s.sweep()}/cancel"),
    ),
    ("POST", "/api/v1/datasets"): (
        "member",
        lambda s: Request(
            "POST",
            "/api/v1/datasets",
            data={"name": f"matrix-{next(_names)}", "kind": "csv", "label_column": "y"},
            files={"file": ("m.csv", b"x,y\n1,a\n2,b\n3,a\n4,b\n", "text/csv")},
        ),
    ),
    # uploads record no owner: any member may delete one (see the datasets router)
    ("DELETE", "/api/v1/datasets/{dataset_id}"): (
        "member",
        lambda s: Request("DELETE", f"/api/v1/datasets/{MISSING}"),
    ),
    ("POST", "/api/v1/worker-tokens"): (
        "admin",
        lambda s: Request("POST", "/api/v1/worker-tokens", {"name": f"matrix {next(_names)}"}),
    ),
    ("DELETE", "/api/v1/worker-tokens/{token_id}"): (
        "admin",
        lambda s: Request("DELETE", f"/api/v1/worker-tokens/{MISSING}"),
    ),
    ("PUT", "/api/v1/worker/hosts/{name}"): (
        "worker",
        lambda s: Request(
            "PUT", "/api/v1/worker/hosts/matrix-worker", {"host": "h", "resources": {}}
        ),
    ),
    **{
        (method, f"/api/v1/worker/runs/{{run_id}}/{tail}"): (
            "worker",
            lambda s, method=method, tail=tail: Request(
                method, f"/api/v1/worker/runs/{s.run()}/{tail}", {"attempt": 1}
            ),
        )
        for method, tail in (
            ("POST", "claim"),
            ("POST", "heartbeat"),
            ("POST", "exit"),
            ("POST", "finish"),
            ("POST", "log"),
            ("POST", "pruning"),
            ("PUT", "artifacts/{name}"),
            ("DELETE", "artifacts/{name}"),
            ("PUT", "evaluation"),
            ("PUT", "model-summary"),
        )
    },
}
# reads are "reader" unless listed here
READS: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/health"): "public",
    ("GET", "/api/v1/users"): "admin",
    ("GET", "/api/v1/audit"): "admin",
    ("GET", "/api/v1/notifications/deliveries"): "admin",
    ("GET", "/api/v1/worker-tokens"): "admin",
    **{
        ("GET", f"/api/v1/worker/{tail}"): "worker"
        for tail in (
            "runs/{run_id}/spec",
            "runs/{run_id}/pruning",
            "runs/{run_id}/resume",
            "runs/{run_id}/artifacts/{name}",
            "datasets/{dataset_id}/manifest",
            "datasets/{dataset_id}/files/{path:path}",
        )
    },
}
_PARAM = re.compile(r"\{([^}:]+)(:[^}]*)?\}")


def _api_routes(app: Any) -> list[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if path.startswith("/api/v1"):
            found.update((m, path) for m in route.methods or () if m != "HEAD")
    return sorted(found)


def _read_request(path: str) -> Request:
    def value(match: re.Match[str]) -> str:
        return {"name": "nothing-here", "epoch": "1"}.get(match.group(1), MISSING)

    return Request("GET", _PARAM.sub(value, path))


@pytest.fixture(scope="module")
def setup(api: TestClient, pg_url: str) -> Iterator[Setup]:
    tokens = {
        who: create_identity(pg_url, f"mx-{who}", role).token
        for who, role in (("viewer", "viewer"), ("member", "member"), ("other", "member"))
    }
    login = create_identity(pg_url, "mx-login", "viewer", password="matrix password 1")
    clients = {"anonymous": TestClient(api.app), "admin": api}
    for who, token in tokens.items():
        clients[who] = TestClient(api.app, headers={"Authorization": f"Bearer {token}"})
    yield Setup(clients, login)


def _send(client: TestClient, request: Request) -> int:
    response = client.request(
        request.method, request.path, json=request.json, data=request.data, files=request.files
    )
    client.cookies.clear()  # a login must not turn a token client into a cookie client
    return response.status_code


def test_every_mutating_route_is_in_the_table(api: TestClient) -> None:
    mutating = {r for r in _api_routes(api.app) if r[0] != "GET"}
    missing = sorted(mutating - set(MUTATING))
    assert not missing, f"decide who may call these and add them to MUTATING: {missing}"
    stale = sorted(set(MUTATING) - mutating)
    assert not stale, f"routes in MUTATING that the app no longer has: {stale}"


def test_every_route_allows_and_denies_as_its_rule_says(setup: Setup, api: TestClient) -> None:
    wrong: list[str] = []
    routes = _api_routes(api.app)
    assert len(routes) > 30
    for method, path in routes:
        if method == "GET":
            rule, build = READS.get((method, path), "reader"), None
        else:
            rule, build = MUTATING[(method, path)]
        for who in WHO:
            request = build(setup) if build else _read_request(path)
            status = _send(setup.clients[who], request)
            if who in ALLOWED[rule]:
                ok = status not in (401, 403)
                expected = "allowed"
            else:
                expected = "401" if who == "anonymous" or rule == "worker" else "403"
                ok = str(status) == expected
            if not ok:
                wrong.append(
                    f"{method} {request.path} as {who} ({rule}): {status}, want {expected}"
                )
    assert not wrong, "\n".join(wrong)
