"""Webhooks never reach what only the API can (SSRF): private, loopback, link-local and
reserved addresses are refused on save (422 naming webhook_url, nothing stored) and before
every POST (not posted), unless FITBOARD_WEBHOOK_ALLOWED_NETWORKS allows their network."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from backend.config import Settings
from backend.notify import targets, webhook

SETTINGS = "/api/v1/notifications/settings"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://100.64.0.1/hook",  # carrier-grade NAT
        "http://0.0.0.0:8000/",
        "http://[::1]:8000/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fd00::1]/",
        "http://localhost:5432/",  # a name that resolves to loopback
    ],
)
def test_a_private_webhook_is_refused_on_save(api: TestClient, url: str) -> None:
    before = api.put(SETTINGS, json={"webhook_url": "https://hooks.example.org/kept"})
    assert before.status_code == 200, before.text
    response = api.put(SETTINGS, json={"webhook_url": url})
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "webhook_url"
    assert "FITBOARD_WEBHOOK_ALLOWED_NETWORKS" in error["message"]
    assert api.get(SETTINGS).json()["webhook_url"] == "https://hooks.example.org/kept"
    api.put(SETTINGS, json={})


def test_a_public_or_not_yet_resolvable_webhook_is_kept(api: TestClient) -> None:
    for url in ("http://8.8.8.8/hook", "https://hooks.example.org/x"):
        response = api.put(SETTINGS, json={"webhook_url": url})
        assert response.status_code == 200, response.text
        assert response.json()["webhook_url"] == url
    api.put(SETTINGS, json={})


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    got: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_address[1]}/hook", got
    server.shutdown()
    server.server_close()


def test_before_each_post_the_address_is_checked_again(
    receiver: tuple[str, list[bytes]],
) -> None:
    url, got = receiver
    delivery = webhook.Delivery(1, 1, url, "secret", "run 1 failed", {"event": "failed"})
    refused = webhook.post(delivery, timeout_s=5)
    assert not refused.ok and refused.status_code is None
    assert refused.error is not None and refused.error.startswith("not posted: ")
    assert got == [], "nothing was sent to a loopback address"
    allowed = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
    posted = webhook.post(delivery, timeout_s=5, allowed=allowed)
    assert posted.ok and posted.status_code == 204
    assert len(got) == 1


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.2", False),
        ("169.254.0.1", False),
        ("172.16.5.4", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("fe80::1", False),
    ],
)
def test_which_addresses_a_webhook_may_reach(address: str, ok: bool) -> None:
    ip = ipaddress.ip_address(address)
    if ok:
        targets.check_address(ip, [])
    else:
        with pytest.raises(targets.Refused):
            targets.check_address(ip, [])
        targets.check_address(ip, [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")])


def test_a_bad_allowed_network_is_named_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FITBOARD_WEBHOOK_ALLOWED_NETWORKS", "10.0.0.0/8, not-a-network")
    with pytest.raises(ValidationError, match="not-a-network"):
        Settings()
    monkeypatch.setenv("FITBOARD_WEBHOOK_ALLOWED_NETWORKS", "10.0.0.0/8, 192.168.1.7")
    assert [str(n) for n in Settings().webhook_networks] == ["10.0.0.0/8", "192.168.1.7/32"]
