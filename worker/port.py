"""The one way a worker and its training processes reach Fitboard: a :class:`RunPort`.

Its implementation, ``HttpPort`` (worker.http_port), speaks the worker protocol over HTTP, so a
worker on any host needs only ``FITBOARD_URL``, ``FITBOARD_WORKER_TOKEN`` and the broker: it
never opens the database (import-linter keeps the worker away from backend.db and SQLAlchemy).
Everything a port writes carries the attempt; once the run is another attempt's, a write
raises :class:`Superseded` and the training process ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

import redis

from backend.config import get_settings
from backend.events import bus

if TYPE_CHECKING:
    from backend.client.streaming import Event
    from backend.metrics.service import Point

log = logging.getLogger(__name__)

# the exit code of a training process whose run another attempt owns now
SUPERSEDED_EXIT_CODE = 3
REDIS_RETRY_S = 5.0


class Superseded(Exception):
    """This attempt no longer owns its run: stop training, write nothing more."""


class NotRunning(Exception):
    """The run is not running (not claimed, or ended): nothing to train."""


class Missing(Exception):
    """What was asked for (a run, an artifact, an uploaded dataset) does not exist."""


class Unreachable(Exception):
    """Fitboard could not be reached or did not answer; the same call may be tried again."""


@dataclass(frozen=True)
class ResumePoint:
    """The checkpoint an attempt resumes from: after ``epoch`` (1-based), whose last batch
    step was ``step``, stored as the run's artifact ``artifact``."""

    epoch: int
    step: int
    artifact: str
    # whose artifact: None for the run's own, the source run's id for a fork's starting point
    run_id: int | None = None


class RunPort(Protocol):
    """What a worker (claim, heartbeat, exit, log) and its training process do to one run."""

    run_id: int
    attempt: int | None

    def claim(self, host: str) -> bool:
        """queued -> running for this worker (sets ``attempt``); False if someone else has it."""

    def heartbeat(self) -> bool:
        """Marks the attempt alive; whether a cancel was asked for. Superseded when lost."""

    def record_exit(self, *, reason: str, cancelled: bool, traceback: str | None) -> str:
        """The training process ended without recording its end; what became of the run."""

    def run_log(self) -> contextlib.AbstractContextManager[tuple[BinaryIO, Path]]:
        """The file the training process writes its output to (and where it is on disk)."""

    def spec(self) -> dict[str, Any]:
        """The running run's spec; NotRunning otherwise."""

    def write(self, uid: str, points: Sequence[Point], events: Sequence[Event]) -> bool:
        """One flusher batch, idempotent by uid; whether a cancel was asked for."""

    def cancel_requested(self) -> bool: ...

    def set_model_summary(self, summary: dict[str, Any]) -> None: ...

    def save_evaluation(
        self,
        *,
        split: str,
        class_names: list[str],
        confusion_matrix: list[list[int]],
        report: dict[str, Any],
    ) -> None: ...

    def add_artifact(self, name: str, kind: str, path: Path) -> int:
        """Upload a file as the run's artifact; its size in bytes."""

    def delete_artifact(self, name: str) -> bool:
        """Delete the run's artifact ``name`` (an old checkpoint); False when it had none."""

    def resume_point(self) -> ResumePoint | None:
        """The checkpoint this attempt resumes from; None to train from epoch 0."""

    def finish(self, status: str, reason: str | None, traceback: str | None = None) -> bool:
        """The training process's own end; False if the run had already ended."""

    def prune_objective(self) -> str | None:
        """The epoch metric a sweep trial's pruner watches; None without a pruner."""

    def prune_decide(self, epoch: int, value: float) -> str | None:
        """Why to stop this trial after ``epoch``, or None to go on."""

    def fetch_artifact(self, run_id: int, name: str, dest: Path) -> Path:
        """Another run's artifact, copied to ``dest``; Missing when it has none."""

    def dataset_dir(self, upload_id: int) -> Path:
        """A local folder holding the uploaded dataset (fetched and checked if need be)."""


class NotConfigured(ValueError):
    """The worker was not told how to reach Fitboard."""


