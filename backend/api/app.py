"""The FastAPI application: routers, error handlers, schema check and housekeeping."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI
from starlette.concurrency import run_in_threadpool

from backend import logs
from backend.api import docs, errors
from backend.artifacts.router import router as artifacts_router
from backend.config import get_settings
from backend.datasets.router import router as datasets_router
from backend.db.migrate import verify_schema
from backend.evaluation.router import router as evaluation_router
from backend.events.router import router as events_router
from backend.exports.router import router as exports_router
from backend.external.router import router as external_router
from backend.health.router import router as health_router
from backend.metrics.router import router as metrics_router
from backend.runlogs.router import router as runlogs_router
from backend.runs.router import router as runs_router
from backend.runs.sweeper import sweep_once
from backend.spec.router import router as spec_router
from backend.sweeps.router import router as sweeps_router
from backend.users.deps import check_auth_setting
from backend.users.router import auth_router, users_router
from backend.web import router as web

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 5.0


async def _sweep_forever() -> None:
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_S)
        try:
            await run_in_threadpool(sweep_once)
        except Exception:  # housekeeping must never take the API down
            log.exception("housekeeping failed; retrying in %ss", SWEEP_INTERVAL_S)


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    verify_schema()
    task = asyncio.create_task(_sweep_forever())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app() -> FastAPI:
    settings = get_settings()
    logs.configure(settings.log_level)
    check_auth_setting(settings)  # FITBOARD_AUTH=off only on a loopback host
    app = FastAPI(
        title="Fitboard",
        version="0.1.0",
        description="Launch and watch Keras training runs.",
        lifespan=lifespan,
        # served by docs.mount from a local copy of the UIs, not from a CDN
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    api = APIRouter(prefix="/api/v1")
    for router in (
        spec_router,
        external_router,  # before runs_router: POST /runs/external
        exports_router,
        runs_router,
        sweeps_router,
        datasets_router,
        metrics_router,
        events_router,
        evaluation_router,
        artifacts_router,
        runlogs_router,
        health_router,
        auth_router,
        users_router,
    ):
        api.include_router(router)
    app.include_router(api)
    docs.mount(app)  # before web.mount: its /static mount would shadow /static/api-docs
    web.mount(app)
    return app
