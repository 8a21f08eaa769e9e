"""Chaos on the services around a run, each test on a stack of its own: the API killed with
SIGKILL mid-run and started again on its port, Redis killed and started again empty, and a
worker killed after it took a run's message but before it could claim the run.

Each test asserts the final status, the attempt count and that every series is contiguous with
no duplicate step. The settings are the defaults an operator gets (a worker lost after 10 s of
silence, housekeeping every 2 s, a lost message sent again after 20 s).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from backend import dispatch
from tests.conftest import (
    Identity,
    create_identity,
    free_port,
    fresh_database,
    start_api,
    start_worker,
    stop_process,
    wait_http,
    worker_token,
)
from tests.e2e.helpers import (
    TOKENS,
    Event,
    assert_contiguous,
    iter_events,
    submit,
    wait_for,
    wait_status,
)
from tests.proxy import CuttableProxy

pytestmark = pytest.mark.e2e

EPOCHS = 30
ENDED = {"succeeded", "failed", "cancelled"}
BEAT_LATE_S = 4.0  # > housekeeping's 2 s tick, well inside FITBOARD_WORKER_LOST_AFTER_S
API_DOWN_S = 11.0  # more than FITBOARD_WORKER_LOST_AFTER_S (10 s), before the API starts again


@dataclass
class Stack:
    """An API, its workers and (for the Redis test) a redis-server, all this test's own."""

    env: dict[str, str]
    logs: Path
    token: str
    port: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    apis: list[subprocess.Popen[bytes]] = field(default_factory=list)
    api: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.url, timeout=30, headers=headers)

    def start_api(self) -> subprocess.Popen[bytes]:
        self.api = start_api(self.env, self.logs / "api.out", self.port)
        self.procs.append(self.api)
        self.apis.append(self.api)
        wait_http(self.url + "/api/v1/health", self.api)
        return self.api

    def start_worker(self, name: str, url: str | None = None) -> subprocess.Popen[bytes]:
        env = self.env | ({"FITBOARD_URL": url} if url else {})
        proc = start_worker(env, self.logs / f"{name}.out", name=name)
        self.procs.append(proc)
        return proc

    def wait_workers(self, client: httpx.Client, count: int, timeout_s: float = 90) -> None:
        """``count`` workers of this queue reporting (what the queue sends runs by)."""

        def online() -> bool:
            workers = client.get("/api/v1/workers").json()["items"]
            return sum(1 for w in workers if w["online"] and _ours(self, w)) >= count

        wait_for(online, timeout_s, f"{count} workers reporting")


def _ours(stack: Stack, worker: dict[str, Any]) -> bool:
    return bool(worker["queue"] == stack.env["FITBOARD_QUEUE"])


@pytest.fixture(scope="module")
def own_db(pg_url: str) -> str:
    """A database of these tests' own: no other test's API (the session's live stack) does
    housekeeping on these runs, and no other test's runs count in health's queue."""
    return fresh_database(pg_url, "chaos_services")


@pytest.fixture(scope="module")
def own_admin(own_db: str) -> Identity:
    return create_identity(own_db, "chaos-admin")


@pytest.fixture
def stack(
    own_db: str,
    redis_url: str,
    data_dir: Path,
    own_admin: Identity,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Stack]:
    pg_url, admin = own_db, own_admin
    logs = tmp_path / "logs"
    logs.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "FITBOARD_HOME": str(tmp_path / "home"),
        "FITBOARD_DATA_DIR": str(data_dir),
        "FITBOARD_QUEUE": f"fitboard-{request.node.name[-20:]}-{os.getpid()}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "FITBOARD_URL": f"http://127.0.0.1:{port}",
        "FITBOARD_WORKER_TOKEN": worker_token(pg_url, request.node.name[:60]),
    }
    built = Stack(env, logs, admin.token, port)
    TOKENS[built.url] = admin.token  # the raw SSE client of the e2e helpers sends it
    try:
        yield built
    finally:
        # workers first: a worker stopping sends the rest of its logs to the API
        for proc in sorted(built.procs, key=lambda p: p in built.apis):
            stop_process(proc)


