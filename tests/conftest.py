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


@pytest.fixture(scope="session", autouse=True)
def lifecycle_hooks() -> None:
    """Services called in-process hear of runs queued or ended, as in the API (the app factory
    installs the same hooks)."""
    from backend import lifecycle

    lifecycle.install()


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


def fresh_database(pg_url: str, suffix: str) -> str:
    """A database beside the test one (its name + suffix), made empty and migrated to head:
    for a stack whose housekeeping must see no other test's runs or APIs."""
    from sqlalchemy.engine import make_url

    from backend.db.migrate import upgrade

    url = make_url(pg_url)
    fresh = url.set(database=f"{url.database}_{suffix}")
    server = create_engine(url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{fresh.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{fresh.database}"'))
    server.dispose()
    rendered = fresh.render_as_string(hide_password=False)
    upgrade(rendered)
    return rendered


@pytest.fixture(scope="session")
def redis_url() -> str:
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    return TEST_REDIS_URL


@dataclass(frozen=True)
class S3Server:
    """A real S3-compatible server process (moto's server mode) and the settings that use it."""

    endpoint: str

    def env(self, bucket: str, prefix: str = "") -> dict[str, str]:
        return {
            "FITBOARD_S3_ENDPOINT": self.endpoint,
            "FITBOARD_S3_BUCKET": bucket,
            "FITBOARD_S3_REGION": "us-east-1",
            "FITBOARD_S3_ACCESS_KEY_ID": "fitboard-test",
            "FITBOARD_S3_SECRET_ACCESS_KEY": "fitboard-test-secret",
            "FITBOARD_S3_PREFIX": prefix,
        }


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """`python -m moto.server` on a free port, for the session; skipped without moto[server]."""
    pytest.importorskip("moto.server", reason="pip install 'moto[server]'")
    port = free_port()
    out = tmp_path_factory.mktemp("s3-server") / "moto.out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        start_new_session=True,
        stdout=out.open("ab"),
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_http(endpoint + "/moto-api/", proc, timeout_s=60)
        yield S3Server(endpoint)
    finally:
        stop_process(proc)


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


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
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


def wait_workers(client: httpx.Client, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/api/v1/health").json()["workers"] > 0:
            return
        time.sleep(0.5)
    raise TimeoutError("no Celery worker answered")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def worker_token(database_url: str, name: str = "tests") -> str:
    """A new worker token in that database (what an admin gives a worker)."""
    from backend.db.session import session_scope
    from backend.workers import service as workers

    with session_scope(database_url) as session:
        _, token = workers.create_token(session, name=name, created_by_id=None)
    return token


def start_worker(
    env: dict[str, str], out: Path, name: str = "test", *, concurrency: int = 1
) -> subprocess.Popen[bytes]:
    """A real Celery worker process (threads pool, one run at a time) on env's queue. It joins
    as a worker on another host does: FITBOARD_URL and FITBOARD_WORKER_TOKEN from env, and no
    DATABASE_URL (it never opens the database)."""
    assert env.get("FITBOARD_URL") and env.get("FITBOARD_WORKER_TOKEN"), "a worker joins over HTTP"
    env = {k: v for k, v in env.items() if k not in ("DATABASE_URL", "FITBOARD_DATABASE_URL")}
    return subprocess.Popen(
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
            str(concurrency),
            "--queues",
            env["FITBOARD_QUEUE"],
            "--hostname",
            f"{name}-{os.getpid()}@%h",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=out.open("ab"),
        stderr=subprocess.STDOUT,
    )


def start_api(env: dict[str, str], out: Path, port: int) -> subprocess.Popen[bytes]:
    """A real API server process (uvicorn) on env's database and broker."""
    return subprocess.Popen(
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
        stdout=out.open("ab"),
        stderr=subprocess.STDOUT,
    )


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
        # the browser tests' webhook receivers listen on loopback
        "FITBOARD_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        # what the worker joins with (the API reads neither)
        "FITBOARD_URL": f"http://127.0.0.1:{port}",
        "FITBOARD_WORKER_TOKEN": worker_token(pg_url, "live stack"),
    }
    logs = home / "logs"
    logs.mkdir()
    worker = start_worker(env, logs / "worker.out")
    api = start_api(env, logs / "api.out", port)
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
        wait_http(stack.url + "/api/v1/health", api)
        with stack.client() as client:
            wait_workers(client)
        yield stack
    finally:
        stop_process(api)
        stop_process(worker)
        for name in ("worker.out", "api.out"):
            tail = (logs / name).read_text(errors="replace")[-3000:]
            sys.stderr.write(f"\n---- {name} (tail) ----\n{tail}\n")
