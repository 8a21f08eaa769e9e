"""A run whose model cannot be uploaded (the API away past every retry) keeps it: the run ends
succeeded with an artifact_error naming the file, the worker holds the file, and sends it once
the API is back (through the real worker protocol of the in-process API)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from backend.artifacts import service as artifacts
from backend.db.session import session_scope
from backend.events.models import RunEvent
from backend.runs import service as runs
from worker import port, unsent
from worker.http_port import HttpPort
from worker.trainer import train


def test_an_unsent_model_is_kept_and_sent_when_the_api_is_back(
    sqlite_url: str, make_run: Any, small_spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = make_run(sqlite_url, spec=small_spec(fit={"epochs": 1}))
    real_add = HttpPort.add_artifact

    def api_away_for_the_model(self: HttpPort, name: str, kind: str, path: Path, **kw: Any) -> int:
        if name == train.MODEL_ARTIFACT:
            raise port.Unreachable("PUT model.keras: ConnectError (a test)")
        return real_add(self, name, kind, path, **kw)

    monkeypatch.setattr(HttpPort, "add_artifact", api_away_for_the_model)
    assert train.run(run_id) == 0
    with session_scope() as session:
        assert runs.get(session, run_id).status == "succeeded"
        names = {a.name for a in artifacts.list_for_run(session, run_id=run_id)}
        errors = [
            e.data
            for e in session.scalars(
                select(RunEvent).where(RunEvent.run_id == run_id, RunEvent.kind == "artifact_error")
            )
        ]
    assert train.MODEL_ARTIFACT not in names
    assert [e["name"] for e in errors] == [train.MODEL_ARTIFACT]
    assert [(r, n) for r, n, _, _ in unsent.pending()] == [(run_id, train.MODEL_ARTIFACT)]

    monkeypatch.setattr(HttpPort, "add_artifact", real_add)  # the API is back
    assert unsent.send_pending() == 1
    with session_scope() as session:
        model = artifacts.get(session, run_id=run_id, name=train.MODEL_ARTIFACT)
        assert model.kind == "model" and model.size_bytes > 0
    assert unsent.pending() == [], "the worker's copy goes once the API has it"
