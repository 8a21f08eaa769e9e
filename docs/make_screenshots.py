"""Regenerate docs/screenshots/runs-page.png and docs/screenshots/sweep-page.png from a real stack.

    .venv/bin/python docs/make_screenshots.py

Nothing is faked: the script empties and migrates its own PostgreSQL database, flushes its own
Redis db, starts an API (uvicorn) and a Celery worker that joins over HTTP with a worker token,
creates three users with the admin command line, and trains every run it shows through the REST
API (digits-mlp and variants of it on scikit-learn's 8x8 digits: 2 to 8 epochs, seconds each).
Then:

1. a few runs by three people, then a grid sweep of 9 trials (one at a time); the sweep page is
   taken mid-sweep (full page, 1440 px wide) once at least 5 trials have succeeded (so the
   hyperparameter importance is drawn), the next trial is running and has reported its
   objective, and at least 2 trials are still queued;
2. after the sweep, more runs: succeeded ones, one that fails on the worker (a CNN on the 8x8
   digits without a channel axis), one cancelled after 8 epochs, and one left running; the
   runs page is taken at 1440x900 (the viewport, not the full page) while that one trains.

Every process it started is stopped at the end (by its process group); its FITBOARD_HOME (a
temporary directory with the API's and the worker's logs) is removed after a success and kept,
with its path printed, after a failure. Settings (environment):
SHOTS_DATABASE_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/shots: its public
schema is dropped and rebuilt), SHOTS_REDIS_URL (redis://127.0.0.1:6379/13: flushed),
FITBOARD_DATA_DIR (/work/shared/data, or ../shared/data next to the checkout), FITBOARD_CHROMIUM
(/usr/bin/chromium). It takes about 4 minutes on two busy cores.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "docs" / "screenshots"
DATABASE_URL = os.environ.get(
    "SHOTS_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/shots"
)
REDIS_URL = os.environ.get("SHOTS_REDIS_URL", "redis://127.0.0.1:6379/13")
DATA_DIR = Path(
    os.environ.get("FITBOARD_DATA_DIR")
    or next(
        (
            str(p)
            for p in (Path("/work/shared/data"), ROOT.parent / "shared" / "data")
            if p.is_dir()
        ),
        "/work/shared/data",
    )
)
VIEWPORT = {"width": 1440, "height": 900}
TIMEZONE = "Europe/Berlin"
SWEEP_EPOCHS = 8  # a trial runs long enough to be caught with a reported objective

PEOPLE = {"maya": "admin", "jonas": "member", "priya": "member"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def until(what: str, check: Callable[[], Any], timeout_s: float, every_s: float = 0.5) -> Any:
    """Poll check() until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")


# ---- the stack ----------------------------------------------------------------------------


