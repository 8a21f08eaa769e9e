"""Register artifacts of a run and find them again."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from backend.artifacts.models import Artifact
from backend.artifacts.store import ArtifactStore, run_prefix
from backend.errors import NotFound
from backend.events import service as events

log = logging.getLogger(__name__)

_KEYS_TO_DELETE = "fitboard.artifact_keys_to_delete"


def add(
    session: Session, *, store: ArtifactStore, run_id: int, name: str, kind: str, source: Path
) -> Artifact:
    """Copy a file into the store and record it (replacing an artifact of the same name)."""
    key = f"{run_prefix(run_id)}{name}"
    size = store.put(key, source)
    artifact = session.scalar(
        select(Artifact).where(Artifact.run_id == run_id, Artifact.name == name)
    ) or Artifact(run_id=run_id, name=name)
    artifact.kind, artifact.storage_key, artifact.size_bytes = kind, key, size
    session.add(artifact)
    events.append(
        session,
        run_id=run_id,
        kind="artifact",
        data={"name": name, "kind": kind},
        uid=f"artifact-{name}",
    )
    return artifact


def list_for_run(session: Session, *, run_id: int) -> list[Artifact]:
    stmt = select(Artifact).where(Artifact.run_id == run_id).order_by(Artifact.id)
    return list(session.scalars(stmt))


def get(session: Session, *, run_id: int, name: str) -> Artifact:
    artifact = session.scalar(
        select(Artifact).where(Artifact.run_id == run_id, Artifact.name == name)
    )
    if artifact is None:
        raise NotFound(f"run {run_id} has no artifact {name!r}")
    return artifact


def delete(session: Session, *, store: ArtifactStore, run_id: int, name: str) -> bool:
    """Forget the run's artifact ``name`` and, once committed, its bytes; False if it had none."""
    artifact = session.scalar(
        select(Artifact).where(Artifact.run_id == run_id, Artifact.name == name)
    )
    if artifact is None:
        return False
    session.delete(artifact)
    session.flush()
    session.info.setdefault(_KEYS_TO_DELETE, []).append((store, artifact.storage_key))
    return True


@event.listens_for(Session, "after_commit")
def _delete_bytes_after_commit(session: Session) -> None:
    # after the commit: a failed commit must not leave a row pointing at removed bytes
    for store, key in session.info.pop(_KEYS_TO_DELETE, ()):
        try:
            store.delete(key)
        except OSError:
            log.exception("could not remove the artifact bytes at %s", key)


@event.listens_for(Session, "after_rollback")
def _keep_bytes_after_rollback(session: Session) -> None:
    session.info.pop(_KEYS_TO_DELETE, None)
