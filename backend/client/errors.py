"""The one error the client raises: what the API (or the network) said, ready to print."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FieldError:
    field: str | None
    message: str
    type: str = ""


@dataclass
class FitboardError(Exception):
    """An API error ({"detail", "code", "errors"}), or a server that could not be reached.

    ``status`` is the HTTP status, None when no answer came (``code`` is then "unreachable").
    """

    detail: str
    status: int | None = None
    code: str = "error"
    errors: list[FieldError] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.detail)

    def __str__(self) -> str:
        return self.message()

    def message(self) -> str:
        """One line: the status, then each field error (or the detail)."""
        text = self.detail
        if self.errors:
            text = "; ".join(
                f"{e.field}: {e.message}" if e.field else e.message for e in self.errors
            )
        text = " ".join(text.split())  # one line
        return f"HTTP {self.status}: {text}" if self.status is not None else text

    @classmethod
    def from_body(cls, status: int, body: Any, fallback: str) -> FitboardError:
        if not isinstance(body, dict):
            return cls(detail=fallback or f"HTTP {status}", status=status)
        errors = [
            FieldError(
                field=e.get("field"), message=str(e.get("message", "")), type=e.get("type", "")
            )
            for e in body.get("errors") or []
            if isinstance(e, dict)
        ]
        detail = body.get("detail")
        if not isinstance(detail, str):  # FastAPI's own 404/405 bodies, or a list
            detail = str(detail) if detail is not None else fallback
        return cls(
            detail=detail, status=status, code=str(body.get("code") or "error"), errors=errors
        )
