"""Train one run end to end: spec -> data -> model -> streamed fit -> evaluation -> artifact."""

from __future__ import annotations

import logging
import math
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import keras

from backend.artifacts import service as artifacts
from backend.artifacts.store import get_store
from backend.config import get_settings
from backend.db.session import session_scope
from backend.evaluation import service as evaluation
from backend.runs import service as runs
from backend.runs.models import RunStatus
from backend.spec import ExperimentSpec
from worker.trainer import datasets, epoch_evaluation, phases, pruning, runtime, samples, transfer
from worker.trainer.build import build_model, make_callbacks, model_summary, prepare_targets
from worker.trainer.evaluate import evaluate
from worker.trainer.recipes import Recipes
from worker.trainer.sql_sink import SqlSink
from worker.trainer.streaming import MetricFlusher

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model.keras"


class RunNotRunning(RuntimeError):
    """The trainer only trains a run the worker has claimed (status running)."""


def run(run_id: int, *, flush_timeout_s: float | None = None) -> int:
    """Train a claimed run and record how it ended; the process exit code (0 or 1)."""
    settings = get_settings()
    flush_timeout = flush_timeout_s if flush_timeout_s is not None else settings.heartbeat_timeout_s
    flusher: MetricFlusher | None = None
    try:
        spec = _load_spec(run_id)
        flusher = MetricFlusher(
            SqlSink(run_id), run_id=run_id, flush_interval_s=settings.flush_interval_s
        )
        status, reason = _train(run_id, spec, flusher, flush_timeout)
        with session_scope() as session:
            runs.finish(session, run_id=run_id, status=status, reason=reason)
        log.info("run=%s event=finished status=%s", run_id, status.value)
        return 0
    except Exception as exc:
        tb = traceback.format_exc()
        log.error("run=%s event=failed error=%s: %s\n%s", run_id, type(exc).__name__, exc, tb)
        if flusher is not None:
            flusher.close(timeout=min(flush_timeout, 10.0))
        if not isinstance(exc, RunNotRunning):
            _record_failure(run_id, exc, tb)
        return 1
    finally:
        runtime.reset()  # the dtype policy is process-global; in-process callers share it


def _load_spec(run_id: int) -> ExperimentSpec:
    with session_scope() as session:
        run_row = runs.get(session, run_id)
        if run_row.status != RunStatus.running.value:
            raise RunNotRunning(
                f"run {run_id} is {run_row.status}, not running; a worker claims it first"
            )
        return ExperimentSpec.model_validate(run_row.spec)


def _train(
    run_id: int, spec: ExperimentSpec, flusher: MetricFlusher, flush_timeout: float
) -> tuple[RunStatus, str | None]:
    settings = get_settings()
    # first: it declares the devices, which must come before TensorFlow's first op
    recipes = Recipes(run_id=run_id, spec=spec, flusher=flusher)
    if spec.fit.seed is not None:
        keras.utils.set_random_seed(spec.fit.seed)
    started = time.monotonic()
    dataset = datasets.load(spec.dataset, data_dir=settings.data_dir)
    log.info(
        "run=%s event=data_loaded dataset=%s train=%d test=%d input_shape=%s seconds=%.1f",
        run_id,
        dataset.name,
        len(dataset.x_train),
        len(dataset.x_test),
        dataset.input_shape,
        time.monotonic() - started,
    )
    with recipes.scope():
        model = build_model(spec, dataset)
    summary = model_summary(model)
    transfer.announce(spec, flusher, summary)  # the base: in the summary and as an event
    samples.emit_samples(flusher, dataset)
    with session_scope() as session:
        runs.set_model_summary(session, run_id=run_id, summary=summary)
    log.info("run=%s event=model_built params=%d", run_id, summary["total_params"])

    fit = spec.fit
    validation_split = fit.validation_split or 0.0
    train_samples = len(dataset.x_train)
    if validation_split:
        train_samples = math.floor(train_samples * (1.0 - validation_split))
    streaming = flusher.callback(
        every_n_batches=spec.stream.every_n_batches,
        batch_size=recipes.batch_size,
        train_samples=train_samples,
    )
    y_train = prepare_targets(spec, model, dataset.y_train)
    fit_kwargs: dict[str, Any] = recipes.fit_kwargs(dataset.y_train)
    if fit.validation_data == "test":
        fit_kwargs["validation_data"] = (
            dataset.x_test,
            prepare_targets(spec, model, dataset.y_test),
        )
    elif validation_split:
        fit_kwargs["validation_split"] = validation_split

    flusher.start()
    log.info(
        "run=%s event=fit_start epochs=%d batch_size=%d", run_id, fit.epochs, recipes.batch_size
    )
    fit_model = phases.fit_function(model, spec=spec, flusher=flusher)  # fit.phases, if any
    pruner = pruning.for_run(run_id)  # a trial of a sweep with a pruner
    fit_model(
        dataset.x_train,
        y_train,
        epochs=fit.epochs,
        batch_size=recipes.batch_size,
        shuffle=fit.shuffle,
        callbacks=[
            *recipes.callbacks(make_callbacks(spec.callbacks), num_classes=dataset.num_classes),
            *epoch_evaluation.callbacks(spec, dataset, flusher),  # evaluation.every_epoch
            *([pruner] if pruner is not None else []),
            streaming,
        ],
        verbose=2,
        **fit_kwargs,
    )
    cancelled = streaming.stopped_by_cancel
    pruned = pruner is not None and pruner.stopped and not cancelled
    log.info(
        "run=%s event=fit_end batches=%d cancelled=%s seconds=%.1f",
        run_id,
        streaming.last_step,
        cancelled,
        time.monotonic() - started,
    )

    # a cancelled run stops promptly (the worker kills it after a grace period): no evaluation
    if not cancelled and not pruned:
        result = evaluate(model, dataset)
        with session_scope() as session:
            evaluation.save(
                session,
                run_id=run_id,
                split=result.split,
                class_names=result.class_names,
                confusion_matrix=result.confusion_matrix,
                report=result.report,
            )
        log.info(
            "run=%s event=evaluated accuracy=%.4f", run_id, float(result.report.get("accuracy", 0))
        )
    _save_model(run_id, model)
    recipes.after_fit(model, cancelled=cancelled or pruned)
    recipes.close()

    if not flusher.close(timeout=flush_timeout):
        raise RuntimeError(f"could not write every metric within {flush_timeout:.0f}s")
    if cancelled:
        return RunStatus.cancelled, f"cancelled on request after {streaming.last_step} batches"
    if pruned and pruner is not None:
        return RunStatus.pruned, pruner.reason
    return RunStatus.succeeded, None


def _save_model(run_id: int, model: keras.Model) -> None:
    with tempfile.TemporaryDirectory(prefix=f"fitboard-run-{run_id}-") as tmp:
        path = Path(tmp) / MODEL_ARTIFACT
        model.save(path)
        with session_scope() as session:
            artifact = artifacts.add(
                session,
                store=get_store(),
                run_id=run_id,
                name=MODEL_ARTIFACT,
                kind="model",
                source=path,
            )
            size = artifact.size_bytes
    log.info("run=%s event=model_saved bytes=%d", run_id, size)


def _record_failure(run_id: int, exc: Exception, tb: str) -> None:
    try:
        with session_scope() as session:
            runs.finish(
                session,
                run_id=run_id,
                status=RunStatus.failed,
                reason=f"{type(exc).__name__}: {exc}",
                traceback=tb,
            )
    except Exception:
        # the worker records a failed exit itself when the database is unreachable
        log.exception("run=%s event=record_failure_failed", run_id)
