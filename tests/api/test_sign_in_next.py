"""After signing in a browser only ever goes to a path on this site (no open redirect)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from backend.users.redirects import safe_next
from tests.conftest import Identity, create_identity

PASSWORD = "next-page secret"
# each of these is read by some browser as another host, or is another host outright
OFF_SITE = [
    "//evil.example/",
    "/\\evil.example/",
    "/\t/evil.example/",
    "/\n/evil.example/",
    "/\r\n/evil.example",
    "\t//evil.example",
    " //evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "evil.example",
    "/runs\\..\\\\evil.example",
    "/\x00/evil.example",
]


@pytest.fixture(scope="module")
def nina(pg_url: str, app_env: None) -> Identity:
    return create_identity(pg_url, "nina-next", "member", password=PASSWORD)


@pytest.mark.parametrize("value", OFF_SITE)
def test_off_site_next_falls_back_to_home(value: str) -> None:
    assert safe_next(value) == "/"


@pytest.mark.parametrize("value", ["/", "/runs/3", "/compare?runs=1,2#loss", "/%2F%2Fevil"])
def test_same_origin_paths_are_kept(value: str) -> None:
    assert safe_next(value) == value


@pytest.mark.parametrize("value", ["/\t/evil.example/", "//evil.example", "/runs/7"])
def test_login_answers_with_a_checked_next(api: TestClient, nina: Identity, value: str) -> None:
    with TestClient(api.app) as browser:
        response = browser.post(
            "/api/v1/auth/login",
            json={"username": nina.username, "password": PASSWORD, "next": value},
        )
    assert response.status_code == 200, response.text
    assert response.json()["next"] == (value if value == "/runs/7" else "/")


def test_login_page_drops_an_off_site_next(anonymous: TestClient) -> None:
    kept = anonymous.get("/login", params={"next": "/runs/7"}, follow_redirects=False)
    assert kept.status_code == 200
    for value in ("/\t/evil.example/", "/\\evil.example", "//evil.example"):
        dropped = anonymous.get("/login", params={"next": value}, follow_redirects=False)
        assert dropped.status_code == 303 and dropped.headers["location"] == "/login", value
