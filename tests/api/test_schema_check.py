"""The service refuses a database that is not at the latest revision."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.db.migrate import SchemaOutOfDate, upgrade, verify_schema
from backend.db.session import make_engine


def test_empty_database_is_refused_with_make_migrate_hint(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(SchemaOutOfDate, match="make migrate"):
        verify_schema(engine)


def test_migrated_sqlite_database_is_accepted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    verify_schema(make_engine(url))
