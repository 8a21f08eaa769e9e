"""Live events fanned out once per run per API process.

However many browsers watch a run, this process holds one Redis subscription for all runs (one
pub/sub connection), and one feed per watched run that keeps the latest of its events in memory.
A committed event arrives whole on the subscription (backend.events.bus.Published): the feed
appends it when it follows the feed's last event, and otherwise (a gap: a lost or crossed
message, a bare "new") reads the new events from SQL once. Every viewer of the run is served
from that buffer; SQL is read for a viewer only to catch up (a Last-Event-ID older than the
buffer, or a viewer that fell behind it). A viewer that stops reading holds up nobody: the
feed never waits for a viewer, it only wakes them.

Without Redis the feeds poll SQL every second (still one read per run, however many viewers),
the health endpoint says so, and the hub reconnects on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from starlette.concurrency import run_in_threadpool

from backend.config import get_settings
from backend.db.session import session_scope
from backend.errors import NotFound
from backend.events import bus, runstate
from backend.events import service as events

log = logging.getLogger(__name__)

BATCH = 500
# the recent events each feed keeps in memory for its viewers
BUFFER_EVENTS = 5000
# without Redis the feeds check SQL this often
FALLBACK_POLL_S = 1.0
# with Redis, SQL is still checked this often in case a notification was lost
SAFETY_POLL_S = 5.0
REDIS_RETRY_S = 5.0
# a waiting viewer is woken at least this often (the pump also wakes them on each poll)
BEAT_S = 5.0


@dataclass
class Chunk:
    """Events read from SQL after some id: (id, SSE text) each, and the run's state."""

    lines: list[tuple[int, str]]
    last_id: int
    finished: bool
    full: bool


def read(run_id: int, after_id: int) -> Chunk:
    with session_scope() as session:
        try:
            finished = runstate.state(session, run_id).finished
        except NotFound:  # deleted while watched: nothing more will come
            return Chunk([], after_id, True, False)
        rows = events.after(session, run_id=run_id, after_id=after_id, limit=BATCH)
        lines = [(e.id, events.sse_text(e.id, e.kind, e.data)) for e in rows]
    last = lines[-1][0] if lines else after_id
    return Chunk(lines, last, finished and len(rows) < BATCH, len(rows) == BATCH)


@dataclass
class Feed:
    """One run's live events in this process: read from SQL once, kept for every viewer."""

    run_id: int
    base: int  # events after this id are all in `lines` (until trimmed)
    lines: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=BUFFER_EVENTS))
    last_id: int = 0
    floor: int = 0  # the buffer holds every event after this id
    finished: bool = False
    failed: bool = False  # the pump stopped on an error: its viewers read SQL themselves
    viewers: int = 0
    version: int = 0  # one more on every change (new events, finished, failed, a beat)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)
    _beat: asyncio.TimerHandle | None = None
    _text: tuple[int, int, bytes] | None = None  # (after id, last id, the SSE text between)

    async def changed(self, version: int) -> None:
        """Return once the feed has changed since ``version`` (at once if it already has), or
        after at most BEAT_S (a viewer's keep-alive clock runs meanwhile).

        A waiting viewer costs one future, resolved by the change: no task, timer or shield
        of its own, so a batch's wake-up of 1,000 viewers stays cheap and leaves nothing behind
        for the garbage collector (backend.heap). A cancelled viewer cancels only its own."""
        if self.version != version:
            return
        loop = asyncio.get_running_loop()
        if self._beat is None:
            self._beat = loop.call_later(BEAT_S, self._on_beat)
        waiter = loop.create_future()
        self._waiters.append(waiter)
        await waiter

    def close(self) -> None:
        """The last viewer left: no more keep-alive beats."""
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None

    def _on_beat(self) -> None:
        self._beat = None
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def since(self, after_id: int) -> list[tuple[int, str]] | None:
        """Buffered events after ``after_id``; None when the buffer no longer covers it.
        Read from the newest back: a viewer that keeps up costs only what it has not seen."""
        if after_id < self.floor:
            return None
        newer: list[tuple[int, str]] = []
        for line in reversed(self.lines):
            if line[0] <= after_id:
                break
            newer.append(line)
        newer.reverse()
        return newer

    def text_after(self, after_id: int) -> tuple[int, bytes] | None:
        """(last id, SSE bytes) of the buffered events after ``after_id``; None when the buffer
        no longer covers it. Viewers that keep up all ask for the same id after a batch: the
        text is made once and shared."""
        cached = self._text
        if cached is not None and cached[0] == after_id and cached[1] == self.last_id:
            return cached[1], cached[2]
        newer = self.since(after_id)
        if newer is None:
            return None
        if not newer:
            return after_id, b""
        text = "".join(line for _, line in newer).encode()
        self._text = (after_id, newer[-1][0], text)
        return newer[-1][0], text

    def _append(self, lines: list[tuple[int, str]]) -> None:
        for line in lines:
            if line[0] <= self.last_id:  # already here (published and read from SQL both)
                continue
            if len(self.lines) == self.lines.maxlen:
                self.floor = self.lines[0][0]  # dropped: a viewer before it reads SQL
            self.lines.append(line)
            self.last_id = line[0]

    def offer(self, event: bus.Published) -> bool:
        """Append a published event that follows the last one (True); False on a gap, which
        only SQL can fill. Any kind but metrics may end the run: the pump reads its state."""
        if event.id <= self.last_id:
            return True
        if event.prev != self.last_id:
            return False
        self._append([(event.id, event.sse)])
        self._changed()
        return event.kind == "metrics"

    async def pump(self, hub: Hub) -> None:
        """Read new events once per notification (or poll), wake every viewer; until the run
        finishes or nobody watches."""
        try:
            while True:
                chunk = await run_in_threadpool(read, self.run_id, self.last_id)
                if chunk.lines:
                    self._append(chunk.lines)
                self.finished = chunk.finished
                self._changed()
                if chunk.finished:
                    return
                if chunk.full:
                    continue
                self.wake.clear()
                timeout = SAFETY_POLL_S if hub.redis_ok else FALLBACK_POLL_S
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout)
        except asyncio.CancelledError:
            raise
        except Exception:  # a database hiccup: viewers fall back to reading SQL themselves
            log.exception("run %s: live feed failed; its viewers read SQL", self.run_id)
            self.failed = True
            self.floor = self.last_id = 2**63 - 1  # nothing buffered covers anyone now
            self._changed()


