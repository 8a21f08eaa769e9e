"""The Python client and the `fitboard` CLI against a live stack (API + real worker)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend.client import Fitboard, FitboardError
from tests.conftest import LiveStack, free_port

pytestmark = pytest.mark.e2e


def fitboard(
    stack: LiveStack, *args: str, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The installed console script, configured from the environment like a user's shell."""
    env = {**os.environ, "FITBOARD_URL": stack.url, "FITBOARD_TOKEN": stack.token}
    script = Path(sys.executable).with_name("fitboard")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "backend.client.cli"]
    return subprocess.run(
        [*command, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def _spec_file(folder: Path, name: str, epochs: int, batch_size: int = 64) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\n"
        "preset: digits-mlp\n"
        "overrides:\n"
        f"  fit: {{epochs: {epochs}, batch_size: {batch_size}}}\n"
    )
    return path


def test_submit_wait_list_download(live_stack: LiveStack, tmp_path: Path) -> None:
    spec = _spec_file(tmp_path, "cli-digits", epochs=2)
    done = fitboard(live_stack, "submit", str(spec), "--wait")
    assert done.returncode == 0, done.stderr
    assert "succeeded" in done.stderr and "epoch 2/2" in done.stderr
    run_id = int(done.stdout.split()[1])

    listed = fitboard(live_stack, "runs", "--status", "succeeded", "--q", "cli-digits")
    assert listed.returncode == 0, listed.stderr
    assert any(
        line.split()[:2] == [str(run_id), "succeeded"] for line in listed.stdout.splitlines()
    )
    none = fitboard(live_stack, "runs", "--status", "failed", "--q", "cli-digits")
    assert str(run_id) not in none.stdout.split()

    dest = tmp_path / "artifacts"
    got = fitboard(live_stack, "download", str(run_id), "--dest", str(dest))
    assert got.returncode == 0, got.stderr
    model_path = dest / "model.keras"
    assert model_path.is_file() and str(model_path) in got.stdout
    import keras

    model = keras.saving.load_model(model_path)
    assert model.output_shape[-1] == 10  # digits: ten classes

    with Fitboard(live_stack.url, live_stack.token) as fb:
        evaluation = fb.evaluation(run_id)
        assert len(evaluation["confusion_matrix"]) == 10
        assert fb.runs(q="cli-digits", status="succeeded")["total"] >= 1
        points = list(fb.stream_metrics(run_id))  # a finished run: history, then the end
        assert {p["key"] for p in points} >= {"loss", "batch/loss"}
        assert "key,step,epoch,value,wall_time" in fb.export_metrics(run_id)


def test_watch_follows_a_run_to_its_end(live_stack: LiveStack, tmp_path: Path) -> None:
    with Fitboard(live_stack.url, live_stack.token) as fb:
        run = fb.submit_run(_spec_file(tmp_path, "cli-watch", epochs=3, batch_size=32))
    watched = fitboard(live_stack, "watch", str(run["id"]))
    assert watched.returncode == 0, watched.stderr
    lines = watched.stderr.splitlines()
    assert any(line.startswith("epoch 3/3 [########################]") for line in lines), lines
    assert f"run {run['id']} succeeded" in watched.stderr


def test_cancel_and_watch_exit_code(live_stack: LiveStack, tmp_path: Path) -> None:
    with Fitboard(live_stack.url, live_stack.token) as fb:
        run = fb.submit_run(_spec_file(tmp_path, "cli-cancel", epochs=500, batch_size=8))
        for event in fb.events(run["id"]):
            if event.kind == "metrics":
                break  # it is training now
    cancelled = fitboard(live_stack, "cancel", str(run["id"]))
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancel requested" in cancelled.stdout
    watched = fitboard(live_stack, "watch", str(run["id"]))
    assert watched.returncode == 3, watched.stderr
    assert "cancelled" in watched.stderr
    again = fitboard(live_stack, "cancel", str(run["id"]))
    assert again.returncode == 1 and "HTTP 409" in again.stderr


def test_errors_are_one_line_and_non_zero(live_stack: LiveStack, tmp_path: Path) -> None:
    bad = tmp_path / "bad-field.yaml"
    bad.write_text("preset: digits-mlp\noverrides:\n  fit: {epochs: -3}\n")
    refused = fitboard(live_stack, "submit", str(bad))
    assert refused.returncode == 1
    assert "HTTP 422" in refused.stderr and "fit.epochs" in refused.stderr

    unknown = fitboard(live_stack, "submit", str(_spec_file(tmp_path, "x", 1)), "--token", "nope")
    assert unknown.returncode == 1 and "HTTP 401" in unknown.stderr

    port = free_port()
    unreachable = fitboard(live_stack, "runs", "--url", f"http://127.0.0.1:{port}")
    assert unreachable.returncode == 1
    assert f"cannot reach Fitboard at http://127.0.0.1:{port}" in unreachable.stderr

    missing = fitboard(live_stack, "submit", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1 and "no such file" in missing.stderr

    broken = tmp_path / "broken.yaml"
    broken.write_text("preset: [digits-mlp\n")
    bad_yaml = fitboard(live_stack, "submit", str(broken))
    assert bad_yaml.returncode == 1 and "not valid YAML" in bad_yaml.stderr

    no_run = fitboard(live_stack, "watch", "987654321")
    assert no_run.returncode == 1 and "HTTP 404" in no_run.stderr

    for result in (refused, unknown, unreachable, missing, bad_yaml, no_run):
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr

    usage = fitboard(live_stack, "runs", "--limit", "many")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
    for command in ("submit", "sweep", "runs", "watch", "cancel", "download"):
        helped = fitboard(live_stack, command, "--help")
        assert helped.returncode == 0 and "--url" in helped.stdout


def test_client_raises_fitboard_error_with_fields(live_stack: LiveStack) -> None:
    with Fitboard(live_stack.url, live_stack.token) as fb, pytest.raises(FitboardError) as caught:
        fb.submit_run({"preset": "digits-mlp", "overrides": {"fit": {"epochs": 0}}})
    error = caught.value
    assert error.status == 422 and error.code == "validation_error"
    assert [e.field for e in error.errors] == ["spec.fit.epochs"]


def test_sweep_submission(live_stack: LiveStack, tmp_path: Path) -> None:
    with live_stack.client() as client:
        exists = any(
            p.startswith("/api/v1/sweeps") for p in client.get("/openapi.json").json()["paths"]
        )
    if not exists:
        pytest.skip("the sweeps API is not in this tree yet")
    body = tmp_path / "sweep.yaml"
    body.write_text(
        "name: cli-sweep\n"
        "preset: digits-mlp\n"
        "overrides: {fit: {epochs: 1}}\n"
        "space:\n"
        "  compile.optimizer.learning_rate: {log_uniform: [0.001, 0.01]}\n"
        "strategy: random\n"
        "objective: val_accuracy\n"
        "direction: maximize\n"
        "max_trials: 1\n"
        "max_concurrent: 1\n"
    )
    started = fitboard(live_stack, "sweep", str(body))
    assert started.returncode == 0, started.stderr
    sweep_id = int(started.stdout.split()[1])
    with Fitboard(live_stack.url, live_stack.token) as fb:
        assert fb.get_sweep(sweep_id)["name"] == "cli-sweep"
        fb.cancel_sweep(sweep_id)


def test_client_imports_without_the_server_stack() -> None:
    """backend.client runs on a laptop with only httpx and pyyaml: nothing heavy is imported."""
    probe = (
        "import sys, backend.client, backend.client.cli\n"
        "heavy = {'tensorflow', 'keras', 'sqlalchemy', 'fastapi', 'pydantic', 'celery', 'redis'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
