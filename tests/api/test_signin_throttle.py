"""Sign-in throttling: per account and per client address, growing delays, 429 with
Retry-After that says why, bounded per account (a colleague is never locked out for long),
state in Redis shared by every API process, and an in-memory fallback without Redis."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from backend.config import Settings, get_settings
from backend.users.throttle import KEY_PREFIX, Limit, SignInThrottle, delay_after
from tests.conftest import create_identity

PASSWORD = "the right password"


def _client(api: TestClient, address: str) -> TestClient:
    return TestClient(api.app, client=(address, 40000))


def _address() -> str:
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


def _post(client: TestClient, username: str, password: str) -> tuple[int, dict, dict]:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    return response.status_code, response.json(), dict(response.headers)


@pytest.fixture
def user(pg_url: str, app_env: None) -> str:
    name = f"thr-{uuid.uuid4().hex[:8]}"
    create_identity(pg_url, name, "member", password=PASSWORD)
    return name


def test_delays_grow_then_stop_at_the_cap() -> None:
    limit = Limit("account", free_failures=5, max_delay_s=60)
    delays = [delay_after(n, limit) for n in range(1, 14)]
    assert delays[:5] == [0.0] * 5
    assert delays[5:] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert delay_after(10**6, limit) == 60


def test_an_account_waits_longer_after_each_failure(api: TestClient, user: str) -> None:
    client = _client(api, _address())
    for _ in range(5):  # free failures: answered normally
        assert _post(client, user, "wrong")[0] == 401
    assert _post(client, user, "wrong")[0] == 401  # the 6th: now it waits 1 s
    status, body, headers = _post(client, user, PASSWORD)
    assert status == 429, body  # even the right password waits
    assert body["code"] == "throttled" and "too many failed sign-ins" in body["detail"]
    assert "account" in body["detail"] and headers["retry-after"] == "1"
    time.sleep(1.1)
    assert _post(client, user, "wrong")[0] == 401  # the 7th: 2 s
    status, body, headers = _post(client, user, "wrong")
    assert status == 429 and headers["retry-after"] == "2"
    # waiting does not lengthen because of refused attempts; after it, the right one works
    time.sleep(2.1)
    assert _post(client, user, PASSWORD)[0] == 200
    # a good sign-in clears the account's count: the next failure is free again
    assert _post(client, user, "wrong")[0] == 401
    assert _post(client, user, PASSWORD)[0] == 200


@pytest.fixture
def short_account_cap(app_env: None) -> Iterator[None]:
    os.environ["FITBOARD_SIGNIN_ACCOUNT_FREE_FAILURES"] = "2"
    os.environ["FITBOARD_SIGNIN_ACCOUNT_MAX_DELAY_S"] = "2"
    os.environ["FITBOARD_SIGNIN_ADDRESS_FREE_FAILURES"] = "3"
    get_settings.cache_clear()
    yield
    for name in ("ACCOUNT_FREE_FAILURES", "ACCOUNT_MAX_DELAY_S", "ADDRESS_FREE_FAILURES"):
        os.environ.pop(f"FITBOARD_SIGNIN_{name}")
    get_settings.cache_clear()


def test_an_attacker_cannot_lock_a_colleague_out(
    api: TestClient, user: str, short_account_cap: None
) -> None:
    attacker = _client(api, _address())
    refused_for: list[int] = []
    for _ in range(12):  # one source, many guesses: the address waits longer and longer
        status, _, headers = _post(attacker, user, "guess")
        if status == 429:
            refused_for.append(int(headers["retry-after"]))
            time.sleep(min(2.1, int(headers["retry-after"])))
    assert refused_for and max(refused_for) > 2  # the address is held past the account's cap
    status, body, _ = _post(attacker, f"other-{user}", "guess")
    assert status == 429 and "address" in body["detail"]  # any account, from that address
    # the colleague, from their own address, waits at most the account's cap
    colleague = _client(api, _address())
    status, body, headers = _post(colleague, user, PASSWORD)
    if status == 429:
        assert int(headers["retry-after"]) <= 2 and "account" in body["detail"]
        time.sleep(int(headers["retry-after"]) + 0.1)
        status = _post(colleague, user, PASSWORD)[0]
    assert status == 200


def test_the_state_is_in_redis_and_shared(api: TestClient, user: str, redis_url: str) -> None:
    address = _address()
    client = _client(api, address)
    for _ in range(6):
        _post(client, user, "wrong")
    stored = redis.Redis.from_url(redis_url).hgetall(f"{KEY_PREFIX}account:{user}")
    assert int(stored[b"failures"]) == 6
    # another API process (a throttle with an empty memory) sees the same wait
    other = SignInThrottle(get_settings())
    with pytest.raises(Exception, match="too many failed sign-ins"):
        other.check(username=user, address="192.0.2.1")


def test_without_redis_it_counts_in_memory() -> None:
    settings = Settings(
        redis_url="redis://127.0.0.1:1/0",
        signin_account_free_failures=1,
        signin_address_free_failures=100,
    )
    throttle = SignInThrottle(settings)
    throttle.failed(username="mem", address="192.0.2.9")
    throttle.check(username="mem", address="192.0.2.9")  # one free failure
    throttle.failed(username="mem", address="192.0.2.9")
    with pytest.raises(Exception, match="account"):
        throttle.check(username="MEM", address="192.0.2.10")
    throttle.succeeded(username="mem")
    throttle.check(username="mem", address="192.0.2.9")


def test_login_documents_429_with_retry_after(api: TestClient) -> None:
    operation = api.app.openapi()["paths"]["/api/v1/auth/login"]["post"]  # type: ignore[attr-defined]
    assert "Retry-After" in operation["responses"]["429"]["headers"]
