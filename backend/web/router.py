"""The dashboard's pages and static files; plotly.js comes from the installed plotly package."""

from __future__ import annotations

from pathlib import Path

import plotly
from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

router = APIRouter(include_in_schema=False)


def _page(name: str) -> FileResponse:
    return FileResponse(
        FRONTEND / name, media_type="text/html", headers={"Cache-Control": "no-cache"}
    )


@router.get("/")
def runs_page() -> FileResponse:
    return _page("index.html")


@router.get("/new")
def new_run_page() -> FileResponse:
    return _page("new.html")


@router.get("/runs/{run_id}")
def run_page(run_id: int) -> FileResponse:
    return _page("run.html")


@router.get("/compare")
def compare_page() -> FileResponse:
    return _page("compare.html")


@router.get("/datasets")
def datasets_page() -> FileResponse:
    return _page("datasets.html")


@router.get("/static/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    return FileResponse(
        PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"}
    )


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=FRONTEND / "static", check_dir=False), name="static")
