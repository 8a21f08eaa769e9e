"""Fixtures for the trainer's unit tests: temp SQLite or a private PostgreSQL db, real data."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _offline_data_dir() -> Path:
    for candidate in (
        os.environ.get("FITBOARD_DATA_DIR"),
        os.environ.get("FITBOARD_TEST_DATA_DIR"),
        str(ROOT.parent / "shared" / "data"),
    ):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return ROOT.parent / "shared" / "data"


OFFLINE_DATA_DIR = _offline_data_dir()


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The offline data dir holding mnist/*.gz (skips when absent)."""
    if not (OFFLINE_DATA_DIR / "mnist" / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip(f"no MNIST IDX files under {OFFLINE_DATA_DIR}/mnist (set FITBOARD_DATA_DIR)")
    return OFFLINE_DATA_DIR


@pytest.fixture(scope="session")
def imdb_dir() -> Path:
    """The offline data dir holding imdb/ (skips when absent)."""
    if not (OFFLINE_DATA_DIR / "imdb" / "imdb_reviews.csv.gz").is_file():
        pytest.skip(f"no IMDB csv under {OFFLINE_DATA_DIR}/imdb (set FITBOARD_DATA_DIR)")
    return OFFLINE_DATA_DIR


@pytest.fixture(scope="session")
def dataset_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dataset cache per session, so IMDB is tokenized once."""
    return tmp_path_factory.mktemp("dataset-cache")


@contextlib.asynccontextmanager
async def _no_housekeeping(_app: Any) -> AsyncIterator[None]:
    yield  # runs trained in-process here have no worker heartbeating them: leave them be


@pytest.fixture(scope="session")
def worker_api() -> Iterator[str]:
    """A real API server in a thread of this process, serving whichever database the settings
    name at each request (each test's own), so training code reaches Fitboard exactly as a
    worker on another host does: over the worker protocol, with a worker token."""
    import socket
    import threading
    import time

    import uvicorn

    from backend.api.app import create_app

    app = create_app()
    app.router.lifespan_context = _no_housekeeping
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="worker-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the in-process API did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _join_worker_api(monkeypatch: pytest.MonkeyPatch, url: str, api_url: str) -> None:
    """A worker token in this database, and the settings a worker joins with."""
    from backend.config import get_settings
    from backend.db.session import session_scope
    from backend.workers import service as workers

    with session_scope(url) as session:
        _, token = workers.create_token(session, name="unit tests", created_by_id=None)
    monkeypatch.setenv("FITBOARD_URL", api_url)
    monkeypatch.setenv("FITBOARD_WORKER_TOKEN", token)
    get_settings.cache_clear()


def _use_database(monkeypatch: pytest.MonkeyPatch, home: Path, url: str) -> None:
    from backend.config import get_settings

    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("FITBOARD_HOME", str(home))
    monkeypatch.setenv("FITBOARD_ARTIFACTS_DIR", str(home / "artifacts"))
    monkeypatch.setenv("REDIS_URL", os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    get_settings.cache_clear()


@pytest.fixture
def sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker_api: str) -> Iterator[str]:
    """A fresh SQLite database migrated to head, made the settings' database (the in-process
    API serves it to the training code)."""
    from backend.config import get_settings
    from backend.db.migrate import upgrade
    from backend.db.session import get_engine

    url = f"sqlite:///{tmp_path / 'fitboard.db'}"
    _use_database(monkeypatch, tmp_path, url)
    upgrade(url)
    _join_worker_api(monkeypatch, url, worker_api)
    yield url
    get_engine(url).dispose()
    get_settings.cache_clear()


@pytest.fixture
def private_pg_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker_api: str
) -> Iterator[str]:
    """A throwaway PostgreSQL database (not the shared `test` db), migrated to head."""
    from backend.config import get_settings
    from backend.db.migrate import upgrade
    from backend.db.session import get_engine

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"fitboard_trainer_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL at {PG_ADMIN_URL} not usable: {exc}")
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        _use_database(monkeypatch, tmp_path, url)
        upgrade(url)
        _join_worker_api(monkeypatch, url, worker_api)
        yield url
    finally:
        get_engine(url).dispose()
        get_settings.cache_clear()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


RunFactory = Callable[..., int]


@pytest.fixture
def make_run() -> RunFactory:
    """Create a run from a spec dict (or digits-mlp overrides) and, by default, claim it."""

    def make(
        url: str | None = None,
        *,
        spec: dict[str, Any] | None = None,
        overrides: dict[str, Any] | None = None,
        claim: bool = True,
    ) -> int:
        from backend.db.session import session_scope
        from backend.runs import service as runs
        from backend.runs.models import Run
        from backend.spec import resolve_spec

        if spec is not None:
            resolved = resolve_spec(spec=spec, overrides=overrides)
        else:
            resolved = resolve_spec(preset="digits-mlp", overrides=overrides)
        # the row directly, not runs.submit: that would also put the run on the Celery queue
        with session_scope(url) as session:
            run = Run(name="unit", spec=resolved.model_dump(mode="json"), status="queued")
            session.add(run)
            session.flush()
            run_id = run.id
        if claim:
            with session_scope(url) as session:
                assert runs.claim(session, run_id=run_id, worker_host="unit-test")
        return run_id

    return make


SpecFactory = Callable[..., dict[str, Any]]


@pytest.fixture
def small_spec() -> SpecFactory:
    """A fast digits spec (one small hidden layer), deep-merged with overrides."""
    return _small_spec


def _small_spec(**overrides: Any) -> dict[str, Any]:
    from backend.spec.presets import deep_merge

    base: dict[str, Any] = {
        "dataset": {"name": "digits"},
        "model": {
            "layers": [
                {"type": "Flatten"},
                {"type": "Dense", "units": 32, "activation": "relu"},
                {"type": "Dense", "units": 10, "activation": "softmax"},
            ]
        },
        "compile": {"optimizer": {"name": "adam", "learning_rate": 0.01}},
        "fit": {"epochs": 2, "batch_size": 32, "validation_split": 0.2, "seed": 1},
    }
    return deep_merge(base, overrides)
