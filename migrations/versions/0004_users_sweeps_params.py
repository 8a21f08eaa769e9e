"""users, API tokens, sessions, sweeps, flattened run params, per-epoch evaluations

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 19:02:34.997216

- users / api_tokens / user_sessions: team access (roles admin, member, viewer).
- sweeps, and on runs: sweep_id, trial_number, trial_params; status may be 'pruned'.
- runs.launched_by_id (who launched it) and runs.source (worker or external).
- run_params: one row per flattened spec value, so the history sorts by a parameter
  through an index.
- epoch_evaluations: confusion matrix and report per epoch where the spec asks for it.
- metric_rollups: a pre-aggregated level under long metric series (filled on read).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_OLD_STATUSES = "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')"
_NEW_STATUSES = "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'pruned')"


def upgrade() -> None:
    op.create_table('users',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=200), server_default='', nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('is_active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('admin', 'member', 'viewer')", name=op.f('ck_users_role_valid')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('api_tokens',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('user_id', BIG_ID, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index('ix_api_tokens_user_id', ['user_id'], unique=False)

    op.create_table('sweeps',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('preset', sa.String(length=100), nullable=True),
    sa.Column('base_spec', sa.JSON(), nullable=False),
    sa.Column('space', sa.JSON(), nullable=False),
    sa.Column('strategy', sa.String(length=16), nullable=False),
    sa.Column('objective', sa.String(length=100), nullable=False),
    sa.Column('direction', sa.String(length=16), nullable=False),
    sa.Column('max_trials', sa.Integer(), nullable=False),
    sa.Column('max_concurrent', sa.Integer(), nullable=False),
    sa.Column('pruner', sa.JSON(), nullable=True),
    sa.Column('seed', sa.Integer(), nullable=True),
    sa.Column('launched_by_id', BIG_ID, nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('params_indexed', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.CheckConstraint("direction IN ('minimize', 'maximize')", name=op.f('ck_sweeps_direction_valid')),
    sa.CheckConstraint("status IN ('running', 'finished', 'cancelled')", name=op.f('ck_sweeps_status_valid')),
    sa.CheckConstraint("strategy IN ('grid', 'random', 'bayesian')", name=op.f('ck_sweeps_strategy_valid')),
    sa.ForeignKeyConstraint(['launched_by_id'], ['users.id'], name=op.f('fk_sweeps_launched_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sweeps'))
    )
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.create_index('ix_sweeps_created_at_id', ['created_at', 'id'], unique=False)

    op.create_table('user_sessions',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', BIG_ID, nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id_hash', name=op.f('pk_user_sessions'))
    )
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_user_sessions_user_id', ['user_id'], unique=False)

    op.create_table('epoch_evaluations',
    sa.Column('run_id', BIG_ID, nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('split', sa.String(length=32), nullable=False),
    sa.Column('class_names', sa.JSON(), nullable=False),
    sa.Column('confusion_matrix', sa.JSON(), nullable=False),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_epoch_evaluations_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'epoch', name=op.f('pk_epoch_evaluations'))
    )
    op.create_table('metric_rollups',
    sa.Column('run_id', BIG_ID, nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('n_values', sa.Integer(), nullable=False),
    sa.Column('total', sa.Float(), nullable=True),
    sa.Column('low', sa.Float(), nullable=True),
    sa.Column('high', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(
        ['run_id'], ['runs.id'], name=op.f('fk_metric_rollups_run_id_runs'), ondelete='CASCADE'
    ),
    sa.PrimaryKeyConstraint('run_id', 'key', 'bucket', name=op.f('pk_metric_rollups'))
    )
    op.create_table('run_params',
    sa.Column('run_id', BIG_ID, nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('num_value', sa.Double(), nullable=True),
    sa.Column('text_value', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_run_params_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'key', name=op.f('pk_run_params'))
    )
    with op.batch_alter_table('run_params', schema=None) as batch_op:
        batch_op.create_index('ix_run_params_key_num_value_run_id', ['key', 'num_value', 'run_id'], unique=False)
        batch_op.create_index('ix_run_params_key_text_value_run_id', ['key', 'text_value', 'run_id'], unique=False)

    # SQLite: the batch below copies runs and drops the old table; with foreign keys on, that
    # drop would delete every row that refers to a run (tags, metrics, events, ...)
    sqlite = op.get_bind().dialect.name == 'sqlite'
    if sqlite:
        op.execute('PRAGMA foreign_keys=OFF')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('launched_by_id', BIG_ID, nullable=True))
        batch_op.add_column(sa.Column('source', sa.String(length=16), server_default='worker', nullable=False))
        batch_op.add_column(sa.Column('sweep_id', BIG_ID, nullable=True))
        batch_op.add_column(sa.Column('trial_number', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('trial_params', sa.JSON(), nullable=True))
        batch_op.create_index('ix_runs_launched_by_id_id', ['launched_by_id', 'id'], unique=False)
        batch_op.create_index('ix_runs_sweep_id_id', ['sweep_id', 'id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_runs_sweep_id_sweeps'), 'sweeps', ['sweep_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_runs_launched_by_id_users'), 'users', ['launched_by_id'], ['id'], ondelete='SET NULL')
        batch_op.drop_constraint(batch_op.f('ck_runs_status_valid'), type_='check')
        batch_op.create_check_constraint('status_valid', _NEW_STATUSES)
    if sqlite:
        op.execute('PRAGMA foreign_keys=ON')
    _backfill_run_params()


def _backfill_run_params(batch_runs: int = 500) -> None:
    """Flatten the spec of every existing run into run_params, a batch of runs at a time."""
    from backend.runs.params import rows_for  # pure: the flattening the API uses on submit

    bind = op.get_bind()
    runs = sa.table('runs', sa.column('id', BIG_ID), sa.column('spec', sa.JSON()))
    params = sa.table(
        'run_params',
        sa.column('run_id', BIG_ID),
        sa.column('key', sa.String(200)),
        sa.column('num_value', sa.Double()),
        sa.column('text_value', sa.String(200)),
    )
    last_id = 0
    while True:
        chunk = bind.execute(
            sa.select(runs.c.id, runs.c.spec)
            .where(runs.c.id > last_id)
            .order_by(runs.c.id)
            .limit(batch_runs)
        ).all()
        if not chunk:
            break
        rows = [row for run_id, spec in chunk for row in rows_for(run_id, spec)]
        if rows:
            bind.execute(params.insert(), rows)
        last_id = chunk[-1][0]


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    if sqlite:  # as in upgrade (and before any write: a PRAGMA in a transaction does nothing)
        op.execute('PRAGMA foreign_keys=OFF')
    op.execute("UPDATE runs SET status = 'cancelled' WHERE status = 'pruned'")
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_runs_status_valid'), type_='check')
        batch_op.create_check_constraint('status_valid', _OLD_STATUSES)
        batch_op.drop_constraint(batch_op.f('fk_runs_launched_by_id_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_runs_sweep_id_sweeps'), type_='foreignkey')
        batch_op.drop_index('ix_runs_sweep_id_id')
        batch_op.drop_index('ix_runs_launched_by_id_id')
        batch_op.drop_column('trial_params')
        batch_op.drop_column('trial_number')
        batch_op.drop_column('sweep_id')
        batch_op.drop_column('source')
        batch_op.drop_column('launched_by_id')
    if sqlite:
        op.execute('PRAGMA foreign_keys=ON')

    with op.batch_alter_table('run_params', schema=None) as batch_op:
        batch_op.drop_index('ix_run_params_key_text_value_run_id')
        batch_op.drop_index('ix_run_params_key_num_value_run_id')

    op.drop_table('run_params')
    op.drop_table('metric_rollups')
    op.drop_table('epoch_evaluations')
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_user_sessions_user_id')

    op.drop_table('user_sessions')
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.drop_index('ix_sweeps_created_at_id')

    op.drop_table('sweeps')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_api_tokens_user_id')

    op.drop_table('api_tokens')
    op.drop_table('users')
