"""API docs: /docs (Swagger UI) and /redoc served from the installed fastapi-offline package
(no CDN), and an OpenAPI document whose every operation lists its error responses.

Which errors a route can answer with follows from what it depends on, so it is derived once
here rather than repeated on every route: an identity dependency -> 401, a member or admin
one -> 403, an ``*_id`` path parameter -> 404, any parameter or body -> 422 (malformed JSON
included), a body -> 400 (one that cannot be parsed at all, like a broken multipart) and 413
(larger than the limit). Statuses that depend on the domain (409) are declared on the route
with ``responses=``. Every error
response carries the ErrorOut schema, the one shape the handlers in backend.api.errors send.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi import routing as fastapi_routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from backend.api.errors import _ERROR_DESCRIPTIONS, ErrorOut
from backend.api.headers import docs_policy
from backend.bounds import MAX_INT64
from backend.external.router import batch_sender
from backend.users import deps as auth
from backend.workers.deps import worker_token

STATIC_URL = "/static/api-docs"
ERROR_REF = "#/components/schemas/ErrorOut"
RETRY_AFTER = {
    "description": "Seconds to wait before trying again.",
    "schema": {"type": "integer", "minimum": 1},
}
CONTENT_RANGE_416 = {
    "description": "bytes */SIZE: the size of the whole file.",
    "schema": {"type": "string"},
}
# how a client says who it is: a Bearer API token, or the browser's session cookie, which
# must come with the session's CSRF token on anything that changes state
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearerToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "A personal API token (Account page, or POST /api/v1/auth/tokens).",
    },
    "workerToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "A worker token (python -m backend.users create-worker-token, or POST "
        "/api/v1/worker-tokens): opens the worker protocol only.",
    },
    "sessionCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": auth.SESSION_COOKIE,
        "description": "Set by POST /api/v1/auth/login.",
    },
    "csrfHeader": {
        "type": "apiKey",
        "in": "header",
        "name": auth.CSRF_HEADER,
        "description": "With the session cookie, on POST, PUT, PATCH and DELETE: the csrf_token "
        "that sign-in and /auth/me return.",
    },
}


def operation_id(route: APIRoute) -> str:
    """Stable operationIds for generated clients: the route function's name ('list_runs')."""
    return route.name


def _security(method: str) -> list[dict[str, list[str]]]:
    session: dict[str, list[str]] = {"sessionCookie": []}
    if method not in auth.SAFE_METHODS:
        session["csrfHeader"] = []
    return [{"bearerToken": []}, session]


def _assets() -> Path | None:
    try:
        import fastapi_offline
    except ImportError:  # without it the pages load the UI from FastAPI's default CDN
        return None
    return Path(fastapi_offline.__file__).parent / "static"


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _api_routes(app: FastAPI) -> Iterator[Any]:
    """Every APIRoute, with its effective path (FastAPI >= 0.16x nests included routers)."""
    iter_contexts = getattr(fastapi_routing, "iter_route_contexts", None)
    if iter_contexts is None:
        yield from (r for r in app.routes if isinstance(r, APIRoute))
        return
    for context in iter_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def error_codes(route: Any) -> set[int]:
    """The error statuses a route can answer with, from its dependencies and parameters."""
    calls = set(_calls(route.dependant))
    codes: set[int] = set()
    if calls & {auth.current_user, auth.require_member, auth.require_admin, worker_token}:
        codes.add(401)
    if batch_sender in calls:
        codes |= {401, 403}
    if calls & {auth.require_member, auth.require_admin}:
        codes.add(403)
    if any(p.name.endswith("_id") for p in route.dependant.path_params):
        codes.add(404)
    flat = route.dependant
    if flat.path_params or flat.query_params or flat.header_params or flat.body_params:
        codes.add(422)
    for sub in route.dependant.dependencies:  # parameters of dependencies (RemoteMonitor's)
        if sub.query_params or sub.body_params:
            codes.add(422)
    return codes


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
    }


