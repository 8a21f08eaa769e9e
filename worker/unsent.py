"""Artifacts a run made but could not upload (the API away past every retry): kept on this
worker's disk and sent again with every beat of the worker until the API takes them. The run
ends as it trained (succeeded, with an ``artifact_error`` event naming the file and where it
waits), never ``failed`` for a model it has."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from backend.config import get_settings

log = logging.getLogger(__name__)

SIDECAR = ".artifact.json"


def folder() -> Path:
    return get_settings().home.resolve() / "unsent-artifacts"


def keep(run_id: int, name: str, kind: str, source: Path) -> Path:
    """A copy of the file that survives the training process, to send later."""
    target = folder() / f"run-{run_id}" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    sidecar = target.with_name(target.name + SIDECAR)
    sidecar.write_text(json.dumps({"run_id": run_id, "name": name, "kind": kind}))
    return target


def pending() -> list[tuple[int, str, str, Path]]:
    """(run id, name, kind, file) of every artifact waiting to be sent."""
    found = []
    for sidecar in sorted(folder().glob(f"run-*/*{SIDECAR}")):
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue
        path = sidecar.with_name(sidecar.name[: -len(SIDECAR)])
        if path.is_file():
            found.append((int(meta["run_id"]), str(meta["name"]), str(meta["kind"]), path))
    return found


def send_pending() -> int:
    """Try each waiting artifact once; the ones the API took are removed. How many were sent."""
    from worker.http_port import HttpPort

    settings = get_settings()
    sent = 0
    for run_id, name, kind, path in pending():
        run_port = HttpPort(run_id, url=settings.url, token=settings.worker_token)
        try:
            run_port.add_artifact(name, kind, path, retry_for_s=0)
        except Exception as exc:  # still away (or refused): the next beat tries again
            log.debug("run=%s artifact %s still unsent: %s", run_id, name, exc)
            continue
        path.with_name(path.name + SIDECAR).unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        log.info("run=%s event=artifact_recovered name=%s", run_id, name)
        sent += 1
    return sent
