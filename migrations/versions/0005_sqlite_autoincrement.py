"""SQLite: runs, sweeps and datasets ids are never reused after a delete (AUTOINCREMENT)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 17:10:00

Without AUTOINCREMENT SQLite hands out max(id) + 1, so deleting the newest run gave its id
(and anything still keyed by it, like a training log) to the next one. PostgreSQL sequences
never reuse ids: there this revision does nothing.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("runs", "sweeps", "datasets")


def _foreign_keys_off() -> None:
    """The batch copies each table and drops the old one; with foreign keys on, that drop
    would delete every row referring to it (tags, metrics, events, trials)."""
    bind = op.get_bind()
    op.execute("PRAGMA foreign_keys=OFF")
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        # a PRAGMA inside an open transaction does nothing: refuse rather than cascade
        raise RuntimeError("0005 needs foreign keys off on SQLite; run it in its own transaction")


def _recreate(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _foreign_keys_off()
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass
    op.execute("PRAGMA foreign_keys=ON")


def upgrade() -> None:
    _recreate(autoincrement=True)


def downgrade() -> None:
    _recreate(autoincrement=False)
