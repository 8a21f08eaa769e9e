"""Train one run end to end: spec -> data -> model -> streamed fit -> evaluation -> artifact."""

from __future__ import annotations

import gc
import logging
import math
import os
import socket
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import keras
import psutil

from backend.client.streaming import MetricFlusher
from backend.config import get_settings
from backend.runs.status import RunStatus
from backend.spec import ExperimentSpec
from worker import lifeline, port, unsent
from worker.trainer import (
    checkpoints,
    datasets,
    epoch_evaluation,
    phases,
    priority,
    pruning,
    runtime,
    samples,
    transfer,
)
from worker.trainer.build import build_model, make_callbacks, model_summary, prepare_targets
from worker.trainer.evaluate import evaluate
from worker.trainer.recipes import Recipes
from worker.trainer.sysmetrics import SystemSampler

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model.keras"


class RunNotRunning(RuntimeError):
    """The trainer only trains a run the worker has claimed (status running)."""


def run(run_id: int, *, flush_timeout_s: float | None = None) -> int:
    """Train a claimed run and record how it ended; the process exit code (0 or 1)."""
    settings = get_settings()
    flush_timeout = flush_timeout_s if flush_timeout_s is not None else settings.heartbeat_timeout_s
    flusher: MetricFlusher | None = None
    run_port = port.for_run(run_id, attempt=current_attempt())
    try:
        with port.serving(run_port):
            spec = _load_spec(run_port)
            flusher = MetricFlusher(
                port.PortSink(run_port), run_id=run_id, flush_interval_s=settings.flush_interval_s
            )
            status, reason = _train(run_port, spec, flusher, flush_timeout)
            run_port.finish(status.value, reason)
        log.info("run=%s event=finished status=%s", run_id, status.value)
        return 0
    except Exception as exc:
        tb = traceback.format_exc()
        log.error("run=%s event=failed error=%s: %s\n%s", run_id, type(exc).__name__, exc, tb)
        if flusher is not None:
            flusher.close(timeout=min(flush_timeout, 10.0))
        if not isinstance(exc, RunNotRunning | port.Superseded):
            _record_failure(run_port, exc, tb)
        return 1
    finally:
        runtime.reset()  # the dtype policy is process-global; in-process callers share it


def _load_spec(run_port: port.RunPort) -> ExperimentSpec:
    try:
        return ExperimentSpec.model_validate(run_port.spec())
    except port.NotRunning as exc:
        raise RunNotRunning(f"{exc}; a worker claims it first") from None


def _train(
    run_port: port.RunPort, spec: ExperimentSpec, flusher: MetricFlusher, flush_timeout: float
) -> tuple[RunStatus, str | None]:
    settings = get_settings()
    run_id = run_port.run_id
    # the stages of a starting run go out as they happen (the flusher writes from now on), at
    # the worker's CPU priority: a batch leaves as soon as it is queued, however busy the cores
    priority.at_normal(flusher.start)
    _stage(flusher, "process_started", **_process_facts(flusher))
    # first: it declares the devices, which must come before TensorFlow's first op
    recipes = Recipes(run_id=run_id, spec=spec, flusher=flusher)
    if spec.fit.seed is not None:
        keras.utils.set_random_seed(spec.fit.seed)
    started = time.monotonic()
    if spec.dataset.upload_id is not None:  # an upload: in this host's cache, checked
        run_port.dataset_dir(spec.dataset.upload_id)
    dataset = datasets.load(spec.dataset, data_dir=settings.data_dir)
    _stage(
        flusher,
        "data_loaded",
        dataset=dataset.name,
        train=len(dataset.x_train),
        test=len(dataset.x_test),
        input_shape=[int(d) if d is not None else None for d in dataset.input_shape],
        seconds=round(time.monotonic() - started, 2),
    )
    log.info(
        "run=%s event=data_loaded dataset=%s train=%d test=%d input_shape=%s seconds=%.1f",
        run_id,
        dataset.name,
        len(dataset.x_train),
        len(dataset.x_test),
        dataset.input_shape,
        time.monotonic() - started,
    )
    resume = checkpoints.resume_point(run_port)  # a lost attempt's successor goes on from it
    with recipes.scope():
        model = checkpoints.load(run_port, resume) if resume else build_model(spec, dataset)
        if checkpoints.is_fork_start(run_port, resume):
            checkpoints.apply_fork_spec(model, spec)
    summary = model_summary(model)
    transfer.announce(spec, flusher, summary)  # the base: in the summary and as an event
    samples.emit_samples(flusher, dataset)
    run_port.set_model_summary(summary)
    log.info("run=%s event=model_built params=%d", run_id, summary["total_params"])
    _stage(
        flusher,
        "model_built",
        params=int(summary["total_params"]),
        seconds=round(time.monotonic() - started, 2),
    )

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
    checkpointer: checkpoints.CheckpointCallback | None = None
    if spec.checkpoint.every_epochs > 0:
        checkpointer = checkpoints.CheckpointCallback(
            run_port,
            flusher,
            streaming,
            every_epochs=spec.checkpoint.every_epochs,
            keep=spec.checkpoint.keep,
            kept=checkpoints.stored_before(spec, resume),
        )
    initial_epoch = 0
    if resume is not None:
        initial_epoch = resume.epoch
        streaming.last_step = resume.step  # batch steps go on from the checkpoint's
        checkpoints.announce_resume(flusher, run_port, resume)
    y_train = prepare_targets(spec, model, dataset.y_train)
    fit_kwargs: dict[str, Any] = recipes.fit_kwargs(dataset.y_train)
    if fit.validation_data == "test":
        fit_kwargs["validation_data"] = (
            dataset.x_test,
            prepare_targets(spec, model, dataset.y_test),
        )
    elif validation_split:
        fit_kwargs["validation_split"] = validation_split

    sampler = SystemSampler(flusher.points).start()  # sys/* every 2 s, off this thread
    log.info(
        "run=%s event=fit_start epochs=%d batch_size=%d", run_id, fit.epochs, recipes.batch_size
    )
    fit_model = phases.fit_function(model, spec=spec, flusher=flusher)  # fit.phases, if any
    pruner = pruning.for_run(run_port)  # a trial of a sweep with a pruner
    try:
        fit_model(
            dataset.x_train,
            y_train,
            epochs=fit.epochs,
            initial_epoch=initial_epoch,
            batch_size=recipes.batch_size,
            shuffle=fit.shuffle,
            callbacks=[
                *recipes.callbacks(make_callbacks(spec.callbacks), num_classes=dataset.num_classes),
                *epoch_evaluation.callbacks(spec, dataset, flusher),  # evaluation.every_epoch
                *([pruner] if pruner is not None else []),
                streaming,
                *([checkpointer] if checkpointer is not None else []),  # after the metrics
            ],
            verbose=2,
            **fit_kwargs,
        )
    finally:
        sampler.stop()
        if checkpointer is not None:
            checkpointer.close()  # the last upload lands before the run ends
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
        run_port.save_evaluation(
            split=result.split,
            class_names=result.class_names,
            confusion_matrix=result.confusion_matrix,
            report=result.report,
        )
        log.info(
            "run=%s event=evaluated accuracy=%.4f", run_id, float(result.report.get("accuracy", 0))
        )
    _save_model(run_port, model, flusher)
    recipes.after_fit(model, cancelled=cancelled or pruned)
    recipes.close()

    if not flusher.close(timeout=flush_timeout):
        raise RuntimeError(f"could not write every metric within {flush_timeout:.0f}s")
    if cancelled:
        return RunStatus.cancelled, f"cancelled on request after {streaming.last_step} batches"
    if pruned and pruner is not None:
        return RunStatus.pruned, pruner.reason
    return RunStatus.succeeded, None


