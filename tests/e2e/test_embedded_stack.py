"""`make run`'s stack on the embedded default: SQLite, embedded Redis, worker, API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port
from tests.e2e.helpers import TOKENS, batch_steps, iter_events, submit, wait_status

pytestmark = pytest.mark.e2e


def _processes_with_home(home: Path) -> list[int]:
    """Pids whose environment or command line names this stack's home directory."""
    needle = str(home).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            blob = (proc / "environ").read_bytes() + (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in blob:
            found.append(int(proc.name))
    return found


def test_embedded_stack_trains_a_run_and_stops_cleanly(tmp_path: Path, data_dir: Path) -> None:
    home, port, out = tmp_path / "home", free_port(), tmp_path / "stack.out"
    url = f"http://127.0.0.1:{port}"
    stack = _start_stack(home, port, data_dir, out)
    try:
        assert "First admin created" in out.read_text()
        with httpx.Client(base_url=url, timeout=30) as client:
            signed_in = client.post(
                "/api/v1/auth/login", json={"username": "admin", "password": "embedded admin pw"}
            )
            assert signed_in.status_code == 200, signed_in.text
            client.headers["X-CSRF-Token"] = signed_in.json()["csrf_token"]
            token = client.post("/api/v1/auth/tokens", json={"name": "embedded test"}).json()
            TOKENS[url] = token["token"]  # for iter_events' own connection
            health = client.get("/api/v1/health").json()
            assert health["database"]["backend"] == "sqlite"
            assert (home / "fitboard.db").exists()
            run = submit(client, "embedded", {"fit": {"epochs": 2, "batch_size": 64}})
            events = list(iter_events(url, run["id"], after=0))
            final = wait_status(client, run["id"], {"succeeded", "failed"}, 60)
            assert final["status"] == "succeeded", final
            assert batch_steps(events), "batch metrics streamed live"
            assert client.get(f"/api/v1/runs/{run['id']}/evaluation").status_code == 200
            assert client.get("/").status_code == 200
            assert client.get("/static/vendor/plotly.min.js").status_code == 200
            assert client.get("/api/v1/health").json()["workers"] >= 1
        assert len(_processes_with_home(home)) >= 3, "redis, worker and api are running"
    finally:
        stack.send_signal(signal.SIGINT)  # what Ctrl-C does
        code = stack.wait(timeout=60)
    log = (tmp_path / "stack.out").read_text(errors="replace")
    assert code == 0, log[-3000:]
    deadline = time.monotonic() + 10
    while _processes_with_home(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_with_home(home) == [], "Ctrl-C left processes behind"


def _start_stack(home: Path, port: int, data_dir: Path, out_path: Path) -> subprocess.Popen[bytes]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "FITBOARD_REDIS_URL", "FITBOARD_DATABASE_URL"}
    }
    env.update(
        FITBOARD_HOME=str(home),
        FITBOARD_PORT=str(port),
        FITBOARD_DATA_DIR=str(data_dir),
        FITBOARD_ADMIN_PASSWORD="embedded admin pw",  # the first admin the stack creates
        FITBOARD_AUTH="on",
    )
    with out_path.open("ab") as out:
        stack = subprocess.Popen(
            [sys.executable, "-m", "backend.stack"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    ready = f"Fitboard is running at http://127.0.0.1:{port}".encode()
    deadline = time.monotonic() + 120
    while out_path.read_bytes().count(ready) < 1 + out_path.read_bytes().count(b"#restart"):
        assert stack.poll() is None, out_path.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, "the stack did not start"
        time.sleep(0.3)
    return stack


def test_kill_9_of_the_stack_leaves_nothing_behind_and_it_starts_again(
    tmp_path: Path, data_dir: Path
) -> None:
    """`make run` killed with SIGKILL (no chance to stop its children) while a run trains: the
    API, the worker, its training process and Redis go with it, so the next `make run` finds
    its port free and starts, and the run it was training trains again to its end."""
    home, port, out = tmp_path / "home", free_port(), tmp_path / "stack.out"
    url = f"http://127.0.0.1:{port}"
    stack = _start_stack(home, port, data_dir, out)
    try:
        assert len(_processes_with_home(home)) >= 4, "the stack, redis, worker and api"
        client = httpx.Client(base_url=url, timeout=30)
        signed_in = client.post(
            "/api/v1/auth/login", json={"username": "admin", "password": "embedded admin pw"}
        )
        client.headers["X-CSRF-Token"] = signed_in.json()["csrf_token"]
        run = submit(client, "killed with the stack", {"fit": {"epochs": 40, "batch_size": 32}})
        wait_status(client, run["id"], {"running"}, 120)
        stack.kill()
        stack.wait()
        deadline = time.monotonic() + 30
        while _processes_with_home(home) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _processes_with_home(home) == [], "kill -9 of the stack left processes behind"
        with out.open("ab") as f:
            f.write(b"\n#restart\n")
        stack = _start_stack(home, port, data_dir, out)
        assert client.get("/api/v1/health").status_code == 200
        # its worker was lost with the stack: the run goes back to the queue and trains again
        final = wait_status(client, run["id"], {"succeeded", "failed", "cancelled"}, 300)
        assert final["status"] == "succeeded", final
        assert final["attempt"] == 2, final
        client.close()
    finally:
        stack.send_signal(signal.SIGINT)
        stack.wait(timeout=60)
        for pid in _processes_with_home(home):
            os.kill(pid, signal.SIGKILL)