def reset_storage() -> None:
    """Our own database and Redis db only: empty both, then migrate with the real command."""
    import redis
    from sqlalchemy import create_engine, text

    engine = create_engine(DATABASE_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    redis.Redis.from_url(REDIS_URL).flushdb()


def admin_cli(env: dict[str, str], *args: str) -> str:
    """python -m backend.users ...: its output (passwords and tokens are printed once)."""
    done = subprocess.run(
        [sys.executable, "-m", "backend.users", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def create_people(env: dict[str, str]) -> dict[str, str]:
    """Each person's password, from `python -m backend.users create-user`."""
    passwords = {}
    for name, role in PEOPLE.items():
        out = admin_cli(env, "create-user", name, "--role", role)
        passwords[name] = out.rsplit("(shown once): ", 1)[1].strip()
    return passwords


def sign_in(url: str, username: str, password: str) -> httpx.Client:
    """A signed-in session; the client keeps its cookies and sends the CSRF token."""
    client = httpx.Client(base_url=url + "/api/v1", timeout=30)
    response = client.post("/auth/login", json={"username": username, "password": password})
    response.raise_for_status()
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client


def api_token(url: str, username: str, password: str) -> str:
    """A personal API token, made the way a person makes one (signed in, POST /auth/tokens)."""
    session = sign_in(url, username, password)
    try:
        response = session.post("/auth/tokens", json={"name": "screenshots"})
        response.raise_for_status()
        return str(response.json()["token"])
    finally:
        session.close()


# ---- runs and sweeps over REST --------------------------------------------------------------


def submit(api: httpx.Client, name: str, overrides: dict[str, Any], tags: list[str]) -> int:
    response = api.post(
        "/runs", json={"name": name, "preset": "digits-mlp", "overrides": overrides}
    )
    assert response.status_code == 201, response.text
    run_id = int(response.json()["id"])
    if tags:
        api.patch(f"/runs/{run_id}", json={"tags": tags}).raise_for_status()
    log(f"run {run_id} {name!r} queued")
    return run_id


def status(api: httpx.Client, run_id: int) -> str:
    return str(api.get(f"/runs/{run_id}").json()["status"])


def wait_end(api: httpx.Client, run_id: int, timeout_s: float = 600) -> str:
    final = until(
        f"run {run_id} to end",
        lambda: (s := status(api, run_id)) not in ("queued", "running") and s,
        timeout_s,
    )
    log(f"run {run_id} {final}")
    return str(final)


def epochs_done(api: httpx.Client, run_id: int) -> int:
    series = api.get(f"/runs/{run_id}/metrics", params={"keys": "val_accuracy"}).json()["series"]
    return len(series.get("val_accuracy", {}).get("steps", []))


def lr(value: float, epochs: int = 3) -> dict[str, Any]:
    return {"fit": {"epochs": epochs}, "compile": {"optimizer": {"learning_rate": value}}}


def mlp(units: int, dropout: float) -> list[dict[str, Any]]:
    """digits-mlp's layers with another width and first dropout (a list override replaces)."""
    return [
        {"type": "Flatten"},
        {"type": "Dense", "units": units, "activation": "relu"},
        {"type": "Dropout", "rate": dropout},
        {"type": "Dense", "units": units // 2, "activation": "relu"},
        {"type": "Dropout", "rate": 0.3},
        {"type": "Dense", "units": 10, "activation": "softmax"},
    ]


# A CNN on the 8x8 digits without dataset.channels_last: a valid spec that Keras refuses when it
# builds the model (Conv2D wants a channel axis), so the run fails on the worker
NO_CHANNEL_AXIS_CNN = [
    {"type": "Conv2D", "filters": 16, "kernel_size": [3, 3], "activation": "relu"},
    {"type": "Flatten"},
    {"type": "Dense", "units": 10, "activation": "softmax"},
]


# ---- the browser ----------------------------------------------------------------------------


SWEEP_READY_JS = """() => {
  const note = document.getElementById('sweep-partial').textContent;
  const bars = document.querySelectorAll('#sweep-importance .importance-item').length;
  const plot = document.getElementById('sweep-parcoords');
  const drawn = plot && plot.querySelectorAll('.parcoords .axis').length > 0;
  const points = document.querySelectorAll('#sweep-scatter .scatterlayer .point').length;
  const queued = Number((note.match(/(\\d+) queued/) || [0, 0])[1]);
  return /Running trials are drawn at their latest/.test(note) && queued >= 2
    && bars > 0 && drawn && points >= 6;
}"""


def main() -> int:
    from playwright.sync_api import sync_playwright

    from tests.browser.support import CHROMIUM, CHROMIUM_ARGS, sign_in_cookies
    from tests.conftest import (
        free_port,
        start_api,
        start_worker,
        stop_process,
        wait_http,
        wait_workers,
    )

    if not (DATA_DIR / "mnist").is_dir():
        log(f"warning: no data directory at {DATA_DIR} (digits needs none, so going on)")
    home = Path(tempfile.mkdtemp(prefix="fitboard-shots-"))
    logs = home / "logs"
    logs.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "FITBOARD_HOME": str(home),
        "FITBOARD_DATA_DIR": str(DATA_DIR),
        "FITBOARD_QUEUE": f"fitboard-shots-{os.getpid()}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "FITBOARD_URL": url,
    }
    log(f"database {DATABASE_URL}, redis {REDIS_URL}, home {home}")
    reset_storage()
    subprocess.run([sys.executable, "-m", "backend.db.migrate"], cwd=ROOT, env=env, check=True)
    passwords = create_people(env)
    worker_out = admin_cli(env, "create-worker-token", "screenshots")
    env["FITBOARD_WORKER_TOKEN"] = re.search(r"shown once: (\S+)", worker_out).group(1)  # type: ignore[union-attr]

    processes: list[subprocess.Popen[bytes]] = []
    ok = False
    try:
        processes.append(start_api(env, logs / "api.out", port))
        wait_http(url + "/api/v1/health", processes[0])
        processes.append(start_worker(env, logs / "worker.out", "shots"))
        tokens = {name: api_token(url, name, pw) for name, pw in passwords.items()}
        apis = {
            name: httpx.Client(
                base_url=url + "/api/v1", timeout=30, headers={"Authorization": f"Bearer {t}"}
            )
            for name, t in tokens.items()
        }
        maya, jonas, priya = apis["maya"], apis["jonas"], apis["priya"]
        with httpx.Client(base_url=url, timeout=30) as plain:
            wait_workers(plain, timeout_s=180)
        log(f"stack up at {url}")

        # 1. some history before the sweep
        first = [
            submit(priya, "digits baseline", {"fit": {"epochs": 3}}, ["baseline"]),
            submit(jonas, "digits lr 3e-3", lr(0.003), ["lr-study"]),
            submit(jonas, "digits lr 3e-4", lr(0.0003), ["lr-study"]),
            submit(
                priya,
                "digits sgd momentum 0.9",
                {
                    "fit": {"epochs": 4},
                    "compile": {
                        "optimizer": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9}
                    },
                },
                ["optimizers"],
            ),
        ]
        for run_id in first:
            wait_end(maya, run_id)

        # 2. the sweep, taken mid-way
        body = {
            "name": "digits lr x batch size",
            "preset": "digits-mlp",
            "overrides": {"fit": {"epochs": SWEEP_EPOCHS}},
            "strategy": "grid",
            "space": {
                "compile.optimizer.learning_rate": {"choice": [0.0003, 0.001, 0.01]},
                "fit.batch_size": {"choice": [32, 64, 128]},
            },
            "objective": "val_accuracy",
            "direction": "maximize",
            "max_concurrent": 1,
            "seed": 7,
        }
        response = maya.post("/sweeps", json=body)
        assert response.status_code == 201, response.text
        sweep_id = int(response.json()["id"])
        log(f"sweep {sweep_id} created")

        def succeeded() -> int:
            return int(maya.get(f"/sweeps/{sweep_id}").json()["progress"]["done"])

        until("4 trials to succeed", lambda: succeeded() >= 4, 900, 1)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            context = browser.new_context(
                viewport=VIEWPORT, locale="en-US", timezone_id=TIMEZONE, device_scale_factor=1
            )
            context.add_cookies(sign_in_cookies(url, "maya", passwords["maya"]))  # type: ignore[arg-type]
            problems: list[str] = []
            context.on("weberror", lambda error: problems.append(str(error.error)))
            page = context.new_page()
            page.goto(f"{url}/sweeps/{sweep_id}")
            # the page polls every 3 s; wait for a moment it shows what the picture is for
            page.wait_for_function(SWEEP_READY_JS, timeout=600_000, polling=200)
            page.wait_for_timeout(400)  # plotly's transitions settle
            page.screenshot(path=str(OUT / "sweep-page.png"), full_page=True)
            log(f"sweep page: {page.locator('#sweep-partial').text_content()}")

            until("the sweep to finish", lambda: succeeded() >= 9, 900, 1)

            # 3. more history after the sweep, ending with a run still training
            later = [
                submit(jonas, "digits lr 1e-2", lr(0.01), ["lr-study"]),
                submit(
                    jonas,
                    "digits wide 1024",
                    {"fit": {"epochs": 3}, "model": {"layers": mlp(1024, 0.5)}},
                    ["capacity"],
                ),
                submit(
                    priya,
                    "digits cnn",
                    {"fit": {"epochs": 2}, "model": {"layers": NO_CHANNEL_AXIS_CNN}},
                    ["cnn"],
                ),
                submit(maya, "digits bs 64", {"fit": {"epochs": 4, "batch_size": 64}}, []),
            ]
            for run_id in later:
                wait_end(maya, run_id)
            long_one = submit(jonas, "digits 60 epochs", {"fit": {"epochs": 60}}, ["long"])
            until("the long run's 8th epoch", lambda: epochs_done(jonas, long_one) >= 8, 600)
            jonas.post(f"/runs/{long_one}/cancel").raise_for_status()
            wait_end(maya, long_one)
            last = submit(
                priya,
                "digits dropout 0.2",
                {"fit": {"epochs": 3}, "model": {"layers": mlp(512, 0.2)}},
                ["regularisation"],
            )
            wait_end(maya, last)
            running = submit(maya, "digits 40 epochs", {"fit": {"epochs": 40}}, [])
            until("the last run to report", lambda: epochs_done(maya, running) >= 2, 600)

            page.goto(f"{url}/")
            page.wait_for_selector(f'#runs-body tr[data-run-id="{running}"][data-status="running"]')
            page.wait_for_selector('#runs-table[aria-busy="false"]', state="attached")
            page.wait_for_timeout(300)
            page.screenshot(path=str(OUT / "runs-page.png"))  # the viewport: 1440x900
            log("runs page taken")
            maya.post(f"/runs/{running}/cancel").raise_for_status()
            wait_end(maya, running)
            browser.close()
            if problems:
                log(f"page errors: {problems}")
                return 1
        ok = True
        log(f"wrote {OUT / 'sweep-page.png'} and {OUT / 'runs-page.png'}")
        return 0
    finally:
        for proc in reversed(processes):
            stop_process(proc)
        if ok:
            shutil.rmtree(home, ignore_errors=True)
        else:
            log(f"the API's and the worker's logs: {logs}")


if __name__ == "__main__":
    sys.exit(main())