def _run_log(client: httpx.Client, run_id: int) -> str:
    params = {"offset": 0, "limit": 1_000_000}
    return str(client.get(f"/api/v1/runs/{run_id}/log", params=params).json()["text"])


def _assert_log_whole(client: httpx.Client, run_id: int, epochs: int) -> None:
    log = _run_log(client, run_id)
    logged = re.findall(r"^Epoch (\d+)/\d+$", log, flags=re.M)
    assert logged == [str(e) for e in range(1, epochs + 1)], "every log line once, in order"
    assert "event=fit_end" in log


def _batches_stored(client: httpx.Client, run_id: int) -> int:
    series = client.get(f"/api/v1/runs/{run_id}/metrics").json()["series"]
    return len(series.get("batch/loss", {}).get("steps", []))


class Watcher:
    """An SSE client on its own thread: what it read before its connection broke."""

    def __init__(self, url: str, run_id: int, *, last_event_id: int | None = None) -> None:
        self.events: list[Event] = []
        self.arrived: list[float] = []  # time.monotonic() at each event
        self.error: BaseException | None = None
        self.ended = threading.Event()
        self._args = (url, run_id, last_event_id)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        url, run_id, last_event_id = self._args
        after = 0 if last_event_id is None else None
        try:
            for event in iter_events(url, run_id, after=after, last_event_id=last_event_id):
                self.events.append(event)
                self.arrived.append(time.monotonic())
        except (httpx.HTTPError, AssertionError) as exc:
            self.error = exc
        finally:
            self.ended.set()


# -- 1. the API killed with SIGKILL mid-run ---------------------------------------------------


def test_kill_9_of_the_api_mid_run_loses_and_duplicates_nothing(stack: Stack) -> None:
    epochs = 55  # still training when the API is back (training goes on while it is away)
    stack.start_api()
    worker = stack.start_worker("steady")
    with stack.client() as client:
        stack.wait_workers(client, 1)
        run = submit(client, "chaos api kill", {"fit": {"epochs": epochs, "batch_size": 32}})
        run_id = run["id"]
        watcher = Watcher(stack.url, run_id)
        wait_status(client, run_id, {"running"}, timeout_s=120)
        wait_for(lambda: _batches_stored(client, run_id) > 0, 90, "first batches")
        wait_for(lambda: len(watcher.events) > 3, 30, "the live view streaming")
        assert stack.api is not None
        os.killpg(stack.api.pid, signal.SIGKILL)
        stack.api.wait()
        killed_at = time.monotonic()
        assert watcher.ended.wait(10), "the stream ends with the API"
        assert watcher.error is not None and not any(e.kind == "end" for e in watcher.events)
        # away longer than a worker's allowed silence: the new API must not take the heartbeats
        # it could not receive for a lost worker
        time.sleep(API_DOWN_S)
        # and the first beats to it (the worker's and its training process') come a few
        # seconds late, past housekeeping's first look: the worker's host stalls meanwhile
        os.killpg(worker.pid, signal.SIGSTOP)
        try:
            stack.start_api()
            time.sleep(BEAT_LATE_S)
        finally:
            os.killpg(worker.pid, signal.SIGCONT)
        down_s = time.monotonic() - killed_at
        # the worker went on training and retries what it could not send
        assert worker.poll() is None
        assert wait_status(client, run_id, {"running"} | ENDED, 10)["status"] == "running", (
            "still training once the API is back: the stream below picks up a live run"
        )
        last_seen = watcher.events[-1].id
        rest = Watcher(stack.url, run_id, last_event_id=last_seen)
        final = wait_status(client, run_id, ENDED, 240)
        assert final["status"] == "succeeded", final
        assert final["attempt"] == 1, f"the API away {down_s:.0f} s is not a lost worker"
        assert_contiguous(client, run_id, epochs)
        _assert_log_whole(client, run_id, epochs)
        assert rest.ended.wait(30) and rest.error is None, rest.error
    # the reconnected viewer got exactly what it had not seen: no gap, no duplicate id
    everything = [e.id for e in iter_events(stack.url, run_id, after=0) if e.kind != "end"]
    seen = [e.id for e in watcher.events] + [e.id for e in rest.events if e.kind != "end"]
    assert rest.events[-1].kind == "end"
    assert len(seen) == len(set(seen)), "no event twice"
    assert seen == everything, "every event once, in order, across the restart"
    statuses = [e.data["status"] for e in rest.events if e.kind == "status"]
    assert statuses == ["succeeded"], statuses


