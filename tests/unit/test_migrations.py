"""Alembic migrations and the SQLModel models describe the same schema, on both backends."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlmodel import SQLModel

import kapnotes.models  # noqa: F401 - registers the tables
from kapnotes.db import alembic_config, current_revision, make_engine, migrate

# Differences autogenerate may report that are not real drift. None are expected today;
# list here (with the reason) anything a backend cannot represent.
IGNORED: set[tuple[str, str]] = set()


def _diffs(engine) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
        diffs = compare_metadata(ctx, SQLModel.metadata)
    return [d for d in diffs if not (isinstance(d, tuple) and (d[0], getattr(d[1], "name", "")) in IGNORED)]


def test_migrated_schema_matches_the_models(engine):
    """`engine` is migrated by the fixtures (SQLite copy of a migrated template / PostgreSQL)."""
    assert _diffs(engine) == []


def test_every_model_table_exists_after_migration(engine):
    tables = set(inspect(engine).get_table_names())
    assert {t.name for t in SQLModel.metadata.sorted_tables} <= tables
    assert "alembic_version" in tables


def test_migrations_have_one_head_chain_from_0001():
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    bases = script.get_bases()
    assert bases == ["0001"]
    for rev in script.walk_revisions():
        assert rev.module.__doc__, f"migration {rev.revision} needs a docstring saying what it does"


def test_upgrade_is_idempotent_and_downgrade_reverses(tmp_path):
    url = f"sqlite:///{tmp_path / 'mig.db'}"
    migrate(url)
    migrate(url)  # second run: nothing to do
    engine = make_engine(url)
    head = current_revision(engine)
    assert head is not None
    command.downgrade(alembic_config(url), "base")
    assert current_revision(engine) is None
    assert "users" not in inspect(engine).get_table_names()
    migrate(url)
    assert current_revision(engine) == head
    assert _diffs(engine) == []
    engine.dispose()


def test_postgres_downgrade_and_upgrade(pg_session_engine):
    """Skipped without KAPNOTES_TEST_POSTGRES_URL (a failure in CI, which sets it)."""
    from tests.conftest import PG_URL

    engine = pg_session_engine
    head = current_revision(engine)
    engine.dispose()  # no pooled connection may hold locks on the tables being dropped
    try:
        command.downgrade(alembic_config(PG_URL), "base")
        assert "patients" not in inspect(engine).get_table_names()
    finally:
        migrate(PG_URL)
    assert current_revision(engine) == head
    assert _diffs(engine) == []
