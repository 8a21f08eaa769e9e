"""Domain errors and validation errors to HTTP, in one place, with one error shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    RangeNotSatisfiable,
    Throttled,
    TooLarge,
    Unauthenticated,
)

_STATUS = {
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 422,
    TooLarge: 413,
    Unauthenticated: 401,
    Forbidden: 403,
    Throttled: 429,
    RangeNotSatisfiable: 416,
}


# the code of an error raised as an HTTPException (by routing or body parsing)
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    429: "too_many_requests",
}


class FieldError(BaseModel):
    field: str | None = Field(description="Where: 'spec.fit.epochs', a query parameter, ...")
    message: str
    type: str


class ErrorOut(BaseModel):
    """Every error response: a sentence, a machine-readable code and, for 422, the fields."""

    detail: str
    code: str = Field(
        description="not_found, conflict, invalid, validation_error, too_large, "
        "unauthenticated, forbidden, ..."
    )
    errors: list[FieldError] | None = Field(default=None, description="Set on 422 responses.")


_ERROR_DESCRIPTIONS = {
    400: "A body that cannot be parsed (a malformed multipart or form body)",
    401: "No identity, or an API token that is not valid",
    403: "Not allowed for this identity's role, or not the launcher of what it changes",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "Too large",
    416: "The Range starts past the end of the file; Content-Range says its size",
    422: "Invalid input; `errors` names each field",
    429: "Too many attempts; Retry-After says how many seconds to wait",
}


def error_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for these error statuses, all with the ErrorOut schema.

    A keyword like ``e404="No such run"`` overrides a description."""
    return {
        status: {
            "model": ErrorOut,
            "description": descriptions.get(f"e{status}", _ERROR_DESCRIPTIONS.get(status, "Error")),
        }
        for status in statuses
    }


def field_path(loc: Sequence[Any], prefix: Sequence[str] = ()) -> str:
    """('body', 'spec', 'model', 'layers', 2) -> 'spec.model.layers.2'."""
    parts = [str(p) for p in (*prefix, *loc)]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    # pydantic puts the union member / discriminator tag in the path; users never wrote it
    return ".".join(p for p in parts if not p.endswith("Spec") and p != "function-after")


def _item(error: Any, prefix: Sequence[str]) -> dict[str, Any]:
    if error["type"] == "json_invalid":  # its loc is ('body', <character position>)
        reason = (error.get("ctx") or {}).get("error") or error["msg"]
        return {
            "field": "body",
            "message": f"is not valid JSON ({reason} at character {error['loc'][-1]})",
            "type": "json_invalid",
        }
    return {
        # a whole body of the wrong type has the loc ('body',): name it
        "field": field_path(error["loc"], prefix) or ("body" if error["loc"] else None),
        "message": str(error["msg"]).removeprefix("Value error, "),
        "type": error["type"],
    }


def validation_body(errors: Sequence[Any], prefix: Sequence[str] = ()) -> dict[str, Any]:
    items = [_item(e, prefix) for e in errors]
    detail = "; ".join(f"{i['field'] or 'body'}: {i['message']}" for i in items)
    return {"detail": detail, "code": "validation_error", "errors": items}


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        status = next((s for t, s in _STATUS.items() if isinstance(exc, t)), 400)
        body: dict[str, Any] = {"detail": exc.detail, "code": exc.code}
        if isinstance(exc, InvalidInput):
            # the detail often starts with the field ("status: unknown ..."): the item says it once
            message = exc.detail
            if exc.field and message.startswith(f"{exc.field}: "):
                message = message[len(exc.field) + 2 :]
            body["errors"] = [{"field": exc.field, "message": message, "type": exc.code}]
        headers = {}
        if isinstance(exc, Throttled):
            headers["Retry-After"] = str(exc.retry_after_s)
        if isinstance(exc, RangeNotSatisfiable):
            headers["Content-Range"] = f"bytes */{exc.size}"
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        # routing (404, 405) and body parsing (400): the same shape as every other error
        if exc.status_code < 400 or exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=exc.headers)
        code = _HTTP_CODES.get(exc.status_code, "error")
        return JSONResponse(
            {"detail": str(exc.detail), "code": code},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_body(exc.errors()), status_code=422)

    @app.exception_handler(ValidationError)
    async def _spec(_: Request, exc: ValidationError) -> JSONResponse:
        # raised by services validating a spec they assembled (preset + overrides)
        return JSONResponse(validation_body(exc.errors(), prefix=("spec",)), status_code=422)