# -- 2. Redis killed with SIGKILL and started again empty --------------------------------------


class OwnRedis:
    """A redis-server of this test's own on a free port, without persistence: a restart
    starts it empty, as a Redis without a volume comes back."""

    def __init__(self, out: Path) -> None:
        self.port = free_port()
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            argv, start_new_session=True, stdout=self.out.open("ab"), stderr=subprocess.STDOUT
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        wait_for(lambda: _pings(client), 20, "redis-server answering")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip("no redis-server binary")
    server = OwnRedis(tmp_path / "redis.out")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _health(client: httpx.Client) -> dict[str, Any]:
    return dict(client.get("/api/v1/health", timeout=15).json())


WINDOW_S = 5.0  # the live view watched once Redis is back


def _arrivals(watcher: Watcher, start: float, end: float) -> int:
    """How many separate moments (0.3 s apart) the viewer got events at within [start, end]."""
    moments: list[float] = []
    for at in watcher.arrived:
        if start <= at <= end and (not moments or at - moments[-1] > 0.3):
            moments.append(at)
    return len(moments)


def test_redis_killed_and_back_empty_loses_no_run(own_redis: OwnRedis, stack: Stack) -> None:
    epochs = 90  # still training a while after Redis is back
    stack.env["REDIS_URL"] = own_redis.url
    stack.start_api()
    stack.start_worker("steady")  # one run at a time: the second waits behind the first
    with stack.client() as client:
        stack.wait_workers(client, 1)
        training = submit(client, "chaos redis: training", {"fit": {"epochs": epochs}})["id"]
        waiting = submit(client, "chaos redis: waiting", {"fit": {"epochs": 3}})["id"]
        watcher = Watcher(stack.url, training)
        wait_status(client, training, {"running"}, timeout_s=120)
        wait_for(lambda: _batches_stored(client, training) > 0, 90, "first batches")
        wait_for(lambda: _health(client)["live_view"]["redis"] is True, 20, "live view on Redis")
        assert client.get(f"/api/v1/runs/{waiting}").json()["status"] == "queued"

        own_redis.kill()
        down = wait_for(lambda: not _health(client)["redis"]["ok"], 10, "health: Redis down")
        asked = time.monotonic()
        health = _health(client)
        assert time.monotonic() - asked < 5, "health answers at once without Redis"
        assert health["status"] == "degraded" and health["redis"]["error"], health
        assert health["workers"] == 0, "no worker can be reached without the broker"
        assert health["database"]["ok"] and health["queue"]["queued"] == 1, health
        wait_for(lambda: _health(client)["live_view"]["redis"] is False, 10, "live view polling")
        time.sleep(max(0.0, 3 - down))
        own_redis.start()  # the same port, empty
        assert redis.Redis.from_url(own_redis.url).dbsize() == 0

        wait_for(lambda: _health(client)["redis"]["ok"], 10, "health: Redis back")
        wait_for(lambda: _health(client)["live_view"]["redis"] is True, 20, "live view on Redis")
        live_again = time.monotonic()
        time.sleep(WINDOW_S)
        assert client.get(f"/api/v1/runs/{training}").json()["status"] == "running"
        # woken by Redis again (a flush every 0.5 s), not by the 5 s safety poll alone
        woken = _arrivals(watcher, live_again, live_again + WINDOW_S)
        assert woken >= 5, f"the viewer got events at {woken} moments in {WINDOW_S:.0f} s"
        wait_for(lambda: _health(client)["status"] == "ok", 60, "health ok: a worker answers")
        after_outage = Watcher(stack.url, waiting)  # a viewer who comes after it
        final = wait_status(client, training, ENDED, 240)
        assert final["status"] == "succeeded", final
        assert final["attempt"] == 1, "the broker going away is not a lost worker"
        assert_contiguous(client, training, epochs)
        _assert_log_whole(client, training, epochs)
        # the run that waited is sent once room frees
        final = wait_status(client, waiting, ENDED, 120)
        assert final["status"] == "succeeded" and final["attempt"] == 1, final
        assert_contiguous(client, waiting, 3)
    # the viewer that watched through the outage got every event once, and its end
    for viewer, run_id in ((watcher, training), (after_outage, waiting)):
        assert viewer.ended.wait(30) and viewer.error is None, viewer.error
        seen = [e.id for e in viewer.events if e.kind != "end"]
        assert viewer.events[-1].kind == "end"
        assert seen == [e.id for e in iter_events(stack.url, run_id, after=0) if e.kind != "end"]
    statuses = [e.data["status"] for e in after_outage.events if e.kind == "status"]
    assert statuses == ["queued", "running", "succeeded"], statuses


