"""run priority: the queue's order (low | normal | high, and an admin's move to top); a sweep
gives its priority to its trials

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 07:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_VALID = "priority IN ('low', 'normal', 'high')"


def upgrade() -> None:
    # plain ADD COLUMNs on both databases (SQLite keeps the runs table and its AUTOINCREMENT;
    # it gets no CHECK here: the API validates the value, PostgreSQL enforces it too)
    for table in ("runs", "sweeps"):
        op.add_column(
            table,
            sa.Column("priority", sa.String(length=8), nullable=False, server_default="normal"),
        )
        if op.get_bind().dialect.name == "postgresql":
            op.create_check_constraint(op.f(f"ck_{table}_priority_valid"), table, _VALID)
    op.add_column("runs", sa.Column("moved_to_top_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("moved_to_top_at")
    for table in ("runs", "sweeps"):
        if op.get_bind().dialect.name == "postgresql":
            op.drop_constraint(f"ck_{table}_priority_valid", table, type_="check")
        with op.batch_alter_table(table) as batch:
            batch.drop_column("priority")