def for_run(run_id: int, *, attempt: int | None = None) -> RunPort:
    """The port of this process, on the worker protocol at FITBOARD_URL."""
    from worker.http_port import HttpPort

    settings = get_settings()
    describe_join()
    return HttpPort(run_id, url=settings.url, token=settings.worker_token, attempt=attempt)


def describe_join() -> str:
    """How this worker reaches Fitboard, for its first log line; NotConfigured when it cannot."""
    settings = get_settings()
    if not (settings.url and settings.worker_token):
        missing = [
            name
            for name, value in (
                ("FITBOARD_URL", settings.url),
                ("FITBOARD_WORKER_TOKEN", settings.worker_token),
            )
            if not value
        ]
        raise NotConfigured(
            f"a worker reaches Fitboard over HTTP: set {' and '.join(missing)} (the API's "
            "address, and a worker token an admin creates with `python -m backend.users "
            "create-worker-token NAME`); `make run` sets both for its own worker"
        )
    return f"over HTTP: the worker protocol at {settings.url}"


class CancelWatch:
    """A cancel arrives over Redis pub/sub (a blocking read on its own thread: no CPU while
    idle); the port's answers are the slower fallback when Redis is away."""

    def __init__(self, run_id: int, redis_url: str | None = None) -> None:
        self.run_id = run_id
        self._redis_url = redis_url or get_settings().redis_url
        self.cancelled = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._listen, name=f"cancel-listener-{self.run_id}", daemon=True
            )
            self._thread.start()

    def _listen(self) -> None:
        while not self.cancelled.is_set():
            try:
                client = redis.Redis.from_url(self._redis_url, socket_connect_timeout=2.0)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(bus.cancel_channel(self.run_id))
                for message in pubsub.listen():
                    if message and message.get("type") == "message":
                        self.cancelled.set()
                        return
            except (redis.RedisError, OSError) as exc:
                log.debug("run=%s event=cancel_listener_down error=%s", self.run_id, exc)
                time.sleep(REDIS_RETRY_S)


class PortSink:
    """The metric flusher's Sink on a port: a superseded attempt's training process ends."""

    # how often the port itself is asked about a cancel when Redis is the fast path
    CANCEL_CHECK_S = 2.0

    def __init__(self, port: RunPort, *, redis_url: str | None = None) -> None:
        self.port = port
        self.run_id = port.run_id
        self._watch = CancelWatch(port.run_id, redis_url)
        self._next_check = 0.0

    def write(self, uid: str, points: Sequence[Point], events: Sequence[Event]) -> None:
        try:
            if self.port.write(uid, points, events):
                self._watch.cancelled.set()
            # the batch's answer said whether a cancel was asked: no separate check is due
            self._next_check = time.monotonic() + self.CANCEL_CHECK_S
        except Superseded as exc:
            log.error("run=%s event=superseded: %s; this training process stops", self.run_id, exc)
            logging.shutdown()
            os._exit(SUPERSEDED_EXIT_CODE)

    @property
    def watched(self) -> bool:
        """The port's last answer said someone watches the run live."""
        return bool(getattr(self.port, "watched", False))

    def cancel_requested(self) -> bool:
        self._watch.start()
        if self._watch.cancelled.is_set():
            return True
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + self.CANCEL_CHECK_S
        if self.port.cancel_requested():
            self._watch.cancelled.set()
        return self._watch.cancelled.is_set()


@contextlib.contextmanager
def local_log(path: Path) -> Iterator[tuple[BinaryIO, Path]]:
    """A run log on this machine's disk, appended to."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as out:
        yield out, path


_current: list[RunPort] = []


@contextlib.contextmanager
def serving(run_port: RunPort) -> Iterator[RunPort]:
    """Make ``run_port`` this process's port while a run trains (deep code finds it with
    :func:`current`, e.g. a transfer run fetching its base run's model)."""
    _current.append(run_port)
    try:
        yield run_port
    finally:
        _current.remove(run_port)


def current() -> RunPort:
    """The port of the run this process trains (a fresh one outside a run)."""
    return _current[-1] if _current else for_run(0)
