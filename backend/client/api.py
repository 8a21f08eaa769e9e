"""Fitboard: runs, sweeps, live events, evaluations and artifacts over the REST API."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

from backend.client.columns import columns_unknown, point_columns
from backend.client.errors import FitboardError
from backend.client.progress import Progress

DEFAULT_URL = "http://127.0.0.1:8000"
FINISHED = frozenset({"succeeded", "failed", "cancelled", "pruned"})


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event of a run: metrics, status, train_begin, evaluation, end, ..."""

    id: int
    kind: str
    data: dict[str, Any]


def load_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML or JSON file holding one object; FitboardError on a missing or bad file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FitboardError(f"no such file: {file}", code="file_not_found") from None
    except OSError as exc:
        raise FitboardError(f"cannot read {file}: {exc.strerror}", code="file_error") from None
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FitboardError(
            f"{file} is not valid YAML/JSON{where}: {problem}", code="bad_file"
        ) from None
    if not isinstance(data, dict):
        raise FitboardError(f"{file} must hold a mapping (key: value lines)", code="bad_file")
    return data


def _clean(value: Any) -> Any:
    """NaN and +-inf as JSON can carry them: null and +-1e300 (how Fitboard stores them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else math.copysign(1e300, value)
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class Fitboard:
    """A Fitboard server. url and token default to FITBOARD_URL and FITBOARD_TOKEN."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = (url or os.environ.get("FITBOARD_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("FITBOARD_TOKEN") or None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        headers["User-Agent"] = "fitboard-client"
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )
        self._points_as_columns = True  # False once a server says it predates columns

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Fitboard:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- plumbing ----------------------------------------------------------------------------

    def _unreachable(self, exc: httpx.TransportError) -> FitboardError:
        reason = str(exc) or type(exc).__name__
        return FitboardError(
            f"cannot reach Fitboard at {self.url} ({reason}); is the server running? "
            "(set --url or FITBOARD_URL)",
            code="unreachable",
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; any 4xx/5xx or network failure becomes a FitboardError."""
        if "json" in kwargs:
            kwargs["json"] = _clean(kwargs["json"])
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.status_code >= 400:
            raise self._error(response)
        return response

    @staticmethod
    def _error(response: httpx.Response) -> FitboardError:
        try:
            body = response.json()
        except ValueError:
            body = None
        text = response.text.strip().splitlines()[0][:300] if response.text.strip() else ""
        return FitboardError.from_body(response.status_code, body, text or response.reason_phrase)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return response.json() if response.content else None

    # --- runs --------------------------------------------------------------------------------

    @staticmethod
    def run_body(
        source: Mapping[str, Any] | str | os.PathLike[str],
        *,
        name: str | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """{name, spec|preset, overrides} from a dict or a YAML/JSON file holding one.

        A mapping with neither 'spec' nor 'preset' is taken as the spec itself."""
        data = dict(source) if isinstance(source, Mapping) else load_file(source)
        default_name = "run" if isinstance(source, Mapping) else Path(source).stem
        if "spec" not in data and "preset" not in data:
            data = {"spec": data}
        body: dict[str, Any] = {"name": name or data.get("name") or default_name}
        for key in ("spec", "preset", "overrides"):
            if data.get(key) is not None:
                body[key] = data[key]
        if overrides:
            body["overrides"] = {**(body.get("overrides") or {}), **overrides}
        return body

    def submit_run(
        self,
        source: Mapping[str, Any] | str | os.PathLike[str],
        *,
        name: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        notify: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Queue a run; returns the run as the API shows it. ``notify``: as in POST /runs."""
        body = self.run_body(source, name=name, overrides=overrides)
        if notify is not None:
            body["notify"] = dict(notify)
        return dict(self._json("POST", "/api/v1/runs", json=body))

    def get_run(self, run_id: int) -> dict[str, Any]:
        return dict(self._json("GET", f"/api/v1/runs/{int(run_id)}"))

    def runs(
        self,
        *,
        status: str | Sequence[str] | None = None,
        q: str | None = None,
        limit: int = 50,
        offset: int = 0,
        sort: str | None = None,
        **filters: Any,
    ) -> dict[str, Any]:
        """One page: {items, total, next_cursor, offset, limit}; filters as GET /api/v1/runs."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status if isinstance(status, str) else ",".join(status)
        if q:
            params["q"] = q
        if sort:
            params["sort"] = sort
        params.update({k: v for k, v in filters.items() if v is not None})
        return dict(self._json("GET", "/api/v1/runs", params=params))

    def cancel(self, run_id: int) -> dict[str, Any]:
        return dict(self._json("POST", f"/api/v1/runs/{int(run_id)}/cancel"))

    def resume(self, run_id: int, *, epochs: int | None = None) -> dict[str, Any]:
        """Queue a failed, cancelled or succeeded run again from its newest checkpoint (same
        run), for ``epochs`` in all if given."""
        body = {"epochs": epochs} if epochs is not None else {}
        return dict(self._json("POST", f"/api/v1/runs/{int(run_id)}/resume", json=body))

    def fork(
        self,
        run_id: int,
        *,
        name: str,
        from_epoch: int | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A new run from ``run_id``'s checkpoint at ``from_epoch`` (the newest by default),
        its spec with ``overrides``."""
        body: dict[str, Any] = {"name": name}
        if from_epoch is not None:
            body["from_epoch"] = from_epoch
        if overrides:
            body["overrides"] = dict(overrides)
        return dict(self._json("POST", f"/api/v1/runs/{int(run_id)}/fork", json=body))

    def metrics(self, run_id: int, *, keys: Sequence[str] | None = None) -> dict[str, Any]:
        params = {"keys": ",".join(keys)} if keys else {}
        return dict(self._json("GET", f"/api/v1/runs/{int(run_id)}/metrics", params=params))

    def evaluation(self, run_id: int) -> dict[str, Any]:
        return dict(self._json("GET", f"/api/v1/runs/{int(run_id)}/evaluation"))

    def artifacts(self, run_id: int) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/api/v1/runs/{int(run_id)}/artifacts")["items"])

    def download(
        self,
        run_id: int,
        dest: str | os.PathLike[str] = ".",
        *,
        names: Sequence[str] | None = None,
    ) -> list[Path]:
        """Save a run's artifacts (all, or those named) under dest; returns the paths."""
        folder = Path(dest)
        folder.mkdir(parents=True, exist_ok=True)
        saved = []
        for item in self.artifacts(run_id):
            if names and item["name"] not in names:
                continue
            target = folder / Path(item["name"]).name
            partial = target.with_name(target.name + ".part")
            try:
                with self._http.stream("GET", item["url"]) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise self._error(response)
                    with partial.open("wb") as out:
                        for chunk in response.iter_bytes():
                            out.write(chunk)
            except httpx.TransportError as exc:
                partial.unlink(missing_ok=True)
                raise self._unreachable(exc) from None
            partial.replace(target)
            saved.append(target)
        return saved

    def export_metrics(self, run_id: int, *, fmt: str = "csv") -> str:
        """Every stored point of a run as CSV text (or JSON text with fmt='json')."""
        return self.request("GET", f"/api/v1/runs/{int(run_id)}/metrics.{fmt}").text

    # --- sweeps ------------------------------------------------------------------------------

    def submit_sweep(
        self,
        source: Mapping[str, Any] | str | os.PathLike[str],
        *,
        name: str | None = None,
        notify: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """POST /api/v1/sweeps with the body from a dict or a YAML/JSON file."""
        body = dict(source) if isinstance(source, Mapping) else load_file(source)
        if notify is not None:
            body["notify"] = dict(notify)
        if name or "name" not in body:
            body["name"] = name or (
                Path(source).stem if not isinstance(source, Mapping) else "sweep"
            )
        return dict(self._json("POST", "/api/v1/sweeps", json=body))

    def get_sweep(self, sweep_id: int) -> dict[str, Any]:
        return dict(self._json("GET", f"/api/v1/sweeps/{int(sweep_id)}"))

    def cancel_sweep(self, sweep_id: int) -> dict[str, Any]:
        return dict(self._json("POST", f"/api/v1/sweeps/{int(sweep_id)}/cancel"))

    # --- live --------------------------------------------------------------------------------

    def events(
        self, run_id: int, *, after: int | None = None, timeout: float | None = None
    ) -> Iterator[Event]:
        """The run's events from the SSE stream, resuming after a dropped connection (or the
        server's `reconnect`, sent to a reader that fell far behind), until the server's `end`
        (the run finished)."""
        last = after
        deadline = None if timeout is None else time.monotonic() + timeout
        failures = 0
        while True:
            params = {"after": last} if last is not None else {}
            try:
                with self._http.stream(
                    "GET",
                    f"/api/v1/runs/{int(run_id)}/stream",
                    params=params,
                    timeout=httpx.Timeout(30.0, read=60.0),
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise self._error(response)
                    for event in _parse_sse(response.iter_lines()):
                        failures = 0
                        last = event.id
                        if event.kind == "reconnect":  # fell behind: resume on a new stream
                            break
                        yield event
                        if event.kind == "end":
                            return
            except httpx.TransportError as exc:
                failures += 1
                if failures > 5:
                    raise self._unreachable(exc) from None
                time.sleep(min(2.0 * failures, 10.0))
            if deadline is not None and time.monotonic() > deadline:
                raise FitboardError(f"run {run_id} still running after {timeout}s", code="timeout")

    def stream_metrics(self, run_id: int, *, after: int | None = None) -> Iterator[dict[str, Any]]:
        """Each metric point as it arrives: {key, step, value, wall_time} (value None is NaN)."""
        for event in self.events(run_id, after=after):
            if event.kind == "metrics":
                for key, step, value, wall_time in event.data.get("points", []):
                    yield {"key": key, "step": step, "value": value, "wall_time": wall_time}

    def wait(
        self,
        run_id: int,
        *,
        progress: bool = True,
        out: IO[str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Block until the run finishes, drawing a progress bar (epochs, batches, metrics)."""
        bar = Progress(out=out, enabled=progress)
        run = self.get_run(run_id)
        bar.start(run)
        if run["status"] not in FINISHED:
            for event in self.events(run_id, timeout=timeout):
                bar.on_event(event.kind, event.data)
        run = self.get_run(run_id)
        bar.finish(run)
        return run

    # --- runs trained elsewhere (FitboardCallback uses these) --------------------------------

    def create_external_run(
        self,
        name: str,
        *,
        spec: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        dataset: str | None = None,
        tags: Sequence[str] = (),
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "tags": list(tags)}
        if spec is not None:
            body["spec"] = dict(spec)
        if params is not None:
            body["params"] = dict(params)
        if dataset:
            body["dataset"] = dataset
        return dict(self._json("POST", "/api/v1/runs/external", json=body))

    def post_points(
        self,
        run_id: int,
        points: Sequence[Mapping[str, Any]],
        *,
        uid: str | None = None,
        train_begin: Mapping[str, Any] | None = None,
        events: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """Append {key, step, value, kind?, wall_time?} points and {kind, data, uid} events;
        the same uid again is a no-op. The points travel as columns (a server from before
        columns gets them one object each)."""
        body: dict[str, Any] = {}
        if uid:
            body["uid"] = uid
        if train_begin is not None:
            body["train_begin"] = dict(train_begin)
        if events:
            body["events"] = [dict(e) for e in events]
        path = f"/api/v1/runs/{int(run_id)}/points"
        if self._points_as_columns and points:
            try:
                return dict(
                    self._json("POST", path, json={**body, "columns": point_columns(points)})
                )
            except FitboardError as exc:
                if exc.status != 422 or not columns_unknown(
                    [(e.field, e.type) for e in exc.errors]
                ):
                    raise
                self._points_as_columns = False
        return dict(self._json("POST", path, json={**body, "points": [dict(p) for p in points]}))

    def post_evaluation(
        self,
        run_id: int,
        *,
        class_names: Sequence[str],
        confusion_matrix: Sequence[Sequence[int]],
        report: Mapping[str, Any] | None = None,
        split: str = "test",
    ) -> None:
        body: dict[str, Any] = {
            "split": split,
            "class_names": [str(c) for c in class_names],
            "confusion_matrix": [[int(v) for v in row] for row in confusion_matrix],
        }
        if report is not None:
            body["report"] = dict(report)
        self.request("POST", f"/api/v1/runs/{int(run_id)}/evaluation", json=body)

    def finish_run(
        self,
        run_id: int,
        status: str = "succeeded",
        *,
        reason: str | None = None,
        traceback: str | None = None,
    ) -> dict[str, Any]:
        body = {"status": status, "reason": reason, "traceback": traceback}
        return dict(
            self._json(
                "POST",
                f"/api/v1/runs/{int(run_id)}/finish",
                json={k: v for k, v in body.items() if v is not None},
            )
        )


def _parse_sse(lines: Iterator[str]) -> Iterator[Event]:
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in lines:
        if line == "":
            if "event" in fields and "id" in fields:
                try:
                    payload = json.loads("\n".join(data)) if data else {}
                except ValueError:
                    payload = {}
                yield Event(int(fields["id"]), fields["event"], payload)
            fields, data = {}, []
        elif line.startswith(":"):
            continue
        else:
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "data":
                data.append(value)
            else:
                fields[key] = value