def _integral_bounds(node: Any) -> None:
    """Integer bounds as integers: FastAPI's OpenAPI model holds them as floats, and
    float(2**63 - 1) rounds up to 2**63, a bound the database cannot hold."""
    if isinstance(node, list):
        for item in node:
            _integral_bounds(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "integer":
        for key in ("minimum", "maximum"):
            if isinstance(node.get(key), float):
                node[key] = max(-MAX_INT64, min(MAX_INT64, int(node[key])))
    for value in node.values():
        _integral_bounds(value)


def install_openapi(app: FastAPI) -> None:
    """app.openapi() with every operation's error responses, all in the ErrorOut shape."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(
            ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}").pop("$defs")
        )
        components["ErrorOut"] = ErrorOut.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components["ErrorOut"].pop("$defs", None)
        schema["components"]["securitySchemes"] = SECURITY_SCHEMES
        seen: dict[str, str] = {}
        for route in _api_routes(app):
            if not route.include_in_schema:
                continue
            item = schema["paths"].get(route.path_format, {})
            for method in route.methods:
                operation = item.get(method.lower())
                if operation is None:
                    continue
                where = f"{method} {route.path_format}"
                previous = seen.setdefault(operation["operationId"], where)
                if previous != where:  # generated clients need each name once
                    raise RuntimeError(
                        f"operationId {operation['operationId']!r} of {where} is also {previous}'s"
                    )
                responses = operation.setdefault("responses", {})
                codes = error_codes(route)
                # anonymous operations (health, sign-in) declare no security at all
                calls = set(_calls(route.dependant))
                if worker_token in calls:
                    operation["security"] = [{"workerToken": []}]
                elif batch_sender in calls:  # a member's script, or a worker's training process
                    operation["security"] = [*_security(method), {"workerToken": []}]
                else:
                    operation["security"] = _security(method) if 401 in codes else []
                if operation.get("requestBody") or operation.get("parameters"):
                    codes.add(422)  # also a body read by hand (uploads, RemoteMonitor's form)
                if operation.get("requestBody"):
                    codes.add(400)  # a body that cannot be parsed at all (malformed multipart)
                    codes.add(413)  # larger than FITBOARD_MAX_JSON_MB (uploads: MAX_UPLOAD_MB)
                for code in sorted(codes):
                    responses.setdefault(str(code), {"description": _ERROR_DESCRIPTIONS[code]})
                for code, response in responses.items():
                    if code[0] in "45":
                        description = response.get("description") or "Error"
                        if description == "Validation Error":
                            description = _ERROR_DESCRIPTIONS[422]
                        responses[code] = _error_response(description)
                if "429" in responses:
                    responses["429"]["headers"] = {"Retry-After": RETRY_AFTER}
                if "416" in responses:
                    responses["416"]["headers"] = {"Content-Range": CONTENT_RANGE_416}
        # FastAPI's own 422 body, replaced everywhere by ErrorOut above
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        _integral_bounds(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _with_policy(page: HTMLResponse) -> HTMLResponse:
    """The page with a CSP of its own: its inline bootstrap script by hash (see headers)."""
    page.headers["Content-Security-Policy"] = docs_policy(bytes(page.body).decode())
    return page


def mount(app: FastAPI) -> None:
    """Create the app with docs_url=None and redoc_url=None, then call this."""
    install_openapi(app)
    assets = _assets()
    openapi_url = app.openapi_url or "/openapi.json"
    if assets is not None:
        app.mount(STATIC_URL, StaticFiles(directory=assets), name="api-docs")
    local = assets is not None

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return _with_policy(_swagger_ui())

    def _swagger_ui() -> HTMLResponse:
        if not local:
            return get_swagger_ui_html(openapi_url=openapi_url, title=f"{app.title} API")
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_URL}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return _with_policy(_redoc())

    def _redoc() -> HTMLResponse:
        if not local:
            return get_redoc_html(openapi_url=openapi_url, title=f"{app.title} API")
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            redoc_js_url=f"{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )
