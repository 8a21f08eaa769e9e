"""Runs trained elsewhere: a script creates one, streams points into it and finishes it.

The same stores and events as a worker's run (metrics.record, events.append, runs.finish), so
the history, the run page and live viewers treat both alike. Every post is a heartbeat: the
API's housekeeping fails an external run that stops posting for heartbeat_timeout_s.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.bounds import MAX_INT32
from backend.client.evaluation import classification_report
from backend.db.base import utcnow
from backend.errors import Conflict, InvalidInput
from backend.evaluation import service as evaluations
from backend.events import service as events
from backend.external.schemas import MAX_POINTS_PER_POST
from backend.health import counters
from backend.metrics import service as metrics
from backend.metrics.ingest import PointColumns
from backend.metrics.service import Point
from backend.runs import service as runs
from backend.runs.models import Run, RunSource, RunStatus, RunTag
from backend.users.models import User
from backend.users.service import ensure_can_modify

log = logging.getLogger(__name__)

# runs fed by keras.callbacks.RemoteMonitor carry this tag (it has no end-of-training signal)
REMOTE_MONITOR_TAG = "remote-monitor"


def create(
    session: Session,
    *,
    user: User,
    name: str,
    spec: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    dataset: str | None = None,
    tags: Iterable[str] = (),
) -> Run:
    """A running external run launched by ``user``; spec is stored as given (params if none)."""
    stored: dict[str, Any] = dict(spec if spec is not None else (params or {}))
    given = stored.get("dataset")
    if given is not None and not isinstance(given, Mapping):
        raise InvalidInput(
            "spec.dataset must be an object like {'name': 'digits'}; or send 'dataset' as a "
            "name beside the spec",
            field="spec.dataset",
        )
    if dataset and given is None:
        stored["dataset"] = {"name": dataset}
    dataset_name = dataset or (str(given["name"])[:100] if given and given.get("name") else None)
    now = utcnow()
    run = Run(
        name=name.strip(),
        spec=stored,
        preset=None,
        dataset=dataset_name,
        status=RunStatus.running.value,
        source=RunSource.external.value,
        launched_by_id=user.id,
        started_at=now,
        heartbeat_at=now,
        worker_host="external",
    )
    clean_tags = sorted({t.strip()[:50] for t in tags if t.strip()})
    session.add(run)
    session.flush()
    if clean_tags:  # the search row was written with the name only, at insert
        runs.edit(session, run_id=run.id, tags=clean_tags)
    runs.emit_status(session, run)
    log.info("run %s: external run created by user %s", run.id, user.id)
    return run


def writable(session: Session, *, user: User, run_id: int, running: bool = True) -> Run:
    """The external run, if ``user`` may post to it (and, with running, it still runs)."""
    run = runs.get(session, run_id)
    ensure_can_modify(user, owner_id=run.launched_by_id, what="run")
    if run.source != RunSource.external.value:
        raise Conflict(
            f"run {run_id} is trained by a Fitboard worker; only external runs take posts"
        )
    if running and run.status != RunStatus.running.value:
        raise Conflict(f"run {run_id} already {run.status}")
    return run


def _heartbeat(session: Session, run_id: int) -> None:
    session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.running.value)
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def to_points(items: Iterable[Mapping[str, Any]], *, now: float | None = None) -> list[Point]:
    """API points ({key, step, value, kind?, wall_time?}) as the metric store's points."""
    wall = time.time() if now is None else now
    out: list[Point] = []
    for item in items:
        key = str(item["key"])
        if item.get("kind") == "batch" and not key.startswith("batch/"):
            key = "batch/" + key
        value = item.get("value")
        out.append(
            {
                "key": key,
                "step": int(item["step"]),
                "value": None if value is None else float(value),
                "wall_time": float(item.get("wall_time") or wall),
            }
        )
    return out


def to_columns(
    *,
    keys: list[str],
    key_index: list[int],
    steps: list[int],
    values: list[float | None],
    wall_times: list[float] | None,
    now: float | None = None,
    field: str = "columns",
) -> PointColumns:
    """Columns as posted (each array already typed and bounded) as the metric store's batch;
    arrays of different lengths, a key_index past keys or a key named twice is an
    InvalidInput naming the field (``columns.key_index.7``)."""
    n = len(steps)
    for name, column in (("key_index", key_index), ("values", values), ("wall_times", wall_times)):
        if column is not None and len(column) != n:
            raise InvalidInput(
                f"{field}.{name}: has {len(column)} entries; steps has {n} (one per point)",
                field=f"{field}.{name}",
            )
    if key_index and max(key_index) >= len(keys):
        at = next(i for i, k in enumerate(key_index) if k >= len(keys))
        raise InvalidInput(
            f"{field}.key_index.{at}: {key_index[at]} is past the {len(keys)} keys",
            field=f"{field}.key_index.{at}",
        )
    if len(set(keys)) != len(keys):
        first: dict[str, int] = {}
        for at, key in enumerate(keys):
            if first.setdefault(key, at) != at:
                raise InvalidInput(
                    f"{field}.keys.{at}: {key!r} is named twice", field=f"{field}.keys.{at}"
                )
    walls = wall_times if wall_times is not None else [time.time() if now is None else now] * n
    return PointColumns.sanitized(
        keys=keys, key_index=key_index, steps=steps, values=values, wall_times=walls
    )


def posted_points(
    items: Iterable[Mapping[str, Any]], *, columns: Mapping[str, Any] | None
) -> list[Point] | PointColumns:
    """A post's points: its per-point items, then its columns (the first of two points at
    one key and step is the one stored)."""
    points = to_points(items)
    if columns is None:
        return points
    sent = to_columns(**columns)
    batch = PointColumns.from_points(points).then(sent) if points else sent
    if len(batch) > MAX_POINTS_PER_POST:
        raise InvalidInput(
            f"at most {MAX_POINTS_PER_POST:,} points a post (points and columns together)",
            field="columns",
        )
    return batch


def record_points(
    session: Session,
    *,
    user: User,
    run_id: int,
    points: list[Point] | PointColumns,
    uid: str | None = None,
    train_begin: Mapping[str, Any] | None = None,
    batch_events: Iterable[tuple[str, Mapping[str, Any], str]] = (),
) -> bool:
    """Store points and events as (kind, data, uid) (idempotent per uid and per run/key/step);
    returns whether cancel was asked."""
    run = writable(session, user=user, run_id=run_id)
    if train_begin is not None:
        events.append(
            session, run_id=run_id, kind="train_begin", data=dict(train_begin), uid="train_begin"
        )
    for kind, data, event_uid in batch_events:
        # the sender's uids live apart from those the API gives its own events
        events.append(session, run_id=run_id, kind=kind, data=dict(data), uid=f"ext-{event_uid}")
    if points:
        metrics.record(session, run_id=run_id, points=points, uid=f"ext-{uid or uuid.uuid4().hex}")
        counters.POINTS_INGESTED.inc(len(points))
    _heartbeat(session, run_id)
    return run.cancel_requested_at is not None


def save_evaluation(
    session: Session,
    *,
    user: User,
    run_id: int,
    split: str,
    class_names: list[str],
    confusion_matrix: list[list[int]],
    report: dict[str, Any] | None,
) -> None:
    writable(session, user=user, run_id=run_id, running=False)
    evaluations.save(
        session,
        run_id=run_id,
        split=split,
        class_names=class_names,
        confusion_matrix=confusion_matrix,
        report=report
        if report is not None
        else classification_report(confusion_matrix, class_names),
    )
    _heartbeat(session, run_id)


def finish(
    session: Session,
    *,
    user: User,
    run_id: int,
    status: RunStatus,
    reason: str | None = None,
    traceback: str | None = None,
) -> Run:
    """running -> status; finishing again with the same status is a no-op (safe to retry)."""
    run = writable(session, user=user, run_id=run_id, running=False)
    if run.status == status.value:
        return run
    if run.status != RunStatus.running.value:
        raise Conflict(f"run {run_id} already {run.status}")
    runs.finish(session, run_id=run_id, status=status, reason=reason, traceback=traceback)
    session.refresh(run)
    log.info("run %s: external run finished %s", run_id, status.value)
    return run


# --- keras.callbacks.RemoteMonitor ---------------------------------------------------------------


