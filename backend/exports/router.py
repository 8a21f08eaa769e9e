"""Downloads: a run's metric points as CSV or JSON, and the filtered runs history as CSV."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from backend.api.deps import SessionDep
from backend.api.errors import error_responses
from backend.bounds import Id
from backend.exports import service as exports
from backend.runs import service as runs
from backend.runs.filters import RunFiltersDep, RunSortDep
from backend.users.deps import ReaderUser

router = APIRouter(tags=["exports"])


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-cache"}


_POINTS_CSV = {
    200: {
        "description": "Header key,step,epoch,value,wall_time; then one row per point. epoch is "
        "1-based (empty for a batch point when steps per epoch is unknown); an empty value is "
        "NaN; +-1e300 stands for +-infinity. A text cell starting with = + - @, a tab or a CR "
        "is prefixed with ' so spreadsheets do not run it as a formula.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
    **error_responses(401, 404),
}
_POINTS_JSON = {
    200: {
        "description": '{"run_id", "columns", "points": [{key, step, epoch, value, wall_time}]}',
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    **error_responses(401, 404),
}
_RUNS_CSV = {
    200: {
        "description": "Every matching run (all pages), one row each, in the list's order; "
        "final metrics as metric:<key> columns; tags joined by ';'. A text cell starting with "
        "= + - @, a tab or a CR is prefixed with ' (no formulas in spreadsheets).",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
    **error_responses(401, 422),
}


@router.get(
    "/runs/{run_id}/metrics.csv",
    response_class=StreamingResponse,
    responses=_POINTS_CSV,  # type: ignore[arg-type]
)
def export_metrics_csv(run_id: Id, session: SessionDep, _: ReaderUser) -> StreamingResponse:
    """Every stored metric point of a run as CSV, streamed."""
    runs.get(session, run_id)
    return StreamingResponse(
        exports.points_csv(run_id),
        media_type="text/csv; charset=utf-8",
        headers=_attachment(f"run-{run_id}-metrics.csv"),
    )


@router.get(
    "/runs/{run_id}/metrics.json",
    response_class=StreamingResponse,
    responses=_POINTS_JSON,  # type: ignore[arg-type]
)
def export_metrics_json(run_id: Id, session: SessionDep, _: ReaderUser) -> StreamingResponse:
    """Every stored metric point of a run as one JSON document, streamed (NaN as null)."""
    runs.get(session, run_id)
    return StreamingResponse(
        exports.points_json(run_id),
        media_type="application/json",
        headers=_attachment(f"run-{run_id}-metrics.json"),
    )


@router.get(
    "/runs.csv",
    response_class=StreamingResponse,
    responses=_RUNS_CSV,  # type: ignore[arg-type]
)
def export_runs_csv(_: ReaderUser, filters: RunFiltersDep, sort: RunSortDep) -> StreamingResponse:
    """The runs history (same filters and sort as GET /api/v1/runs, every page) as CSV.

    Also ``param.<spec path>=<value>``, as on GET /api/v1/runs."""
    return StreamingResponse(
        exports.runs_csv(filters, sort),
        media_type="text/csv; charset=utf-8",
        headers=_attachment("runs.csv"),
    )