class Hub:
    """This process' feeds and its one Redis subscription (per event loop)."""

    def __init__(self) -> None:
        self.feeds: dict[int, Feed] = {}
        self.redis_ok = False
        self._pubsub: aioredis.client.PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._warned = False
        self._lock = asyncio.Lock()

    async def acquire(self, run_id: int) -> Feed:
        async with self._lock:
            feed = self.feeds.get(run_id)
            if feed is None:
                self._ensure_reader()
                base = await run_in_threadpool(_last_event_id, run_id)
                feed = Feed(run_id=run_id, base=base, last_id=base, floor=base)
                self.feeds[run_id] = feed
                await self._subscribe(run_id)  # the pump reads after: nothing slips by
                feed.task = asyncio.create_task(feed.pump(self), name=f"feed-{run_id}")
            feed.viewers += 1
            return feed

    async def release(self, feed: Feed) -> None:
        async with self._lock:
            feed.viewers -= 1
            if feed.viewers > 0 or self.feeds.get(feed.run_id) is not feed:
                return
            del self.feeds[feed.run_id]
            feed.close()
            if feed.task is not None:
                feed.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await feed.task
            await self._unsubscribe(feed.run_id)

    def stats(self) -> dict[str, Any]:
        return {
            "redis": self.redis_ok,
            "runs_watched": len(self.feeds),
            "viewers": sum(f.viewers for f in self.feeds.values()),
            "subscriptions": 1 if self._pubsub is not None else 0,
        }

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read_notifications(), name="feeds-redis")

    async def _subscribe(self, run_id: int) -> None:
        if not self._connected.is_set():  # the first viewer: give the connection a moment
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected.wait(), 1.0)
        if self._pubsub is not None:
            try:
                await self._pubsub.subscribe(bus.channel(run_id))
            except (aioredis.RedisError, OSError) as exc:
                self._redis_down(exc)

    async def _unsubscribe(self, run_id: int) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(aioredis.RedisError, OSError):
                await self._pubsub.unsubscribe(bus.channel(run_id))

    def _redis_down(self, exc: BaseException) -> None:
        if self.redis_ok or not self._warned:
            self._warned = True
            log.warning(
                "live view without Redis (%s): %d watched runs poll SQL every %.0f s until it "
                "is back",
                exc,
                len(self.feeds),
                FALLBACK_POLL_S,
            )
        self.redis_ok = False
        self._connected.clear()
        for feed in self.feeds.values():
            feed.wake.set()  # poll at the fallback pace from now on

    async def _read_notifications(self) -> None:
        """One connection for every watched run; reconnects after an outage."""
        while True:
            client = aioredis.Redis.from_url(get_settings().redis_url, socket_connect_timeout=1.0)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe("fitboard:feeds")  # a pub/sub connection needs one
                for run_id in list(self.feeds):
                    await pubsub.subscribe(bus.channel(run_id))
                self._pubsub = pubsub
                self._connected.set()
                if not self.redis_ok:
                    log.info("live view: Redis notifications on (%d watched runs)", len(self.feeds))
                self.redis_ok = True
                while True:
                    message = await pubsub.get_message(timeout=30.0)
                    if message is None or message.get("type") != "message":
                        continue
                    name = message["channel"]
                    name = name.decode() if isinstance(name, bytes) else str(name)
                    feed = self.feeds.get(_run_of(name))
                    if feed is None:
                        continue
                    data = message["data"]
                    event = bus.Published.parse(
                        data.decode() if isinstance(data, bytes) else str(data)
                    )
                    if event is None or not feed.offer(event):
                        feed.wake.set()  # the pump reads SQL
            except asyncio.CancelledError:
                raise
            except (aioredis.RedisError, OSError) as exc:
                self._pubsub = None
                self._redis_down(exc)
                await asyncio.sleep(REDIS_RETRY_S)
            finally:
                self._pubsub = None if self._pubsub is pubsub else self._pubsub
                with contextlib.suppress(aioredis.RedisError, OSError, RuntimeError):
                    await pubsub.aclose()
                    await client.aclose()


def _run_of(channel_name: str) -> int:
    try:
        return int(channel_name.rsplit(":", 1)[-1])
    except ValueError:
        return -1


def _last_event_id(run_id: int) -> int:
    with session_scope() as session:
        return events.last_id(session, run_id=run_id)


_hubs: dict[int, Hub] = {}


def hub() -> Hub:
    """This event loop's hub (uvicorn runs one loop per process)."""
    loop_id = id(asyncio.get_running_loop())
    if loop_id not in _hubs:
        _hubs[loop_id] = Hub()
    return _hubs[loop_id]


def stats() -> dict[str, Any]:
    """What the live view holds in this process (for /health)."""
    totals: dict[str, Any] = {"redis": None, "runs_watched": 0, "viewers": 0}
    for each in _hubs.values():
        current = each.stats()
        totals["redis"] = current["redis"] if totals["redis"] is None else totals["redis"]
        totals["runs_watched"] += current["runs_watched"]
        totals["viewers"] += current["viewers"]
    return totals
