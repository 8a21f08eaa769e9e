"""run attempts and queues: a run whose worker or training process died is queued again as its
next attempt; the queue a run was sent to, so housekeeping can account for its message

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 02:40:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a plain ADD COLUMN on both databases (SQLite keeps the table, and its AUTOINCREMENT)
    op.add_column("runs", sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("runs", sa.Column("queue", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("queue")
        batch.drop_column("attempt")
