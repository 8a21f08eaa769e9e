"""Domain errors and validation errors to HTTP, in one place, with one error shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from backend.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
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
    400: "Bad request",
    401: "No identity, or an API token that is not valid",
    403: "Not allowed for this identity's role, or not the launcher of what it changes",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "Too large",
    422: "Invalid input; `errors` names each field",
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


def validation_body(errors: Sequence[Any], prefix: Sequence[str] = ()) -> dict[str, Any]:
    items = [
        {
            "field": field_path(e["loc"], prefix),
            "message": str(e["msg"]).removeprefix("Value error, "),
            "type": e["type"],
        }
        for e in errors
    ]
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
        return JSONResponse(body, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_body(exc.errors()), status_code=422)

    @app.exception_handler(ValidationError)
    async def _spec(_: Request, exc: ValidationError) -> JSONResponse:
        # raised by services validating a spec they assembled (preset + overrides)
        return JSONResponse(validation_body(exc.errors(), prefix=("spec",)), status_code=422)
