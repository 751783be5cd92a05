"""Shared fixtures: a migrated database per test, on SQLite and (when configured) PostgreSQL.

``engine`` is parametrized over both backends, so every service test runs twice when
``KAPNOTES_TEST_POSTGRES_URL`` is set. With ``KAPNOTES_REQUIRE_E2E=1`` (CI) a skipped
test is reported as a failure: no tier may silently not run.
"""

from __future__ import annotations

import os
import shutil

import pytest

os.environ.setdefault("KAPNOTES_FAST_HASH", "1")  # Argon2id with a tiny cost: tests hash many passwords
os.environ.setdefault("KAPNOTES_APPTEST_SIGN_IN", "1")  # AppTest has no cookies: see kapnotes/ui/guard.py

from sqlalchemy import text  # noqa: E402
from sqlmodel import Session, SQLModel  # noqa: E402

from kapnotes.db import make_engine, migrate  # noqa: E402
from tests.factories import Clinic, make_clinic  # noqa: E402

REQUIRE_ALL = os.environ.get("KAPNOTES_REQUIRE_E2E") == "1"
PG_URL = os.environ.get("KAPNOTES_TEST_POSTGRES_URL")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped, but CI requires every tier to run: {report.longrepr}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_session_engine():
    if not PG_URL:
        pytest.skip("KAPNOTES_TEST_POSTGRES_URL is not set")
    migrate(PG_URL)
    engine = make_engine(PG_URL)
    yield engine
    engine.dispose()


def truncate_all(engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE TABLE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def db_url(backend, request, tmp_path, sqlite_template) -> str:
    """A migrated, empty database for this test."""
    if backend == "sqlite":
        path = tmp_path / "kapnotes.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    engine = request.getfixturevalue("pg_session_engine")
    truncate_all(engine)
    return PG_URL


@pytest.fixture
def engine(db_url, backend, request):
    if backend == "postgres":
        yield request.getfixturevalue("pg_session_engine")
        return
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine):
    with Session(engine, expire_on_commit=False) as s:
        yield s
        s.rollback()


@pytest.fixture
def clinic(engine) -> Clinic:
    return make_clinic(engine)


@pytest.fixture
def sqlite_url(tmp_path, sqlite_template) -> str:
    """SQLite only: for UI tests (AppTest), which run the pages in this process."""
    path = tmp_path / "ui.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"
