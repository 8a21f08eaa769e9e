"""Shared fixtures: the real PostgreSQL and Redis at 127.0.0.1, and a live stack on them.

TEST_DATABASE_URL and TEST_REDIS_URL name them (the Makefile sets both); the tests own that
database and Redis db: the schema is rebuilt and the db flushed once per session.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
_shared = ROOT.parent / "shared" / "data"
TEST_DATA_DIR = Path(os.environ.get("FITBOARD_TEST_DATA_DIR") or _shared)


def free_port() -> int:
    from backend.stack import free_port as _free_port

    return _free_port()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (TEST_DATA_DIR / "mnist").is_dir():
        pytest.skip(f"no offline data directory at {TEST_DATA_DIR} (FITBOARD_TEST_DATA_DIR)")
    return TEST_DATA_DIR


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The test PostgreSQL database, emptied and migrated to head once per session."""
    from backend.db.migrate import upgrade

    engine = create_engine(TEST_DATABASE_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    upgrade(TEST_DATABASE_URL)
    return TEST_DATABASE_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    return TEST_REDIS_URL


@dataclass(frozen=True)
class Identity:
    """A user made for the tests: its API token, and a password when one was set."""

    user_id: int
    username: str
    role: str
    token: str
    password: str | None = None


def create_identity(
    database_url: str, username: str, role: str = "admin", *, password: str | None = None
) -> Identity:
    """A user with an API token, written straight to the database (argon2 only with a password)."""
    from backend.db.session import session_scope
    from backend.users import security
    from backend.users import service as users
    from backend.users.models import User

    with session_scope(database_url) as session:
        user = User(
            username=username,
            role=role,
            password_hash=security.hash_password(password) if password else None,
        )
        session.add(user)
        session.flush()
        _, token = users.create_token(session, user_id=user.id, name="tests")
        return Identity(user.id, username, role, token, password)


@pytest.fixture(scope="session")
def admin(pg_url: str) -> Identity:
    """The admin every default test client acts as (created once per session)."""
    return create_identity(pg_url, "test-admin", "admin", password=secrets.token_urlsafe(16))


@dataclass
class LiveStack:
    url: str
    env: dict[str, str]
    home: Path
    api: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    # an admin's API token (set up by the fixture); client() sends it
    token: str = ""
    # the same admin's sign-in, for browser tests
    username: str = ""
    password: str = ""

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, timeout=30, headers=headers)


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(url)


def _wait_workers(client: httpx.Client, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/api/v1/health").json()["workers"] > 0:
            return
        time.sleep(0.5)
    raise TimeoutError("no Celery worker answered")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def live_stack(
    pg_url: str,
    redis_url: str,
    data_dir: Path,
    admin: Identity,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveStack]:
    """A real API server and a real Celery worker process on PostgreSQL and Redis."""
    home = tmp_path_factory.mktemp("fitboard-home")
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "FITBOARD_HOME": str(home),
        "FITBOARD_DATA_DIR": str(data_dir),
        "FITBOARD_QUEUE": f"fitboard-test-{os.getpid()}",
        "FITBOARD_CANCEL_GRACE_S": "20",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    logs = home / "logs"
    logs.mkdir()
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker.celery_app",
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            "1",
            "--queues",
            env["FITBOARD_QUEUE"],
            "--hostname",
            f"test-{os.getpid()}@%h",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=(logs / "worker.out").open("wb"),
        stderr=subprocess.STDOUT,
    )
    api = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "backend.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--timeout-graceful-shutdown",
            "2",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=(logs / "api.out").open("wb"),
        stderr=subprocess.STDOUT,
    )
    stack = LiveStack(
        f"http://127.0.0.1:{port}",
        env,
        home,
        api,
        worker,
        token=admin.token,
        username=admin.username,
        password=admin.password or "",
    )
    from tests.e2e.helpers import TOKENS

    TOKENS[stack.url] = stack.token  # raw SSE clients of the e2e helpers send it
    try:
        _wait_http(stack.url + "/api/v1/health", api)
        with stack.client() as client:
            _wait_workers(client)
        yield stack
    finally:
        _stop(api)
        _stop(worker)
        for name in ("worker.out", "api.out"):
            tail = (logs / name).read_text(errors="replace")[-3000:]
            sys.stderr.write(f"\n---- {name} (tail) ----\n{tail}\n")
