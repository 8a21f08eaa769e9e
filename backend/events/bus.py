"""Redis pub/sub: wake live viewers when a run has new events. Best effort, never blocking.

Pub/sub is server-wide while keys are per database, so the channels carry REDIS_URL's database
number: two deployments on one Redis server (db 0 and db 1, each numbering its runs from 1)
never wake, or cancel, each other's runs."""

from __future__ import annotations

import logging
import os
from functools import lru_cache

import redis
from redis.connection import parse_url

from backend.config import get_settings

log = logging.getLogger(__name__)


@lru_cache
def _scope(redis_url: str) -> str:
    """``fitboard:db<N>``: the prefix of this deployment's channels (N: REDIS_URL's db)."""
    try:
        db = parse_url(redis_url).get("db") or 0
    except ValueError:  # a URL redis-py cannot read (the client fails on it too)
        db = 0
    return f"fitboard:db{db}"


def channel(run_id: int) -> str:
    return f"{_scope(get_settings().redis_url)}:run:{run_id}"


def cancel_channel(run_id: int) -> str:
    return f"{_scope(get_settings().redis_url)}:run:{run_id}:cancel"


@lru_cache
def _client(url: str, pid: int) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)


def _publish(run_id: int, channel_name: str, message: str) -> bool:
    try:
        _client(get_settings().redis_url, os.getpid()).publish(channel_name, message)
        return True
    except redis.RedisError as exc:
        log.debug("run %s: could not publish on %s: %s", run_id, channel_name, exc)
        return False


def notify(run_id: int) -> bool:
    """Tell live viewers a run has new events; False (and a debug log) when Redis is away."""
    return _publish(run_id, channel(run_id), "new")


def publish_cancel(run_id: int) -> bool:
    """Tell the run's training process to stop now (it also checks SQL, more slowly)."""
    return _publish(run_id, cancel_channel(run_id), "cancel")
