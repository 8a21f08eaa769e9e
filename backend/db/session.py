"""Engine per process and the session context manager used outside HTTP requests."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from backend.config import get_settings

SCHEMA_MODULE = "backend.schema"  # imports every table (Base.metadata complete)

_engines: dict[tuple[int, str], Engine] = {}
_factories: dict[tuple[int, str], sessionmaker[Session]] = {}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=15000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def json_text(value: Any) -> str:
    """JSON columns' text: orjson (a metrics event holds every point of its batch, and the
    standard library takes ~1 us a point to write it); what orjson refuses (an integer past
    64 bits, a type it does not know) goes to json.dumps as before."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 15},
            json_serializer=json_text,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # a connect that hangs (network down, not refused) must not stall a writer for minutes
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        connect_args={"connect_timeout": 5},
        json_serializer=json_text,
    )


def get_engine(url: str | None = None) -> Engine:
    """The engine for this process; a forked child builds its own (never shared across fork)."""
    url = url or get_settings().sqlalchemy_url
    key = (os.getpid(), url)
    if key not in _engines:
        _engines[key] = make_engine(url)
    return _engines[key]


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    """This process' session factory for the engine, made once per process and URL as the
    engine is: a sessionmaker defines a Session subclass, too much work for every request."""
    url = url or get_settings().sqlalchemy_url
    key = (os.getpid(), url)
    factory = _factories.get(key)
    if factory is None:
        # every table is mapped before the first flush, whichever domains this process
        # imported: foreign keys (runs.launched_by_id -> users, runs.sweep_id -> sweeps)
        # resolve by name. Loaded by name: the database layer sits below every domain.
        importlib.import_module(SCHEMA_MODULE)
        factory = _factories[key] = sessionmaker(bind=get_engine(url), expire_on_commit=False)
    return factory


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """Commit on success, roll back on error, always close."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
