"""API docs: /docs (Swagger UI) and /redoc served from the installed fastapi-offline package
(no CDN), and an OpenAPI document whose every operation lists its error responses.

Which errors a route can answer with follows from what it depends on, so it is derived once
here rather than repeated on every route: an identity dependency -> 401, a member or admin
one -> 403, an ``*_id`` path parameter -> 404, any parameter or body -> 422. Statuses that
depend on the domain (409, 413) are declared on the route with ``responses=``. Every error
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
from backend.users import deps as auth

STATIC_URL = "/static/api-docs"
ERROR_REF = "#/components/schemas/ErrorOut"


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
    if calls & {auth.current_user, auth.require_member, auth.require_admin}:
        codes.add(401)
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
        for route in _api_routes(app):
            if not route.include_in_schema:
                continue
            item = schema["paths"].get(route.path_format, {})
            for method in route.methods:
                operation = item.get(method.lower())
                if operation is None:
                    continue
                responses = operation.setdefault("responses", {})
                codes = error_codes(route)
                if operation.get("requestBody") or operation.get("parameters"):
                    codes.add(422)  # also a body read by hand (uploads, RemoteMonitor's form)
                for code in sorted(codes):
                    responses.setdefault(str(code), {"description": _ERROR_DESCRIPTIONS[code]})
                for code, response in responses.items():
                    if code[0] in "45":
                        description = response.get("description") or "Error"
                        if description == "Validation Error":
                            description = _ERROR_DESCRIPTIONS[422]
                        responses[code] = _error_response(description)
        # FastAPI's own 422 body, replaced everywhere by ErrorOut above
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


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
        if not local:
            return get_redoc_html(openapi_url=openapi_url, title=f"{app.title} API")
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            redoc_js_url=f"{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )
