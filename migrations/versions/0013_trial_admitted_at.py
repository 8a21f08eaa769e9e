"""sweep trials go through the queue: runs.admitted_at stamps when a trial's sweep let it go
(its max_concurrent), after which the dispatcher orders and sends it like any run; an index on
runs (status, dispatched_at) for the dispatcher's counts of runs running or sent

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 09:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("admitted_at", sa.DateTime(timezone=True), nullable=True))
    # trials their sweep had already sent were let go then
    op.execute(
        "UPDATE runs SET admitted_at = dispatched_at "
        "WHERE sweep_id IS NOT NULL AND dispatched_at IS NOT NULL"
    )
    op.create_index("ix_runs_status_dispatched_at", "runs", ["status", "dispatched_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_status_dispatched_at", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("admitted_at")
