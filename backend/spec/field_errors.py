"""Validation errors at a field path, raised from a model validator.

pydantic keeps the locations of a ValidationError raised inside a validator (prefixed with the
validated model's own place), so the API's 422 names ``spec.fit.phases.1.unfreeze_last``
instead of only ``spec``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

Loc = tuple[str | int, ...]


def _detail(
    loc: Sequence[str | int], message: str, error_type: str, value: object
) -> InitErrorDetails:
    # the message goes in as context, so braces in it are never read as a template
    return InitErrorDetails(
        type=PydanticCustomError(error_type, "{message}", {"message": message}),
        loc=tuple(loc),
        input=value,
    )


def field_error(title: str, loc: Loc, message: str, *, value: object = None) -> ValidationError:
    """One ``value_error`` at loc (relative to the model whose validator raises it)."""
    return ValidationError.from_exception_data(title, [_detail(loc, message, "value_error", value)])


def nested_errors(title: str, prefix: Loc, exc: ValidationError) -> ValidationError:
    """exc's errors (their types and messages kept) moved under prefix."""
    details = [
        _detail((*prefix, *e["loc"]), str(e["msg"]), str(e["type"]), e.get("input"))
        for e in exc.errors()
    ]
    return ValidationError.from_exception_data(title, details)
