"""Sign-in throttling: growing delays per account and per client address.

Each failed sign-in counts against the username tried and against the client's address. Past
a few free failures every further one doubles the wait (1 s, 2 s, 4 s, ...) before that key may
try again, up to a cap; an attempt made while a key must wait is answered 429 with Retry-After
and is not counted, so hammering does not lengthen the wait. The per-account cap is short (a
minute by default): an attacker can slow a colleague's sign-in but never lock them out for
longer. The per-address cap is long (15 minutes): that is where a guessing source is stopped.
A key's count is forgotten after a quiet window, and a good sign-in clears its account's count.

State lives in Redis (shared by every API process) and falls back to this process's memory
when Redis cannot be reached.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import redis

from backend.config import Settings
from backend.errors import Throttled

log = logging.getLogger(__name__)

KEY_PREFIX = "fitboard:signin:"
BASE_DELAY_S = 1.0


@dataclass(frozen=True)
class Limit:
    kind: str  # "account" or "address": named in the 429
    free_failures: int
    max_delay_s: float


def delay_after(failures: int, limit: Limit) -> float:
    """How long a key waits after its ``failures``-th failure in a row."""
    over = failures - limit.free_failures
    if over <= 0:
        return 0.0
    return min(limit.max_delay_s, BASE_DELAY_S * 2 ** min(over - 1, 30))


class Store(Protocol):
    def blocked_until(self, key: str) -> float: ...
    def fail(self, key: str, limit: Limit, window_s: float, now: float) -> float: ...
    def clear(self, key: str) -> None: ...


class MemoryStore:
    """One process's counts: the fallback when Redis is unreachable."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, tuple[int, float, float]] = {}  # failures, until, expires

    def blocked_until(self, key: str) -> float:
        with self._lock:
            _, until, expires = self._state.get(key, (0, 0.0, 0.0))
            return until if expires > time.time() else 0.0

    def fail(self, key: str, limit: Limit, window_s: float, now: float) -> float:
        with self._lock:
            failures, _, expires = self._state.get(key, (0, 0.0, 0.0))
            failures = failures + 1 if expires > now else 1
            until = now + delay_after(failures, limit)
            self._state[key] = (failures, until, max(until, now + window_s))
            if len(self._state) > 100_000:  # forget the expired ones now and then
                self._state = {k: v for k, v in self._state.items() if v[2] > now}
            return until

    def clear(self, key: str) -> None:
        with self._lock:
            self._state.pop(key, None)


class RedisStore:
    """Counts shared by every API process: a hash per key (failures, until) with a TTL."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)

    def blocked_until(self, key: str) -> float:
        value = self.client.hget(key, "until")
        return float(value) if value else 0.0

    def fail(self, key: str, limit: Limit, window_s: float, now: float) -> float:
        failures = int(self.client.hincrby(key, "failures", 1))
        until = now + delay_after(failures, limit)
        pipe = self.client.pipeline()
        pipe.hset(key, "until", repr(until))
        pipe.expire(key, math.ceil(max(window_s, until - now)))
        pipe.execute()
        return until

    def clear(self, key: str) -> None:
        self.client.delete(key)


class SignInThrottle:
    def __init__(self, settings: Settings) -> None:
        self.window_s = settings.signin_window_s
        self.account = Limit(
            "account", settings.signin_account_free_failures, settings.signin_account_max_delay_s
        )
        self.address = Limit(
            "address", settings.signin_address_free_failures, settings.signin_address_max_delay_s
        )
        self.redis = RedisStore(settings.redis_url)
        self.memory = MemoryStore()

    def _keys(self, username: str, address: str) -> list[tuple[str, Limit]]:
        return [
            (f"{KEY_PREFIX}account:{username.strip().lower()[:64]}", self.account),
            (f"{KEY_PREFIX}address:{address}", self.address),
        ]

    def _call(self, method: str, *args: object) -> float:
        try:
            return float(getattr(self.redis, method)(*args) or 0.0)
        except redis.RedisError as exc:
            log.warning("sign-in throttle: Redis unreachable (%s); counting in memory", exc)
            return float(getattr(self.memory, method)(*args) or 0.0)

    def check(self, *, username: str, address: str) -> None:
        """Raise Throttled when this account or address must still wait."""
        now = time.time()
        waits = [
            (self._call("blocked_until", key) - now, limit.kind)
            for key, limit in self._keys(username, address)
        ]
        wait, kind = max(waits)
        if wait > 0:  # the longer wait is the one that counts, and the one named
            raise Throttled(
                f"too many failed sign-ins for this {kind}: try again in {math.ceil(wait)} s",
                retry_after_s=math.ceil(wait),
            )

    def failed(self, *, username: str, address: str) -> None:
        now = time.time()
        for key, limit in self._keys(username, address):
            self._call("fail", key, limit, self.window_s, now)

    def succeeded(self, *, username: str) -> None:
        # the address keeps its count: signing in to one's own account must not reset a
        # guessing source's count against everyone else
        key, _ = self._keys(username, "")[0]
        self._call("clear", key)


_throttles: dict[tuple[object, ...], SignInThrottle] = {}


def for_settings(settings: Settings) -> SignInThrottle:
    """One throttle per configuration (its in-memory fallback lives as long as the process)."""
    key = (
        settings.redis_url,
        settings.signin_window_s,
        settings.signin_account_free_failures,
        settings.signin_account_max_delay_s,
        settings.signin_address_free_failures,
        settings.signin_address_max_delay_s,
    )
    if key not in _throttles:
        _throttles[key] = SignInThrottle(settings)
    return _throttles[key]
