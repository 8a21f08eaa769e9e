"""Redis pub/sub: wake live viewers when a run has new events. Best effort, never blocking.

Pub/sub is server-wide while keys are per database, so the channels carry REDIS_URL's database
number: two deployments on one Redis server (db 0 and db 1, each numbering its runs from 1)
never wake, or cancel, each other's runs."""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import redis
from redis.connection import parse_url

from backend.config import get_settings

log = logging.getLogger(__name__)

# an event larger than this goes out as a bare "new" (its feeds read it from SQL)
MAX_PUBLISHED_BYTES = 256 * 1024
_RECEIVERS_KEPT = 10_000


class Published(NamedTuple):
    """A committed event as its live viewers get it: its id, the run's event before it (0: none),
    its kind and its SSE text."""

    id: int
    prev: int
    kind: str
    sse: str

    def message(self) -> str:
        return f"{self.id} {self.prev} {self.kind}\n{self.sse}"

    @classmethod
    def parse(cls, message: str) -> Published | None:
        """The event in a message; None for a bare notification ("new")."""
        head, newline, sse = message.partition("\n")
        parts = head.split(" ", 2)
        if not newline or len(parts) != 3:
            return None
        try:
            return cls(int(parts[0]), int(parts[1]), parts[2], sse)
        except ValueError:
            return None


# how many subscribers (API processes with live viewers) the run's last message reached
_receivers: OrderedDict[int, int] = OrderedDict()


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


def _publish(run_id: int, channel_name: str, *messages: str) -> int | None:
    """Send the messages in one round trip; how many subscribers got the last one, None (and a
    debug log) when Redis is away."""
    try:
        pipe = _client(get_settings().redis_url, os.getpid()).pipeline(transaction=False)
        for message in messages:
            pipe.publish(channel_name, message)
        return int(pipe.execute()[-1])
    except redis.RedisError as exc:
        log.debug("run %s: could not publish on %s: %s", run_id, channel_name, exc)
        return None


def notify(run_id: int, events: Sequence[Published] = ()) -> bool:
    """Tell live viewers a run has new events, each whole when given (else a bare "new": the
    feeds read SQL); False (and a debug log) when Redis is away."""
    fitting = [e.message() for e in events if len(e.sse) <= MAX_PUBLISHED_BYTES]
    # none given, or one too large to send: the feeds read SQL
    messages = fitting if events and len(fitting) == len(events) else [*fitting, "new"]
    reached = _publish(run_id, channel(run_id), *messages)
    if reached is None:
        return False
    _receivers[run_id] = reached
    _receivers.move_to_end(run_id)
    while len(_receivers) > _RECEIVERS_KEPT:
        _receivers.popitem(last=False)
    return True


def watched(run_id: int) -> bool:
    """Whether the run's last notification reached a live viewer's API process."""
    return _receivers.get(run_id, 0) > 0


def publish_cancel(run_id: int) -> bool:
    """Tell the run's training process to stop now (it also checks SQL, more slowly)."""
    return _publish(run_id, cancel_channel(run_id), "cancel") is not None