def _epoch_points(logs: Mapping[str, Any], step: int, wall: float) -> list[Point]:
    out: list[Point] = []
    for key, value in logs.items():
        if key == "epoch" or not isinstance(key, str) or not key or len(key) > 190:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue  # RemoteMonitor sends what logs hold; only numbers are metrics
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float: as +-infinity
            number = math.inf if value > 0 else -math.inf
        out.append(
            {
                "key": key,
                "step": step,
                "value": None if math.isnan(number) else number,
                "wall_time": wall,
            }
        )
    return out


def _latest_monitor_run(session: Session, *, user: User, name: str) -> Run | None:
    stmt = (
        select(Run)
        .where(
            Run.source == RunSource.external.value,
            Run.name == name,
            Run.launched_by_id == user.id,
            Run.id.in_(select(RunTag.run_id).where(RunTag.tag == REMOTE_MONITOR_TAG)),
        )
        .order_by(Run.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def _reopen(session: Session, run: Run) -> None:
    """A RemoteMonitor run closed for silence (a slow epoch) that reports again runs again."""
    run.status = RunStatus.running.value
    run.finished_at = None
    run.failure_reason = None
    run.failure_traceback = None
    runs.emit_status(session, run, uid=f"status-reopened-{uuid.uuid4().hex[:12]}")


def remote_monitor_epoch(
    session: Session,
    *,
    user: User,
    name: str,
    logs: Mapping[str, Any],
    epochs: int | None = None,
) -> tuple[Run, int, int]:
    """One RemoteMonitor post: {'epoch': i, metric: value, ...} -> (run, epoch, points stored).

    Epoch 0 starts a new run (finishing, as succeeded, a previous one of that name still
    running); a later epoch appends to the latest RemoteMonitor run of that name and user.
    With ``epochs`` (the fit's total) the run succeeds once the last epoch arrives.
    """
    raw_epoch = logs.get("epoch")
    if (
        isinstance(raw_epoch, bool)
        or not isinstance(raw_epoch, int | float)
        or not 0 <= raw_epoch <= MAX_INT32  # NaN fails both comparisons
    ):
        raise InvalidInput(
            f"the posted logs need 'epoch', a number from 0 to {MAX_INT32}", field="epoch"
        )
    epoch = int(raw_epoch)
    name = name.strip()[:200]
    if not name:
        raise InvalidInput("the run name in the path must not be blank", field="name")
    run = _latest_monitor_run(session, user=user, name=name)
    if run is not None:
        ensure_can_modify(user, owner_id=run.launched_by_id, what="run")
    if epoch == 0 or run is None:
        if run is not None and run.status == RunStatus.running.value:
            runs.finish(session, run_id=run.id, status=RunStatus.succeeded)
        spec: dict[str, Any] = {"fit": {"epochs": epochs}} if epochs else {}
        run = create(session, user=user, name=name, spec=spec, tags=[REMOTE_MONITOR_TAG])
        if epochs:
            events.append(
                session,
                run_id=run.id,
                kind="train_begin",
                data={"epochs": epochs, "steps_per_epoch": None},
                uid="train_begin",
            )
    elif run.status != RunStatus.running.value:
        if run.cancel_requested_at is not None or run.status == RunStatus.cancelled.value:
            raise Conflict(f"run {run.id} was cancelled; start again from epoch 0")
        _reopen(session, run)
    points = _epoch_points(logs, epoch + 1, time.time())
    if points:
        metrics.record(session, run_id=run.id, points=points, uid=f"remote-monitor-{epoch}")
    _heartbeat(session, run.id)
    if epochs and epoch + 1 >= epochs:
        runs.finish(session, run_id=run.id, status=RunStatus.succeeded)
    session.refresh(run)
    return run, epoch, len(points)


def stale_outcome(session: Session, *, run_id: int) -> tuple[RunStatus, str | None] | None:
    """How housekeeping ends a silent external run; None for a worker's run (its own rule)."""
    run = session.get(Run, run_id)
    if run is None or run.source != RunSource.external.value:
        return None
    if REMOTE_MONITOR_TAG in run.tags:
        planned = ((run.spec or {}).get("fit") or {}).get("epochs")
        if not planned:
            # RemoteMonitor never says training ended: the end of the posts is the end
            return RunStatus.succeeded, None
        return RunStatus.failed, (
            f"RemoteMonitor stopped posting before the last of {planned} epochs"
        )
    return RunStatus.failed, (
        "external run lost: the training script stopped posting (it crashed, or its "
        "machine or network went away)"
    )