def _stage(flusher: MetricFlusher, stage: str, **facts: Any) -> None:
    """One stage of a starting run, as an event (the run page's timeline and progress show it)."""
    flusher.event(
        "stage", {"stage": stage, "wall_time": time.time(), **facts}, uid=f"stage-{stage}"
    )


def _process_facts(flusher: MetricFlusher) -> dict[str, Any]:
    """How long this process took to get here (mostly importing TensorFlow and Keras; ~0 for a
    standby trainer that had imported them before its run came), the CPU priority (nice) of
    its training and of its metric flusher, and how many start-up objects its garbage
    collector leaves alone (backend.heap)."""
    warm_since = os.environ.get("FITBOARD_WARM_SINCE")
    if warm_since:
        since_start: float | None = time.time() - float(warm_since)
    else:
        try:
            since_start = time.time() - psutil.Process(os.getpid()).create_time()
        except psutil.Error:
            since_start = None
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "startup_s": round(since_start, 2) if since_start is not None else None,
        "warm": bool(warm_since),
        "backend": keras.backend.backend(),
        "nice": {
            "training": priority.nice_of(threading.get_native_id()),
            "streaming": priority.nice_of(flusher.thread_id),
        },
        "heap_frozen": gc.get_freeze_count(),
    }


def _save_model(run_port: port.RunPort, model: keras.Model, flusher: MetricFlusher) -> None:
    """model.keras into the store; when the API stays away past every retry, kept on this
    worker and sent with its next beats (the run still ends as it trained)."""
    run_id = run_port.run_id
    with tempfile.TemporaryDirectory(prefix=f"fitboard-run-{run_id}-") as tmp:
        path = Path(tmp) / MODEL_ARTIFACT
        model.save(path)
        try:
            size = run_port.add_artifact(MODEL_ARTIFACT, "model", path)
        except port.Unreachable as exc:
            kept = unsent.keep(run_id, MODEL_ARTIFACT, "model", path)
            log.error("run=%s event=model_unsent kept=%s error=%s", run_id, kept, exc)
            flusher.event(
                "artifact_error",
                {
                    "format": "keras",
                    "name": MODEL_ARTIFACT,
                    "error": f"upload failed: {exc}",
                    "kept_on": socket.gethostname(),
                    "recovering": "the worker sends it again until the API takes it",
                },
                uid=f"artifact_error-{MODEL_ARTIFACT}",
            )
            return
    log.info("run=%s event=model_saved bytes=%d", run_id, size)


def current_attempt() -> int | None:
    """The attempt this process trains (the worker says so), or None when run by hand."""
    value = os.environ.get(lifeline.ATTEMPT_ENV, "")
    return int(value) if value.isdigit() else None


def _record_failure(run_port: port.RunPort, exc: Exception, tb: str) -> None:
    try:
        run_port.finish(RunStatus.failed.value, f"{type(exc).__name__}: {exc}", tb)
    except Exception:
        # the worker records a failed exit itself when Fitboard is unreachable
        log.exception("run=%s event=record_failure_failed", run_port.run_id)
