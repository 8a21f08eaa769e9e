"""runs history: tags, notes, search text, and the indexes behind the runs page

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:00:00.000000

- runs.notes, and runs.dataset (copied from spec.dataset.name, backfilled here);
- run_tags (run_id, tag) with an index on (tag, run_id) for ?tag=;
- run_search (run_id, text): lower-cased name, tags and notes, what ?q= matches, kept apart
  from the wide runs rows; on PostgreSQL, when pg_trgm can be enabled, trigram-indexed;
- runs (created_at, id) for the default page, runs.dataset and runs.preset for their filters,
  and on PostgreSQL (lower(name), id) for sort by name;
- latest_metrics (key, value, run_id) where value is not null, for sorting by a final metric;
- on PostgreSQL runs.spec becomes JSONB, so sorting by a spec field does not re-parse each spec.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import DBAPIError

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TRIGRAM_INDEX = "ix_run_search_text_trgm"


def _enable_trigrams(bind: sa.Connection) -> bool:
    """pg_trgm is a trusted extension, but a server may lack it: search then just scans."""
    if bind.dialect.name != "postgresql":
        return False
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DBAPIError:
        return False
    return True


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notes", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("dataset", sa.String(length=100), nullable=True))
        batch_op.create_index("ix_runs_created_at_id", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_runs_dataset", ["dataset"], unique=False)
        batch_op.create_index("ix_runs_preset", ["preset"], unique=False)
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE runs ALTER COLUMN spec TYPE JSONB USING spec::jsonb")
        # PostgreSQL only: SQLite's batch mode cannot carry an expression index across a
        # table rebuild, and an embedded history is small enough to sort without it
        op.create_index("ix_runs_name_lower_id", "runs", [sa.text("lower(name)"), "id"])

    runs = sa.table(
        "runs",
        sa.column("id", BIG_ID),
        sa.column("name", sa.String()),
        sa.column("spec", sa.JSON()),
        sa.column("dataset", sa.String()),
    )
    op.execute(
        runs.update().values(
            dataset=sa.func.substr(runs.c.spec[("dataset", "name")].as_string(), 1, 100)
        )
    )

    op.create_table(
        "run_search",
        sa.Column("run_id", BIG_ID, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_search_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_run_search")),
    )
    search = sa.table("run_search", sa.column("run_id", BIG_ID), sa.column("text", sa.Text()))
    op.execute(
        search.insert().from_select(
            ["run_id", "text"], sa.select(runs.c.id, sa.func.lower(runs.c.name))
        )
    )

    op.create_table(
        "run_tags",
        sa.Column("run_id", BIG_ID, nullable=False),
        sa.Column("tag", sa.String(length=50), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_tags_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "tag", name=op.f("pk_run_tags")),
    )
    with op.batch_alter_table("run_tags", schema=None) as batch_op:
        batch_op.create_index("ix_run_tags_tag_run_id", ["tag", "run_id"], unique=False)

    with op.batch_alter_table("latest_metrics", schema=None) as batch_op:
        batch_op.create_index(
            "ix_latest_metrics_key_value_run_id",
            ["key", "value", "run_id"],
            unique=False,
            postgresql_where=sa.text("value IS NOT NULL"),
            sqlite_where=sa.text("value IS NOT NULL"),
        )

    if _enable_trigrams(bind):
        op.execute(f"CREATE INDEX {TRIGRAM_INDEX} ON run_search USING gin (text gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_runs_name_lower_id", table_name="runs")
        op.execute("ALTER TABLE runs ALTER COLUMN spec TYPE JSON USING spec::json")
    op.drop_table("run_search")  # its trigram index goes with it
    with op.batch_alter_table("latest_metrics", schema=None) as batch_op:
        batch_op.drop_index("ix_latest_metrics_key_value_run_id")
    with op.batch_alter_table("run_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_run_tags_tag_run_id")
    op.drop_table("run_tags")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_preset")
        batch_op.drop_index("ix_runs_dataset")
        batch_op.drop_index("ix_runs_created_at_id")
        batch_op.drop_column("dataset")
        batch_op.drop_column("notes")
