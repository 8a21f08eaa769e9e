"""A slot that an entry point fills at start-up and a lower package reads: how packages low in
the layers (runs, sweeps, events) call into the ones above them without importing them.

``backend.lifecycle.install()`` fills every slot at once (the app factory, the tests, the
in-process benchmarks). Reading a slot before that raises :class:`HooksNotInstalled`: a run
that ended without telling its sweep or freeing its slot would be a silent bug.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class HooksNotInstalled(RuntimeError):
    """A process changed runs (or read their state) before lifecycle.install() was called."""


class Slot(Generic[T]):
    """One installed value (a tuple of hooks, a reader); ``what`` names it in the error."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._value: T | None = None

    def install(self, value: T) -> None:
        """Set it (again: replaces it, so installing twice is harmless)."""
        self._value = value

    def uninstall(self) -> None:
        """Empty it (tests of what happens before install())."""
        self._value = None

    def installed(self) -> bool:
        return self._value is not None

    def get(self) -> T:
        if self._value is None:
            raise HooksNotInstalled(
                f"{self.what} not installed: call backend.lifecycle.install() at start-up"
            )
        return self._value
