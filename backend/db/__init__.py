"""Database layer: declarative base, engine and the one place that owns a session."""

from backend.db.base import Base
from backend.db.session import get_engine, session_scope

__all__ = ["Base", "get_engine", "session_scope"]
