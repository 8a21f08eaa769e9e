"""A RunPort over HTTP: the worker protocol (/api/v1/worker) with a worker token.

Calls that the run cannot go on without (claim, spec, artifacts, the evaluation, the end) are
retried through an outage of the API for up to ``RETRY_FOR_S``; a flusher batch is tried once
per flush (the flusher sends the same uid again); the log is shipped by a background thread
from a local file, by byte offset, so a retried chunk is never written twice.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import httpx

from backend.client.columns import columns_unknown, point_columns
from backend.config import get_settings
from backend.datasets import store as datasets
from backend.jsonpolicy import strict
from worker import lifeline
from worker.port import Missing, NotRunning, ResumePoint, Superseded, Unreachable

if TYPE_CHECKING:
    from backend.client.streaming import Event
    from backend.metrics.service import Point

log = logging.getLogger(__name__)

PREFIX = "/api/v1/worker"
RETRY_FOR_S = 300.0
LOG_SHIP_EVERY_S = 1.0
LOG_CHUNK = 1 << 20
LOG_DRAIN_S = 30.0
T = TypeVar("T")


class Refused(RuntimeError):
    """The API refused the call for good (a bad token, a request it calls invalid)."""

    def __init__(self, message: str, *, columns_unknown: bool = False) -> None:
        super().__init__(message)
        # a 422 of an API from before the columnar points body (it forbids the field)
        self.columns_unknown = columns_unknown


def _field_errors(response: httpx.Response) -> list[tuple[str | None, str]]:
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        return [(e.get("field"), str(e.get("type", ""))) for e in response.json()["errors"]]
    return []


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)


class HttpPort:
    def __init__(self, run_id: int, *, url: str, token: str, attempt: int | None = None):
        self.run_id = run_id
        self.attempt = attempt
        self.log_offset = 0
        self.claimed_spec: dict[str, Any] = {}
        self.watched = False  # the last batch's answer: someone watches the run live
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(30.0, connect=5.0),
        )
        self._points_as_columns = True  # False once the API says it predates columns

    # -- plumbing --------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """``path`` under the worker protocol's prefix, or one of the API's own (/api/v1/...)."""
        url = path if path.startswith("/api/") else PREFIX + path
        try:
            response = self._client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise Unreachable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise Unreachable(f"{method} {path}: {response.status_code} {_detail(response)}")
        if response.status_code < 400:
            return response
        detail = _detail(response)
        code = ""
        with contextlib.suppress(ValueError, AttributeError):
            code = str(response.json().get("code", ""))
        if response.status_code == 409 and code == "superseded":
            raise Superseded(detail)
        if response.status_code == 409:
            raise NotRunning(detail)
        if response.status_code == 404:
            raise Missing(detail)
        raise Refused(
            f"{method} {path}: {response.status_code} {detail}",
            columns_unknown=response.status_code == 422
            and columns_unknown(_field_errors(response)),
        )

    def _retried(self, call: Callable[[], T], *, what: str, for_s: float = RETRY_FOR_S) -> T:
        deadline = time.monotonic() + for_s
        pause = 0.5
        while True:
            try:
                return call()
            except Unreachable as exc:
                if time.monotonic() + pause > deadline:
                    raise
                log.warning("run=%s %s: %s; retrying in %.1fs", self.run_id, what, exc, pause)
                time.sleep(pause)
                pause = min(pause * 2, 5.0)

    def _json(self, method: str, path: str, body: Any = None, *, what: str) -> Any:
        def call() -> Any:
            response = self._request(method, path, json=body)
            return response.json() if response.content else None

        return self._retried(call, what=what)

    # -- the worker ------------------------------------------------------------------------

    def claim(self, host: str) -> bool:
        try:
            answer = self._json("POST", f"/runs/{self.run_id}/claim", {"host": host}, what="claim")
        except NotRunning:
            return False
        self.attempt = int(answer["attempt"])
        self.log_offset = int(answer["log_offset"])
        self.claimed_spec = dict(answer["spec"])
        return True

    def heartbeat(self) -> bool:
        answer = self._request(
            "POST", f"/runs/{self.run_id}/heartbeat", json={"attempt": self.attempt}
        ).json()
        return bool(answer["cancel_requested"])

    def record_exit(self, *, reason: str, cancelled: bool, traceback: str | None) -> str:
        body = {
            "attempt": self.attempt,
            "reason": reason,
            "cancelled": cancelled,
            "traceback": traceback,
        }
        return str(self._json("POST", f"/runs/{self.run_id}/exit", body, what="exit")["status"])

    @contextlib.contextmanager
    def run_log(self) -> Iterator[tuple[BinaryIO, Path]]:
        """A local file for the training process's output, shipped to the API as it grows."""
        folder = get_settings().home.resolve() / "worker-logs"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"run-{self.run_id}-attempt-{self.attempt}.log"
        shipper = _LogShipper(self, path)
        with path.open("wb") as out:
            shipper.start()
            try:
                yield out, path
            finally:
                out.flush()
                shipper.finish()

    def ship_log(self, offset: int, data: bytes) -> int:
        response = self._request(
            "POST",
            f"/runs/{self.run_id}/log",
            params={"offset": self.log_offset + offset},
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        return int(response.json()["size"])

    # -- the training process ----------------------------------------------------------------

    def spec(self) -> dict[str, Any]:
        params = {"attempt": self.attempt} if self.attempt is not None else None

        def call() -> dict[str, Any]:
            response = self._request("GET", f"/runs/{self.run_id}/spec", params=params)
            return dict(response.json()["spec"])

        return self._retried(call, what="spec")

    def write(self, uid: str, points: Sequence[Point], events: Sequence[Event]) -> bool:
        body: dict[str, Any] = {
            "attempt": self.attempt,
            "uid": uid,
            "events": [{"kind": e.kind, "data": strict(e.data), "uid": e.uid} for e in events],
        }
        if self._points_as_columns:
            body["columns"] = point_columns(points)
        else:
            body["points"] = [
                {
                    "key": p["key"],
                    "step": p["step"],
                    "value": strict(p["value"]),
                    "wall_time": p["wall_time"],
                }
                for p in points
            ]
        try:
            # the batch endpoint FitboardCallback posts to as well (a worker token here)
            response = self._request("POST", f"/api/v1/runs/{self.run_id}/points", json=body)
        except Refused as exc:
            if self._points_as_columns and exc.columns_unknown:
                self._points_as_columns = False  # an API from before columns
                return self.write(uid, points, events)
            # the API calls this batch invalid: sending it again cannot help, and holding it
            # would hold every later point back
            log.error("run=%s event=batch_refused uid=%s %s", self.run_id, uid, exc)
            return False
        answer = response.json()
        self.watched = bool(answer.get("watched", False))
        return bool(answer["cancel_requested"])

    def cancel_requested(self) -> bool:
        try:
            return self.heartbeat()
        except (Unreachable, Refused):
            return False

    def set_model_summary(self, summary: dict[str, Any]) -> None:
        body = {"attempt": self.attempt, "summary": strict(summary)}
        self._json("PUT", f"/runs/{self.run_id}/model-summary", body, what="model summary")

    def save_evaluation(
        self,
        *,
        split: str,
        class_names: list[str],
        confusion_matrix: list[list[int]],
        report: dict[str, Any],
    ) -> None:
        body = {
            "attempt": self.attempt,
            "split": split,
            "class_names": class_names,
            "confusion_matrix": confusion_matrix,
            "report": strict(report),
        }
        self._json("PUT", f"/runs/{self.run_id}/evaluation", body, what="evaluation")

    def add_artifact(
        self, name: str, kind: str, path: Path, *, retry_for_s: float = RETRY_FOR_S
    ) -> int:
        params: dict[str, Any] = {"kind": kind}
        if self.attempt is not None:
            params["attempt"] = self.attempt

        def call() -> int:
            with path.open("rb") as f:
                response = self._request(
                    "PUT",
                    f"/runs/{self.run_id}/artifacts/{name}",
                    params=params,
                    content=f,
                    headers={"Content-Type": "application/octet-stream"},
                )
            return int(response.json()["size_bytes"])

        return self._retried(call, what=f"artifact {name}", for_s=retry_for_s)

    def _attempt_params(self) -> dict[str, Any]:
        return {"attempt": self.attempt} if self.attempt is not None else {}

    def delete_artifact(self, name: str) -> bool:
        def call() -> bool:
            response = self._request(
                "DELETE", f"/runs/{self.run_id}/artifacts/{name}", params=self._attempt_params()
            )
            return bool(response.json()["deleted"])

        return self._retried(call, what=f"deleting artifact {name}")

    def resume_point(self) -> ResumePoint | None:
        def call() -> dict[str, Any]:
            response = self._request(
                "GET", f"/runs/{self.run_id}/resume", params=self._attempt_params()
            )
            return dict(response.json())

        answer = self._retried(call, what="resume point")
        if answer.get("epoch") is None:
            return None
        source = answer.get("run_id")
        return ResumePoint(
            epoch=int(answer["epoch"]),
            step=int(answer["step"]),
            artifact=str(answer["artifact"]),
            run_id=int(source) if source is not None else None,
        )

    def finish(self, status: str, reason: str | None, traceback: str | None = None) -> bool:
        self._send_own_log()
        body = {"attempt": self.attempt, "status": status, "reason": reason, "traceback": traceback}
        answer = self._json("POST", f"/runs/{self.run_id}/finish", body, what="finish")
        return bool(answer["recorded"])

    def _send_own_log(self) -> None:
        """In a training process: send what it wrote so far before its end is recorded, so a
        run that reads finished has its whole log (the worker's shipper would send it a moment
        later; by byte offset, so whichever comes second writes nothing twice)."""
        where = os.environ.get(lifeline.LOG_ENV)
        if not where:
            return
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(OSError, ValueError):
                handler.flush()
        self.log_offset = int(os.environ.get(lifeline.LOG_OFFSET_ENV) or 0)
        shipper = _LogShipper(self, Path(where))
        try:
            shipper.shipped = max(0, self.ship_log(0, b"") - self.log_offset)
        except (Unreachable, Refused, Missing, NotRunning) as exc:
            log.debug("run=%s event=log_tail_deferred error=%s", self.run_id, exc)
            return
        shipper.send()

    def prune_objective(self) -> str | None:
        answer = self._json("GET", f"/runs/{self.run_id}/pruning", what="pruning rule")
        return answer.get("objective")

    def prune_decide(self, epoch: int, value: float) -> str | None:
        body = {"epoch": epoch, "value": strict(value)}
        answer = self._request("POST", f"/runs/{self.run_id}/pruning", json=body).json()
        return answer.get("prune")

    def fetch_artifact(self, run_id: int, name: str, dest: Path) -> Path:
        target = dest / name

        def call() -> Path:
            try:
                with self._client.stream("GET", f"{PREFIX}/runs/{run_id}/artifacts/{name}") as r:
                    if r.status_code == 404:
                        r.read()
                        raise Missing(_detail(r))
                    if r.status_code >= 400:
                        r.read()
                        if r.status_code >= 500:
                            raise Unreachable(f"{r.status_code} {_detail(r)}")
                        raise Refused(f"{r.status_code} {_detail(r)}")
                    with target.open("wb") as out:
                        for chunk in r.iter_bytes(LOG_CHUNK):
                            out.write(chunk)
            except httpx.TransportError as exc:
                raise Unreachable(str(exc)) from exc
            return target

        return self._retried(call, what=f"run {run_id}'s {name}")

    def dataset_dir(self, upload_id: int) -> Path:
        """The upload in this worker's cache (FITBOARD_HOME/datasets/<id>), fetched once and
        checked file by file against the API's SHA-256 manifest."""
        manifest = self._json("GET", f"/datasets/{upload_id}/manifest", what="dataset manifest")
        folder = datasets.dataset_dir(upload_id)
        for rel, want in manifest["files"].items():
            target = folder.joinpath(*rel.split("/"))
            if _matches(target, want):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            fetch = functools.partial(self._fetch_file, upload_id, rel, target, want)
            self._retried(fetch, what=f"dataset {upload_id} file {rel}")
        log.info(
            "run=%s event=dataset_ready upload=%s files=%d",
            self.run_id,
            upload_id,
            len(manifest["files"]),
        )
        return folder

    def _fetch_file(self, upload_id: int, rel: str, target: Path, want: dict[str, Any]) -> None:
        part = target.with_name(target.name + ".part")
        digest = hashlib.sha256()
        try:
            with self._client.stream("GET", f"{PREFIX}/datasets/{upload_id}/files/{rel}") as r:
                if r.status_code >= 400:
                    r.read()
                    if r.status_code >= 500:
                        raise Unreachable(f"{r.status_code} {_detail(r)}")
                    raise Missing(_detail(r))
                with part.open("wb") as out:
                    for chunk in r.iter_bytes(LOG_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        except httpx.TransportError as exc:
            raise Unreachable(str(exc)) from exc
        if digest.hexdigest() != want["sha256"]:
            part.unlink(missing_ok=True)
            raise Unreachable(f"dataset {upload_id} file {rel}: checksum mismatch; fetching again")
        part.replace(target)


def _matches(path: Path, want: dict[str, Any]) -> bool:
    if not path.is_file() or path.stat().st_size != int(want["size"]):
        return False
    return datasets.sha256_of(path) == want["sha256"]


class _LogShipper:
    """Sends what the training process wrote to the local log, in order, by byte offset."""

    def __init__(self, port: HttpPort, path: Path) -> None:
        self.port = port
        self.path = path
        self.shipped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"log-shipper-{port.run_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(LOG_SHIP_EVERY_S):
            self.send()

    def send(self) -> bool:
        """Everything written so far; False when the API could not be reached."""
        try:
            with self.path.open("rb") as f:
                while True:
                    f.seek(self.shipped)
                    data = f.read(LOG_CHUNK)
                    if not data:
                        return True
                    size = self.port.ship_log(self.shipped, data)
                    self.shipped = max(self.shipped, size - self.port.log_offset)
        except (Unreachable, Refused, Missing, NotRunning, OSError) as exc:
            log.debug("run=%s event=log_ship_deferred error=%s", self.port.run_id, exc)
            return False

    def finish(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        deadline = time.monotonic() + LOG_DRAIN_S
        while not self.send():
            if time.monotonic() > deadline:
                log.warning("run=%s: could not send the rest of its log", self.port.run_id)
                return
            time.sleep(1.0)


def report_host(url: str, token: str, name: str, body: dict[str, Any]) -> None:
    """PUT this worker's report (its host's resources, what it runs) to the API."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=10.0) as client:
        response = client.put(f"{PREFIX}/hosts/{name}", json=body)
    if response.status_code >= 400:
        raise Refused(f"{response.status_code} {_detail(response)}")
