"""Alembic environment: the URL comes from Fitboard's settings unless the caller set one."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from backend.config import get_settings
from backend.db.session import make_engine
from backend.schema import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


# indexes that exist only in migrations (PostgreSQL extensions): autogenerate leaves them be
MIGRATION_ONLY_INDEXES = {"ix_run_search_text_trgm"}


def include_object(obj: object, name: str | None, type_: str, reflected: bool, _: object) -> bool:
    return not (type_ == "index" and reflected and name in MIGRATION_ONLY_INDEXES)


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().sqlalchemy_url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=_url().startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=include_object,
            render_as_batch=connection.dialect.name == "sqlite",
            # each revision commits on its own: a SQLite PRAGMA (foreign_keys=OFF before a
            # table is rebuilt) only takes effect outside a transaction
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
