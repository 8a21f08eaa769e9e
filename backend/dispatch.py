"""The Celery app as the API sees it: send a run id to the queue, count live workers.

The worker registers its tasks on this same app (worker.celery_app); the API only sends by name,
so it never imports the training side.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

import redis
from sqlalchemy import select, update

from backend.broker import GPUS_SUFFIX, ON_WORKER, queue_for
from backend.broker import TRAIN_TASK as TRAIN_TASK
from backend.broker import get_celery as get_celery
from backend.broker import send_run as send_run
from backend.config import get_settings
from backend.db.base import utcnow
from backend.db.session import get_engine
from backend.runs.models import Run

log = logging.getLogger(__name__)


def live_workers(timeout_s: float = 1.0) -> int:
    replies = get_celery().control.ping(timeout=timeout_s) or []
    return len(replies)


# kombu's Redis transport: a queue is a list (one per priority step: name, name\x06\x16N);
# a message a worker took and has not acknowledged sits in the "unacked" hash, its delivery
# time in the "unacked_index" sorted set
_PRIORITY_SEP = "\x06\x16"
_UNACKED = "unacked"
_UNACKED_INDEX = "unacked_index"


def _run_id_of(raw: bytes | str) -> int | None:
    """The run id a train_run message carries, or None for anything else."""
    try:
        message = json.loads(raw)
        if message.get("headers", {}).get("task") != TRAIN_TASK:
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return int(args[0])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def outstanding_run_ids(*, held_for_at_most_s: float) -> set[int] | None:
    """Run ids with a live message: waiting in the queue, or taken by a worker within the last
    ``held_for_at_most_s`` (one held longer by a worker that never claimed its run belongs to a
    worker that died). None when the broker cannot be read."""
    settings = get_settings()
    try:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2.0)
        found: set[int] = set()
        names = [settings.queue]
        patterns = (
            f"{settings.queue}{_PRIORITY_SEP}*",
            f"{settings.queue}{GPUS_SUFFIX}*",
            f"{settings.queue}{ON_WORKER}*",
        )
        for pattern in patterns:  # priority steps, the GPU and workers' queues (with theirs)
            for key in client.scan_iter(match=pattern, count=100):
                names.append(key.decode() if isinstance(key, bytes) else key)
        for name in names:
            for raw in client.lrange(name, 0, -1):
                if (run_id := _run_id_of(raw)) is not None:
                    found.add(run_id)
        cutoff = time.time() - held_for_at_most_s
        recent: list[Any] = list(client.zrangebyscore(_UNACKED_INDEX, cutoff, "+inf"))
        if recent:
            for entry in client.hmget(_UNACKED, recent):
                if entry is None:
                    continue
                payload: Any = json.loads(entry)
                raw_message = json.dumps(payload[0]) if isinstance(payload, list) else entry
                if (run_id := _run_id_of(raw_message)) is not None:
                    found.add(run_id)
        return found
    except (redis.RedisError, OSError, ValueError) as exc:
        log.warning("could not read the queue to account for waiting runs: %s", exc)
        return None


def dispatch(run_id: int, queue: str | None = None) -> bool:
    """Send now on ``queue`` (by default the run's stored one, else the one its spec's
    resources route it to on this API's queue) and record it; False when the broker is away
    (the API's housekeeping retries)."""
    if not queue:
        with get_engine().connect() as conn:
            row = conn.execute(select(Run.queue, Run.spec).where(Run.id == run_id)).first()
        queue = (row.queue if row else None) or queue_for(
            row.spec if row else None, get_settings().queue
        )
    try:
        send_run(run_id, queue)
    except Exception as exc:  # kombu raises several unrelated types for an unreachable broker
        log.warning("run %s: could not reach the queue (%s); will retry", run_id, exc)
        return False
    with get_engine().begin() as conn:
        conn.execute(
            update(Run).where(Run.id == run_id).values(dispatched_at=utcnow(), queue=queue)
        )
    log.info("run %s: queued", run_id)
    return True
