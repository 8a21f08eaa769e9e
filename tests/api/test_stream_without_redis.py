"""With Redis away the live stream degrades to reading SQL, and still misses nothing."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from backend.config import get_settings
from backend.db.session import session_scope
from backend.events.stream import event_stream
from backend.metrics import service as metrics
from backend.runs import service as runs
from backend.runs.models import Run, RunStatus
from backend.spec import resolve_spec


@pytest.fixture
def no_redis(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _train_elsewhere(run_id: int) -> None:
    """Stands in for a training process: three batches of points, then the run finishes."""
    with session_scope() as session:
        runs.claim(session, run_id=run_id, worker_host="test")
    for batch in range(3):
        time.sleep(0.4)
        points = [
            {
                "key": "batch/loss",
                "step": batch * 10 + i,
                "value": 1.0 / (i + 1),
                "wall_time": time.time(),
            }
            for i in range(1, 11)
        ]
        with session_scope() as session:
            metrics.record(session, run_id=run_id, points=points, uid=f"b{batch}")
    with session_scope() as session:
        runs.finish(session, run_id=run_id, status=RunStatus.succeeded)


def test_stream_reads_sql_when_redis_is_down(no_redis: None) -> None:
    spec = resolve_spec(preset="digits-mlp").model_dump(mode="json")
    with session_scope() as session:
        run = Run(name="no redis", spec=spec, status="queued")
        session.add(run)
        session.flush()
        run_id = run.id

    async def collect() -> list[str]:
        chunks = []
        async for chunk in event_stream(run_id, 0):
            chunks.append(chunk.decode())
        return chunks

    writer = threading.Thread(target=_train_elsewhere, args=(run_id,))
    started = time.monotonic()
    writer.start()
    chunks = asyncio.run(asyncio.wait_for(collect(), timeout=30))
    writer.join()
    text = "".join(chunks)
    assert time.monotonic() - started < 10
    steps = [int(s) for s in text.split('"batch/loss",')[1:] for s in [s.split(",")[0]]]
    assert steps == [b * 10 + i for b in range(3) for i in range(1, 11)]
    assert '"status":"running"' in text and '"status":"succeeded"' in text
    assert text.rstrip().endswith("data: {}") and "event: end" in text
