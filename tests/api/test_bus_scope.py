"""Pub/sub is server-wide while keys are per database: two deployments on one Redis server
(each on its own db, each numbering runs from 1) must not wake or cancel each other's runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from backend.config import get_settings
from backend.events import bus
from worker.port import CancelWatch

# no real run has this id: the test publishes on a shared Redis server that other test
# sessions (on other databases) may be using
RUN_ID = 2_000_000_001


def _on_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


def _use(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    get_settings.cache_clear()


@pytest.fixture
def deployments(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """Two REDIS_URLs on the test Redis server: the tests' db and the next one."""
    db = int(urlsplit(redis_url).path.lstrip("/") or 0)
    yield redis_url, _on_db(redis_url, (db + 1) % 16)
    get_settings.cache_clear()


def test_channels_carry_the_database(
    deployments: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, theirs = deployments
    _use(monkeypatch, ours)
    mine = bus.channel(RUN_ID), bus.cancel_channel(RUN_ID)
    _use(monkeypatch, theirs)
    assert bus.channel(RUN_ID) not in mine and bus.cancel_channel(RUN_ID) not in mine


def test_a_cancel_in_another_database_does_not_stop_a_run(
    deployments: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, theirs = deployments
    _use(monkeypatch, ours)
    watch = CancelWatch(run_id=RUN_ID, redis_url=ours)
    watch.start()
    server = redis.Redis.from_url(ours)
    deadline = time.monotonic() + 10
    while not server.pubsub_numsub(bus.cancel_channel(RUN_ID))[0][1]:  # listening
        assert time.monotonic() < deadline, "the cancel listener did not subscribe"
        time.sleep(0.05)
    _use(monkeypatch, theirs)
    assert bus.publish_cancel(RUN_ID)  # the other deployment cancels its own run of that id
    assert not watch.cancelled.wait(1.0), "a cancel from another database stopped this run"
    _use(monkeypatch, ours)
    assert bus.publish_cancel(RUN_ID)
    assert watch.cancelled.wait(5.0), "this deployment's own cancel arrives"
