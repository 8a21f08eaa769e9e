"""Resume and fork by hand.

Resume: a failed, cancelled or succeeded worker run goes back to the queue as its next attempt
and trains on from its newest checkpoint (same run, same curves), optionally for more epochs.
Fork: a new run whose spec is another's with changes, starting from that run's checkpoint at
epoch k; its curves begin with a copy of the source's up to k, and the ``forked`` / ``fork``
events link the two (backend.runs.checkpoints).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.broker import queue_for
from backend.config import get_settings
from backend.datasets import service as datasets
from backend.errors import Conflict, InvalidInput
from backend.events import service as events
from backend.metrics import service as metrics
from backend.runs import checkpoints, hooks
from backend.runs import service as runs
from backend.runs.models import Run, RunSource, RunStatus, dataset_of
from backend.spec import resolve_spec
from backend.spec.presets import deep_merge

log = logging.getLogger(__name__)

RESUMABLE = (RunStatus.failed, RunStatus.cancelled, RunStatus.succeeded)
# a fork loads the source's model (layers, weights, optimizer) from the checkpoint: what
# builds or compiles a model cannot change, but the learning rate and how deep a transfer
# model's base trains can (fit.*, e.g. epochs, callbacks and phases' unfreeze_last, is free)
FORK_FIXED = ("dataset", "model", "compile")
FORK_FREE = ("compile.optimizer.learning_rate", "model.base.trainable")


def resume_blocker(session: Session, run: Run) -> str | None:
    """Why the run cannot be resumed by hand now, or None when it can."""
    if run.source != RunSource.worker.value:
        return f"run {run.id} is an external run: its own script trains it, not a worker"
    if run.sweep_id is not None:
        return f"run {run.id} is a trial of sweep {run.sweep_id}: the sweep decides its trials"
    if RunStatus(run.status) not in RESUMABLE:
        return f"run {run.id} is {run.status}: only a failed, cancelled or succeeded run resumes"
    if checkpoints.start_point(session, run_id=run.id) is None:
        return f"run {run.id} has no checkpoint to resume from"
    return None


def resume(session: Session, *, run_id: int, epochs: int | None = None) -> Run:
    """A finished run back to the queue as its next attempt, going on from its newest
    checkpoint; ``epochs`` raises fit.epochs."""
    run = runs.get(session, run_id)
    blocker = resume_blocker(session, run)
    if blocker is not None:
        raise Conflict(blocker)
    point = checkpoints.start_point(session, run_id=run_id)
    assert point is not None
    current = int((run.spec.get("fit") or {}).get("epochs", 5))
    if epochs is not None and epochs < current:
        raise InvalidInput(f"epochs: at least {current}, the run's fit.epochs", field="epochs")
    target = epochs if epochs is not None else current
    if target <= point.epoch:
        if epochs is not None:
            raise InvalidInput(
                f"epochs: more than {point.epoch}, the epoch of its newest checkpoint",
                field="epochs",
            )
        raise Conflict(
            f"run {run_id} trained all {current} epochs (checkpoint at epoch {point.epoch}): "
            "give it more epochs"
        )
    attempt, was = run.attempt, run.status
    moved = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == was, Run.attempt == attempt)
        .values(
            status=RunStatus.queued.value,
            attempt=attempt + 1,
            heartbeat_at=None,
            dispatched_at=None,
            worker_host=None,
            finished_at=None,
            cancel_requested_at=None,
            failure_reason=None,
            failure_traceback=None,
        )
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"run {run_id} changed meanwhile: try again")
    session.refresh(run)
    if target != current:  # through the ORM: run_params follows the spec on flush
        run.spec = resolve_spec(spec=deep_merge(run.spec, {"fit": {"epochs": target}})).model_dump(
            mode="json"
        )
    kept = checkpoints.keep_until(session, run_id=run_id)  # what lies after it goes
    session.flush()
    events.append(
        session,
        run_id=run.id,
        kind="status",
        data={
            **runs.status_event(run),
            "resumed_by_hand": True,
            "was": was,
            "epochs": target,
            "resume_from": kept.as_dict() if kept is not None else None,
        },
        uid=f"requeued-{attempt}",  # checkpoints.chosen reads the next attempt's start here
    )
    hooks.queue_changed(session)  # back in the queue, in its turn
    log.info(
        "run %s: resumed by hand (was %s) as attempt %s from epoch %s, to epoch %s",
        run_id,
        was,
        attempt + 1,
        point.epoch,
        target,
    )
    return run


def _paths(value: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, item in value.items():
        path = f"{prefix}{key}"
        if isinstance(item, Mapping) and item:
            yield from _paths(item, path + ".")
        else:
            yield path


def _check_fork_overrides(overrides: Mapping[str, Any] | None) -> None:
    for path in _paths(overrides or {}):
        head = path.split(".", 1)[0]
        if head in FORK_FIXED and not any(path.startswith(free) for free in FORK_FREE):
            raise InvalidInput(
                f"overrides.{path}: a fork trains its source's model from a checkpoint, so "
                f"{', '.join(FORK_FIXED)} cannot change (but {', '.join(FORK_FREE)})",
                field=f"overrides.{path}",
            )


def fork(
    session: Session,
    *,
    source_id: int,
    name: str,
    from_epoch: int | None = None,
    overrides: dict[str, Any] | None = None,
    launched_by_id: int | None = None,
) -> Run:
    """A new run that starts from ``source_id``'s checkpoint at ``from_epoch`` (its newest by
    default), with ``overrides`` merged into the source's spec."""
    source = runs.get(session, source_id)
    if source.source != RunSource.worker.value:
        raise Conflict(f"run {source_id} is an external run: it has no checkpoints")
    if not RunStatus(source.status).finished:
        raise Conflict(
            f"run {source_id} is {source.status}: fork it once it ends (it prunes old "
            "checkpoints while it trains)"
        )
    stored = checkpoints.stored(session, run_id=source_id)
    if not stored:
        raise Conflict(f"run {source_id} has no checkpoint to fork from")
    if from_epoch is None:
        point = stored[-1]
    else:
        matching = [p for p in stored if p.epoch == from_epoch]
        if not matching:
            have = ", ".join(str(p.epoch) for p in stored)
            raise InvalidInput(
                f"from_epoch: run {source_id} has no checkpoint at epoch {from_epoch} "
                f"(it has epochs {have})",
                field="from_epoch",
            )
        point = matching[0]
    _check_fork_overrides(overrides)
    resolved = resolve_spec(spec=source.spec, overrides=overrides)  # 422 naming the field
    if resolved.fit.epochs <= point.epoch:
        raise InvalidInput(
            f"overrides.fit.epochs: more than {point.epoch}, the epoch the fork starts from "
            f"(it is {resolved.fit.epochs})",
            field="overrides.fit.epochs",
        )
    datasets.check_spec(session, resolved)
    spec_json = resolved.model_dump(mode="json")
    run = Run(
        name=name.strip(),
        spec=spec_json,
        preset=source.preset,
        dataset=dataset_of(spec_json),
        status=RunStatus.queued.value,
        launched_by_id=launched_by_id,
        priority=source.priority,
        queue=queue_for(spec_json, get_settings().queue),
    )
    session.add(run)
    session.flush()
    start = checkpoints.ResumePoint(
        epoch=point.epoch, step=point.step, artifact=point.artifact, run_id=source_id
    )
    events.append(
        session,
        run_id=run.id,
        kind=checkpoints.FORKED_EVENT,
        data=start.as_dict(),
        uid=checkpoints.FORKED_EVENT,
    )
    events.append(
        session,
        run_id=source_id,
        kind=checkpoints.FORK_EVENT,
        data={"run_id": run.id, "epoch": point.epoch},
        uid=f"fork-{run.id}",
    )
    metrics.copy_until(
        session, source_id=source_id, run_id=run.id, epoch=point.epoch, batch_step=point.step
    )
    runs.emit_status(session, run)
    hooks.queue_changed(session)
    log.info("run %s: forked from run %s at epoch %s", run.id, source_id, point.epoch)
    return run


def lineage(session: Session, run: Run) -> dict[str, Any]:
    """What the run page shows of a run's checkpoints and forks: {checkpoints, forked_from,
    forks, resumable} (names of runs since deleted are None)."""
    start = checkpoints.fork_point(session, run_id=run.id)
    forks = checkpoints.forks_of(session, run_id=run.id)
    ids = {f["run_id"] for f in forks} | ({start.run_id} if start and start.run_id else set())
    names = {
        run_id: name
        for run_id, name in session.execute(select(Run.id, Run.name).where(Run.id.in_(ids)))
    }
    forked_from = None
    if start is not None and start.run_id is not None:
        forked_from = {
            "run_id": start.run_id,
            "epoch": start.epoch,
            "name": names.get(start.run_id),
        }
    return {
        "checkpoints": [p.epoch for p in checkpoints.stored(session, run_id=run.id)],
        "forked_from": forked_from,
        "forks": [{**f, "name": names[f["run_id"]]} for f in forks if f["run_id"] in names],
        "resumable": resume_blocker(session, run) is None,
    }
