"""The migrations build exactly the schema the models describe, on both databases, and go back down."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from bot.db import migrate
from bot.db.engine import make_engine


def test_migrations_match_the_models_and_downgrade(database_url: str) -> None:
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, SQLModel.metadata) == []
        assert migrate.is_current(engine, database_url)
        from alembic import command

        command.downgrade(migrate.alembic_config(database_url), "base")
        assert migrate.current_revision(engine) is None
        migrate.upgrade(database_url)
        assert migrate.is_current(engine, database_url)
    finally:
        engine.dispose()
