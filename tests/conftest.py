"""Shared fixtures: a migrated database per test, on SQLite and (when configured) PostgreSQL.

``engine`` is parametrized over both backends, so every service test runs twice when
``KAPNOTES_TEST_POSTGRES_URL`` is set (those runs carry the ``postgres`` marker). With
``KAPNOTES_REQUIRE_E2E=1`` (CI) a skipped test is reported as a failure: no tier may silently
not run.

Under pytest-xdist each worker has a database of its own: ``<db>_gw0``, ``<db>_gw1``… on the
server of ``KAPNOTES_TEST_POSTGRES_URL``, created empty when the worker starts (migrated on first
use) and dropped when it ends; ``PG_URL`` names the worker's database. SQLite tests copy one
migrated template file per worker.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

os.environ.setdefault("KAPNOTES_FAST_HASH", "1")  # Argon2id with a tiny cost: tests hash many passwords
os.environ.setdefault("KAPNOTES_APPTEST_SIGN_IN", "1")  # AppTest has no cookies: see kapnotes/ui/guard.py

from sqlalchemy import text  # noqa: E402
from sqlmodel import Session, SQLModel  # noqa: E402

from kapnotes.db import make_engine, migrate  # noqa: E402
from tests.factories import Clinic, make_clinic  # noqa: E402
from tests.helpers.rows import read_rows, write_rows  # noqa: E402

REQUIRE_ALL = os.environ.get("KAPNOTES_REQUIRE_E2E") == "1"
BASE_PG_URL = os.environ.get("KAPNOTES_TEST_POSTGRES_URL")
WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1… under pytest-xdist; None otherwise


def _worker_url(url: str | None) -> str | None:
    if not url or not WORKER:
        return url
    u = make_url(url)
    return u.set(database=f"{u.database}_{WORKER}").render_as_string(hide_password=False)


PG_URL = _worker_url(BASE_PG_URL)
# Tests that look at the whole PostgreSQL server (every database's name), not their own database:
# pytest-xdist runs each group on one worker, one after the other.
SERVER_WIDE = ("test_postgres_trial_restore",)


def _admin(sql: str) -> None:
    """Run one CREATE/DROP DATABASE on the server of KAPNOTES_TEST_POSTGRES_URL."""
    engine = create_engine(BASE_PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def pytest_sessionstart(session):
    if PG_URL and PG_URL != BASE_PG_URL:
        name = make_url(PG_URL).database
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # left by a killed run
        _admin(f'CREATE DATABASE "{name}"')


def pytest_sessionfinish(session, exitstatus):
    if PG_URL and PG_URL != BASE_PG_URL:
        _admin(f'DROP DATABASE IF EXISTS "{make_url(PG_URL).database}" WITH (FORCE)')


def _module_fixture_group(item) -> str | None:
    """The xdist group of a test that uses a module-scoped fixture of its own module (a seeded big
    clinic, a started server): the module and that fixture's parameters. Without it both workers
    would build the same fixture, each for its share of the module's tests."""
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    module_scoped = [name for name, fixturedefs in defs.items()
                     if fixturedefs and fixturedefs[-1].scope == "module"
                     and fixturedefs[-1].baseid == item.module.__name__.replace(".", "/") + ".py"]
    if not module_scoped:
        return None
    callspec = getattr(item, "callspec", None)
    params = [str(callspec.params[n]) for n in sorted(module_scoped) if callspec and n in callspec.params]
    return "-".join([item.module.__name__.rsplit(".", 1)[-1], *params])


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group markers
def pytest_collection_modifyitems(items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("backend") == "postgres":
            item.add_marker(pytest.mark.postgres)
        if item.name.startswith(SERVER_WIDE):
            item.add_marker(pytest.mark.xdist_group("postgres-server"))
        group = None if any(item.iter_markers("xdist_group")) else _module_fixture_group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_order(items):
    """The order pytest-xdist hands the tests out in (it keeps it, among work units of one size).

    Run last: pytest's own reordering by fixture would undo it (it had put every browser test together)."""
    # the groups are the long work units: handed out first, they do not leave one worker busy at
    # the end while the other waits
    grouped = [item for item in items if any(item.iter_markers("xdist_group"))]
    first = set(grouped)
    items[:] = grouped + _spread_browser_tests([item for item in items if item not in first])


def _spread_browser_tests(items: list) -> list:
    """The browser tests spaced evenly among the others. A browser test mostly waits (for its server,
    for Chromium); run side by side on both workers they left the CPUs half idle, run beside a unit
    test each they do not."""
    browser = [item for item in items if "tests/e2e/" in str(item.fspath)]
    rest = [item for item in items if "tests/e2e/" not in str(item.fspath)]
    if not browser or len(browser) > len(rest):
        return items
    step = len(rest) / len(browser)
    at = {int((k + 0.5) * step): item for k, item in enumerate(browser)}  # distinct: step >= 1
    spread: list = []
    for n, item in enumerate(rest):
        if n in at:
            spread.append(at[n])
        spread.append(item)
    return spread


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped, but CI requires every tier to run: {report.longrepr}"


@pytest.fixture(scope="session", autouse=True)
def streamlit_components_scanned_once():
    """Each new AppTest has Streamlit scan every installed package's metadata for v2 components
    (``scan_component_manifests``): about 0.2 s, two thirds of a typical AppTest test's time. The
    installed packages do not change during a run, so the first scan's answer serves them all."""
    from streamlit.components.v2 import manifest_scanner

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(manifest_scanner, "scan_component_manifests",
                   functools.cache(manifest_scanner.scan_component_manifests))
        yield


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
    """Empty every table (after a test that wrote many rows: TRUNCATE leaves no dead rows behind)."""
    names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE TABLE {names} RESTART IDENTITY CASCADE"))


def empty_all(engine) -> None:
    """Empty every table and restart every id sequence: each PostgreSQL test starts as on a new database.

    DELETE, not TRUNCATE: on the few rows a test writes, DELETE is about six times faster (TRUNCATE
    makes new files for every table and index, 70 ms a test). ``session_replication_role = replica``
    switches off the foreign-key and append-only triggers for this one transaction, so the order
    does not matter and the audit log can be emptied (the test user is the server's superuser)."""
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for table in SQLModel.metadata.sorted_tables:
            conn.execute(text(f'DELETE FROM "{table.name}"'))
        conn.execute(text(_RESTART_SEQUENCES))


_RESTART_SEQUENCES = """
DO $$ DECLARE s record; BEGIN
  FOR s IN SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema() LOOP
    EXECUTE format('ALTER SEQUENCE %I RESTART', s.sequencename);
  END LOOP;
END $$"""


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def sqlite_clinic_template(tmp_path_factory, sqlite_template) -> tuple[Path, Clinic]:
    """The small clinic of tests/factories.py, built once per worker on a migrated SQLite file:
    a test that takes ``clinic`` on SQLite starts on a copy (it is the same data make_clinic
    writes; building it for each test was a tenth of the unit tier's time)."""
    path = tmp_path_factory.mktemp("template") / "clinic.db"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    try:
        return path, make_clinic(engine)
    finally:
        engine.dispose()


@pytest.fixture
def db_url(backend, request, tmp_path, sqlite_template) -> str:
    """A migrated database for this test: empty, or (SQLite, when the test takes ``clinic``)
    holding the small clinic already."""
    if backend == "sqlite":
        path = tmp_path / "kapnotes.db"
        template = sqlite_template
        if "clinic" in request.fixturenames:
            template = request.getfixturevalue("sqlite_clinic_template")[0]
        shutil.copy(template, path)
        return f"sqlite:///{path}"
    engine = request.getfixturevalue("pg_session_engine")
    empty_all(engine)
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


@pytest.fixture(scope="session")
def pg_clinic_rows(pg_session_engine) -> tuple[dict[str, list[dict]], Clinic]:
    """The small clinic, built once per worker on PostgreSQL and kept as rows (as the SQLite template
    keeps it as a file): a test that takes ``clinic`` there starts from a copy of these rows."""
    empty_all(pg_session_engine)
    built = make_clinic(pg_session_engine)
    rows = read_rows(pg_session_engine)
    empty_all(pg_session_engine)
    return rows, built


@pytest.fixture
def clinic(engine, db_url, backend, request) -> Clinic:
    if backend == "sqlite" and engine.url.database == make_url(db_url).database:
        return request.getfixturevalue("sqlite_clinic_template")[1]  # db_url copied it
    if backend == "postgres" and engine is request.getfixturevalue("pg_session_engine"):
        rows, built = request.getfixturevalue("pg_clinic_rows")
        write_rows(engine, rows)  # db_url emptied the database
        return built
    return make_clinic(engine)


@pytest.fixture
def sqlite_url(tmp_path, sqlite_template) -> str:
    """SQLite only: for UI tests (AppTest), which run the pages in this process."""
    path = tmp_path / "ui.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"
