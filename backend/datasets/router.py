"""HTTP routes of uploaded datasets: upload (multipart, streamed and size-limited), list, delete."""

from __future__ import annotations

import shutil
from collections.abc import AsyncGenerator, AsyncIterator
from typing import IO, Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from backend.api.deps import SessionDep
from backend.audit import service as audit
from backend.bounds import Id
from backend.config import get_settings
from backend.datasets import service, store
from backend.datasets.schemas import DatasetList, DatasetOut, UploadForm
from backend.datasets.service import StagedUpload
from backend.datasets.validate import UploadInvalid
from backend.errors import TooLarge
from backend.runs import uploads as runs
from backend.users.deps import MemberUser, ReaderUser

router = APIRouter(prefix="/datasets", tags=["datasets"])

# room for the form's other fields and the multipart boundaries around the file
_FORM_OVERHEAD_BYTES = 64 * 1024
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "name", "kind"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        **UploadForm.model_json_schema()["properties"],
                    },
                }
            }
        },
    }
}


def _too_large(limit_mb: int) -> TooLarge:
    return TooLarge(
        f"the upload is larger than the limit of {limit_mb} MB (FITBOARD_MAX_UPLOAD_MB)"
    )


async def _limited(
    request: Request, limit_bytes: int, limit_mb: int
) -> AsyncGenerator[bytes, None]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit_bytes:
            raise _too_large(limit_mb)  # stops reading: the rest of the body is never taken
        yield chunk


def _copy(src: IO[bytes], dest: Any) -> int:
    with open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
        return int(out.tell())


async def staged_upload(request: Request) -> AsyncIterator[tuple[StagedUpload, UploadForm]]:
    """Stream the multipart body (refused past the size limit) into a staging folder."""
    limit_mb = get_settings().max_upload_mb
    limit = limit_mb * 2**20
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + _FORM_OVERHEAD_BYTES:
        raise _too_large(limit_mb)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UploadInvalid("send multipart/form-data with a file and its fields", field="file")
    parser = MultiPartParser(
        request.headers, _limited(request, limit + _FORM_OVERHEAD_BYTES, limit_mb), max_files=1
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise UploadInvalid(f"malformed multipart body: {exc.message}", field="file") from None
    folder = await run_in_threadpool(store.new_staging_dir)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise UploadInvalid("attach the data as the multipart field 'file'", field="file")
        fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
        try:
            options = UploadForm.model_validate(fields)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None
        path = folder / "upload.bin"
        size = await run_in_threadpool(_copy, upload.file, path)
        if size > limit:
            raise _too_large(limit_mb)
        await form.close()
        yield StagedUpload(folder, path, upload.filename or "", size), options
    finally:
        await form.close()
        # whatever the service did not move into place (everything, for a refused upload)
        await run_in_threadpool(shutil.rmtree, folder, True)


StagedDep = Annotated[tuple[StagedUpload, UploadForm], Depends(staged_upload)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetOut,
    openapi_extra=_UPLOAD_BODY,
    responses={413: {"description": "Over FITBOARD_MAX_UPLOAD_MB"}},
)
def upload_dataset(
    _: MemberUser,  # first: nobody streams a body in before they are known to be a member
    staged: StagedDep,
    session: SessionDep,
) -> DatasetOut:
    """Upload a CSV, NPZ or zip of image folders; it is checked before anything is stored."""
    upload, form = staged
    row = service.create(session, staged=upload, form=form)
    session.commit()
    return _out(row)


@router.get("", response_model=DatasetList)
def list_datasets(session: SessionDep, _: ReaderUser) -> DatasetList:
    """Uploaded datasets, newest first."""
    return DatasetList(items=[_out(row) for row in service.list_all(session)])


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: Id, session: SessionDep, _: ReaderUser) -> DatasetOut:
    """One uploaded dataset: its kind, shapes and classes."""
    return _out(service.get(session, dataset_id))


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(dataset_id: Id, request: Request, session: SessionDep, user: MemberUser) -> None:
    """Delete an upload and its files; 409 while a queued or running run uses it.

    Uploads record no owner: any member (or admin) may delete one."""
    name = service.get(session, dataset_id).name
    using = runs.active_runs_using(session, dataset_id=dataset_id)
    service.delete(session, dataset_id=dataset_id, used_by=using)
    audit.record(
        session,
        action=audit.Action.dataset_deleted,
        actor=user,
        target_type="dataset",
        target_id=dataset_id,
        target_name=name,
        address=audit.client_address(request),
    )


def _out(row: Any) -> DatasetOut:
    return DatasetOut(
        id=row.id,
        name=row.name,
        kind=row.kind,
        filename=row.filename,
        size_bytes=row.size_bytes,
        num_examples=row.num_examples,
        num_classes=len(row.class_names),
        class_names=row.class_names,
        input_shape=row.input_shape,
        options=row.options,
        created_at=row.created_at,
    )