# -- 3. a worker killed after it took a run's message, before it claimed the run ---------------

RESENT_AFTER_S = 20.0  # FITBOARD_REQUEUE_UNACCOUNTED_AFTER_S's default


def _held_by_a_worker(redis_url: str, run_id: int) -> bool:
    """The run's message was taken by a worker and not acknowledged (kombu's unacked hash)."""
    broker = redis.Redis.from_url(redis_url)
    for entry in broker.hvals("unacked"):
        message = json.loads(entry)[0]
        if dispatch._run_id_of(json.dumps(message)) == run_id:
            return True
    return False


def test_worker_killed_before_its_claim_leaves_the_run_to_another(stack: Stack) -> None:
    stack.start_api()
    # the doomed worker reaches the API through a proxy the test cuts: it can take a message
    # from the broker but never claim the run
    proxy = CuttableProxy(("127.0.0.1", stack.port))
    doomed = stack.start_worker("doomed", url=f"http://127.0.0.1:{proxy.port}")
    with stack.client() as client:
        stack.wait_workers(client, 1)
        proxy.cut()  # its last report still offers a free slot for a few seconds
        run_id = submit(client, "chaos unclaimed", {"fit": {"epochs": 3}})["id"]
        wait_for(lambda: _held_by_a_worker(stack.env["REDIS_URL"], run_id), 20, "message taken")
        taken_at = time.monotonic()
        doomed_log = stack.logs / "doomed.out"
        wait_for(lambda: f"run={run_id} claim:" in doomed_log.read_text(), 20, "claim retried")
        assert client.get(f"/api/v1/runs/{run_id}").json()["status"] == "queued"
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait()
        stack.start_worker("rescuer")
        waited = wait_for(
            lambda: client.get(f"/api/v1/runs/{run_id}").json()["status"] != "queued",
            RESENT_AFTER_S + 25,
            "the run starting on another worker",
        )
        started_s = time.monotonic() - taken_at
        # sent again once held 20 s unclaimed (+ housekeeping's 2 s tick, a worker's start-up)
        assert RESENT_AFTER_S - 2 <= started_s <= RESENT_AFTER_S + 15, (started_s, waited)
        final = wait_status(client, run_id, ENDED, 120)
        assert final["status"] == "succeeded", final
        assert final["attempt"] == 1, "taken twice, trained once"
        assert final["worker_host"].startswith("rescuer-"), final["worker_host"]
        assert_contiguous(client, run_id, 3)
    history = iter_events(stack.url, run_id, after=0)
    statuses = [e.data["status"] for e in history if e.kind == "status"]
    assert statuses == ["queued", "running", "succeeded"], statuses
