"""List and download a run's artifacts."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from backend.api.deps import SessionDep
from backend.artifacts import service as artifacts
from backend.artifacts.download import (
    DOWNLOAD_RESPONSES,
    IfRangeHeader,
    RangeHeader,
    artifact_response,
)
from backend.artifacts.store import get_store
from backend.bounds import Id
from backend.runs import service as runs
from backend.users.deps import ReaderUser

router = APIRouter(prefix="/runs/{run_id}/artifacts", tags=["artifacts"])


class ArtifactOut(BaseModel):
    name: str
    kind: str
    size_bytes: int
    created_at: datetime
    url: str


class ArtifactList(BaseModel):
    items: list[ArtifactOut]


@router.get("", response_model=ArtifactList)
def list_artifacts(
    run_id: Id, session: SessionDep, request: Request, _: ReaderUser
) -> ArtifactList:
    """The files a run produced (model, logs, plots), with their download URLs."""
    runs.get(session, run_id)
    return ArtifactList(
        items=[
            ArtifactOut(
                name=a.name,
                kind=a.kind,
                size_bytes=a.size_bytes,
                created_at=a.created_at,
                url=str(request.url_for("download_artifact", run_id=run_id, name=a.name).path),
            )
            for a in artifacts.list_for_run(session, run_id=run_id)
        ]
    )


@router.get("/{name}", response_class=Response, responses=DOWNLOAD_RESPONSES)
def download_artifact(
    run_id: Id,
    name: str,
    session: SessionDep,
    _: ReaderUser,
    range_header: RangeHeader = None,
    if_range: IfRangeHeader = None,
) -> Response:
    """Download one artifact of a run by name, whole or one byte range (Range: 206)."""
    artifact = artifacts.get(session, run_id=run_id, name=name)
    return artifact_response(
        get_store(), artifact, range_header=range_header, if_range=if_range, attachment=True
    )
