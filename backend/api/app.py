"""The FastAPI application: routers, error handlers, schema check and housekeeping."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI
from starlette.concurrency import run_in_threadpool

from backend import lifecycle, logs
from backend.api import docs, errors
from backend.api.guard import RequestGuard
from backend.api.headers import SecurityHeaders, content_security_policy
from backend.api.spec_router import router as spec_router
from backend.artifacts.router import router as artifacts_router
from backend.audit.router import router as audit_router
from backend.config import get_settings
from backend.datasets.router import router as datasets_router
from backend.db.migrate import verify_schema
from backend.evaluation.router import router as evaluation_router
from backend.events.router import router as events_router
from backend.exports.router import router as exports_router
from backend.external.router import router as external_router
from backend.health.prometheus import router as prometheus_router
from backend.health.router import router as health_router
from backend.housekeeping import sweep_once
from backend.metrics.router import router as metrics_router
from backend.notify import delivery as notify_delivery
from backend.notify.router import router as notify_router
from backend.runlogs.router import router as runlogs_router
from backend.runqueue.router import router as queue_router
from backend.runs.router import router as runs_router
from backend.sweeps.router import router as sweeps_router
from backend.users.deps import check_auth_setting
from backend.users.router import auth_router, users_router
from backend.web import router as web
from backend.workers.router import router as worker_router
from backend.workers.router import tokens_router as worker_tokens_router
from backend.workers.router import workers_router

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 2.0
NOTIFY_INTERVAL_S = 2.0  # a notification's first webhook attempt within seconds of the end


async def _sweep_forever() -> None:
    # heartbeats reach this process only from now on: silence before it proves nothing
    started = time.monotonic()
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_S)
        try:
            await run_in_threadpool(sweep_once, up_for_s=time.monotonic() - started)
        except Exception:  # housekeeping must never take the API down
            log.exception("housekeeping failed; retrying in %ss", SWEEP_INTERVAL_S)


async def _notify_forever() -> None:
    while True:
        await asyncio.sleep(NOTIFY_INTERVAL_S)
        try:
            await run_in_threadpool(notify_delivery.tick)
        except Exception:  # like housekeeping: never take the API down
            log.exception("notification delivery failed; retrying in %ss", NOTIFY_INTERVAL_S)


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    verify_schema()
    tasks = [asyncio.create_task(_sweep_forever()), asyncio.create_task(_notify_forever())]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def create_app() -> FastAPI:
    lifecycle.install()  # the run queue, sweeps and notifications hear of runs queued or ended
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
        generate_unique_id_function=docs.operation_id,
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
        audit_router,
        notify_router,
        worker_router,  # the worker protocol (worker tokens only)
        worker_tokens_router,
        workers_router,
        queue_router,
    ):
        api.include_router(router)
    app.include_router(api)
    app.include_router(prometheus_router)  # GET /metrics for Prometheus
    docs.mount(app)  # before web.mount: its /static mount would shadow /static/api-docs
    web.mount(app)
    # CSP, X-Frame-Options, nosniff, Referrer-Policy on every response
    policy = content_security_policy(style_hashes=web.plotly_style_hashes())
    # JSON bodies bounded (413) and free of NUL (422): never a 500 from the database
    app.add_middleware(RequestGuard)
    app.add_middleware(SecurityHeaders, policy=policy)
    return app
