"""The trainer end to end on digits against a temp SQLite database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from sqlalchemy import func, select

from backend.artifacts import service as artifacts
from backend.artifacts.store import get_store
from backend.db.session import session_scope
from backend.evaluation import service as evaluation
from backend.events.models import RunEvent
from backend.metrics.models import MetricPoint
from backend.runs import service as runs
from backend.spec import DatasetSpec
from worker.trainer import train
from worker.trainer.datasets import load
from worker.trainer.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[2]


def _points(run_id: int) -> dict[str, list[int]]:
    with session_scope() as session:
        rows = session.execute(
            select(MetricPoint.key, MetricPoint.step)
            .where(MetricPoint.run_id == run_id)
            .order_by(MetricPoint.key, MetricPoint.step)
        ).all()
    out: dict[str, list[int]] = {}
    for key, step in rows:
        out.setdefault(key, []).append(step)
    return out


def test_digits_run_succeeds_with_metrics_evaluation_and_model(
    sqlite_url: str, make_run: Any, small_spec: Any
) -> None:
    spec = small_spec(
        model={"layers": [
            {"type": "Flatten"},
            {"type": "Dense", "units": 32, "activation": "relu"},
            {"type": "Dropout", "rate": 0.2},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ]},
        fit={"epochs": 3, "batch_size": 64},
    )  # fmt: skip
    run_id = make_run(sqlite_url, spec=spec)
    assert train.run(run_id) == 0

    with session_scope() as session:
        run = runs.get(session, run_id)
        assert run.status == "succeeded" and run.failure_reason is None
        assert run.model_summary is not None
        assert run.model_summary["total_params"] == 64 * 32 + 32 + 33 * 10
        stored = evaluation.get(session, run_id=run_id)
        matrix, report = stored.confusion_matrix, stored.report
        artifact = artifacts.get(session, run_id=run_id, name="model.keras")
        assert artifact.kind == "model" and artifact.size_bytes > 0
        kinds = set(session.scalars(select(RunEvent.kind).where(RunEvent.run_id == run_id)))
        (begin,) = session.scalars(
            select(RunEvent.data).where(RunEvent.run_id == run_id, RunEvent.kind == "train_begin")
        ).all()
    assert {"train_begin", "metrics", "evaluation", "artifact", "status"} <= kinds
    assert begin == {"epochs": 3, "steps_per_epoch": 18, "batch_size": 64, "train_samples": 1149}

    # 1437 training digits, 20% held out: 1149 train / 64 = 18 batches per epoch
    points = _points(run_id)
    assert points["batch/loss"] == list(range(1, 3 * 18 + 1))
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert points[key] == [1, 2, 3], key

    data = load(DatasetSpec(name="digits"), data_dir=None)
    assert np.sum(matrix) == len(data.x_test) == 360
    assert report["accuracy"] > 0.8

    path = get_store().local_path(artifact.storage_key)
    assert path is not None and path.is_file()
    model = keras.saving.load_model(path)
    reloaded = evaluate(model, data)
    # the saved model is the trained one: it reproduces the stored evaluation exactly
    assert reloaded.confusion_matrix == matrix
    assert reloaded.report == report


def test_cancel_requested_before_fit_ends_cancelled_with_the_model(
    sqlite_url: str, make_run: Any, small_spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.config import get_settings

    monkeypatch.setenv("FITBOARD_FLUSH_INTERVAL_S", "0.02")
    get_settings.cache_clear()
    run_id = make_run(sqlite_url, spec=small_spec(fit={"epochs": 200, "batch_size": 8}))
    with session_scope() as session:
        runs.request_cancel(session, run_id=run_id)
    assert train.run(run_id) == 0

    with session_scope() as session:
        run = runs.get(session, run_id)
        assert run.status == "cancelled"
        assert run.failure_reason and "cancelled on request" in run.failure_reason
        artifacts.get(session, run_id=run_id, name="model.keras")
        with pytest.raises(Exception, match="no evaluation"):
            evaluation.get(session, run_id=run_id)
        batches = session.scalar(
            select(func.count()).where(
                MetricPoint.run_id == run_id, MetricPoint.key == "batch/loss"
            )
        )
    assert 0 < batches < 144  # one epoch is 144 batches of 8


def test_a_run_that_is_not_running_is_left_alone(
    sqlite_url: str, make_run: Any, small_spec: Any
) -> None:
    run_id = make_run(sqlite_url, spec=small_spec(), claim=False)
    assert train.run(run_id) == 1
    with session_scope() as session:
        assert runs.get(session, run_id).status == "queued"


def test_cli_claims_and_records_a_failure(sqlite_url: str, make_run: Any, small_spec: Any) -> None:
    # valid for the spec, but SGD has no beta_1: the builder refuses it
    spec = small_spec(compile={"optimizer": {"name": "sgd", "beta_1": 0.9}})
    run_id = make_run(sqlite_url, spec=spec, claim=False)
    proc = subprocess.run(
        [sys.executable, "-m", "worker.trainer", str(run_id), "--claim"],
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"run={run_id} event=failed" in proc.stderr
    with session_scope() as session:
        run = runs.get(session, run_id)
    assert run.status == "failed"
    assert run.failure_reason == "ModelSpecError: optimizer sgd does not take beta_1"
    assert run.failure_traceback and "Traceback" in run.failure_traceback
    assert "make_optimizer" in run.failure_traceback
