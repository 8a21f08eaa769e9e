"""Domain errors; backend.api.errors maps them to HTTP in one place."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    code = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class TooLarge(DomainError):
    """A request body over a configured size limit (413)."""

    code = "too_large"


class InvalidInput(DomainError):
    """Bad input that pydantic could not catch; ``field`` names where it is."""

    code = "invalid"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.field = field


class Unauthenticated(DomainError):
    """No identity, or one that is not valid (401)."""

    code = "unauthenticated"


class Forbidden(DomainError):
    """An identity whose role or ownership does not allow this (403)."""

    code = "forbidden"


class Throttled(DomainError):
    """Too many attempts: try again after ``retry_after_s`` seconds (429 with Retry-After)."""

    code = "throttled"

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class RangeNotSatisfiable(DomainError):
    """A Range that starts past the end of a ``size``-byte file (416 with Content-Range)."""

    code = "range_not_satisfiable"

    def __init__(self, detail: str, *, size: int) -> None:
        super().__init__(detail)
        self.size = size
