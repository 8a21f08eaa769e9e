"""worker hosts: each worker reports its host's resources (CPUs, memory, GPUs) and the runs it
trains on which GPUs; GET /api/v1/workers lists them

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 05:40:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "worker_hosts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("token_id", BIG_ID, nullable=True),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("resources", sa.JSON(), nullable=False),
        sa.Column("running", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_hosts")),
        sa.UniqueConstraint("name", name=op.f("uq_worker_hosts_name")),
    )


def downgrade() -> None:
    op.drop_table("worker_hosts")
