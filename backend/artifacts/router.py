"""List and download a run's artifacts."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel

from backend.api.deps import SessionDep
from backend.artifacts import service as artifacts
from backend.artifacts.store import get_store
from backend.errors import NotFound
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
    run_id: int, session: SessionDep, request: Request, _: ReaderUser
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


@router.get(
    "/{name}",
    response_class=FileResponse,
    response_model=None,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_artifact(
    run_id: int, name: str, session: SessionDep, _: ReaderUser
) -> FileResponse | StreamingResponse:
    """Download one artifact of a run by name."""
    artifact = artifacts.get(session, run_id=run_id, name=name)
    store = get_store()
    headers = {"Content-Disposition": f'attachment; filename="{artifact.name}"'}
    path = store.local_path(artifact.storage_key)
    if path is not None:
        if not path.exists():
            raise NotFound(f"artifact {name!r} of run {run_id} is missing from the store")
        return FileResponse(path, media_type="application/octet-stream", headers=headers)
    return StreamingResponse(
        store.open(artifact.storage_key), headers=headers, media_type="application/octet-stream"
    )
