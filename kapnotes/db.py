"""Engine, sessions and migrations.

SQLite is the embedded default, PostgreSQL the multi-user engine. Both get the same
schema from Alembic. SQLite connections get WAL, ``busy_timeout`` and foreign keys on
every connection. A unit of work that writes starts with ``BEGIN IMMEDIATE`` so that two
writers never interleave (the audit hash chain depends on a single writer at a time, and a
deferred transaction that read first could not take the write lock later without failing);
a read-only one (``session_scope(engine, write=False)``) starts with a deferred ``BEGIN``
and never takes the write lock, so it runs while another process writes (WAL readers see
the last committed state).

On PostgreSQL the schema belongs to an owner role (``init-db``) and the app connects as a
runtime role with data rights only (``grant_runtime_role``). Several app processes share one
PostgreSQL (issue 19), so each keeps a bounded pool (``KAPNOTES_DB_POOL_SIZE`` connections plus
``KAPNOTES_DB_MAX_OVERFLOW``; N processes need N × both below ``max_connections``) and may set a
``KAPNOTES_DB_STATEMENT_TIMEOUT_MS`` so one runaway query cannot hold a connection for ever. A
restarted PostgreSQL costs the requests in flight only: ``pool_pre_ping`` replaces dead connections.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, create_engine

from kapnotes.config import PROJECT_ROOT, get_settings

SQLITE_BUSY_TIMEOUT_MS = 15000


def _prepare_sqlite_path(url: str) -> None:
    parsed = make_url(url)
    database = parsed.database
    if database and database != ":memory:":
        path = Path(database)
        if not path.is_absolute():
            path = Path.cwd() / path
        path.parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str | None = None, **kwargs) -> Engine:
    url = url or get_settings().database_url
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        _prepare_sqlite_path(url)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )
        _install_sqlite_hooks(engine)
        return engine
    if "poolclass" not in kwargs:  # the app's pooled engine (migrations pass NullPool and no limits)
        kwargs = {**postgres_pool_options(), **kwargs}
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, "").strip() or default)
    except ValueError:
        raise ValueError(f"{name} must be a whole number") from None


def postgres_pool_options() -> dict:
    """Pool size, overflow and wait, and the statement timeout (0 = none), from the environment."""
    options: dict = {
        "pool_size": _env_int("KAPNOTES_DB_POOL_SIZE", 5),
        "max_overflow": _env_int("KAPNOTES_DB_MAX_OVERFLOW", 5),
        "pool_timeout": _env_int("KAPNOTES_DB_POOL_TIMEOUT", 30),
    }
    timeout_ms = _env_int("KAPNOTES_DB_STATEMENT_TIMEOUT_MS", 0)
    if timeout_ms > 0:
        options["connect_args"] = {"options": f"-c statement_timeout={timeout_ms}"}
    return options


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def shared_engine(url: str | None = None) -> Engine:
    """One engine (one pool) per database URL for the whole process: the server's routes use it."""
    url = url or get_settings().database_url
    found = _ENGINES.get(url)
    if found is None:
        with _ENGINES_LOCK:
            found = _ENGINES.get(url)
            if found is None:
                found = _ENGINES[url] = make_engine(url)
    return found


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised by every test
        # Let SQLAlchemy emit BEGIN itself (below) instead of the driver's implicit one.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        options = conn.get_execution_options()
        statement = "BEGIN IMMEDIATE" if options.get(_WRITE_OPTION, True) else "BEGIN"
        for _ in range(options.get(_EXTRA_ROUNDS_OPTION, 0)):  # batch work: more rounds of busy_timeout
            try:
                conn.connection.driver_connection.execute(statement)
                return
            except sqlite3.OperationalError as exc:
                if not _sqlite_busy_text(str(exc)):
                    raise
        conn.exec_driver_sql(statement)


_WRITE_OPTION = "kapnotes_write"
_EXTRA_ROUNDS_OPTION = "kapnotes_extra_busy_rounds"
BATCH_EXTRA_ROUNDS = 7  # a batch writer waits up to 8 × busy_timeout (2 minutes) for the write lock
_PG_BUSY = {"40P01", "55P03", "40001"}  # deadlock, lock not available, serialization failure


def _sqlite_busy_text(text: str) -> bool:
    text = text.lower()
    return "database is locked" in text or "database is busy" in text or "database table is locked" in text


def is_busy(exc: BaseException) -> bool:
    """A database error that means "another writer holds the lock; try again", not a fault."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) in _PG_BUSY:
        return True
    return _sqlite_busy_text(str(orig or exc))


_PG_CONNECTION_LOST = ("08", "57P01", "57P02", "57P03")  # connection exceptions; admin/crash shutdown, starting up


def is_connection_lost(exc: BaseException) -> bool:
    """A database error that means the connection went away (PostgreSQL restarted, the network
    dropped): the unit of work was rolled back, and ``pool_pre_ping`` gives the next one a fresh
    connection, so trying again shortly is the cure."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
    return state.startswith(_PG_CONNECTION_LOST)


def batch_writer(engine: Engine) -> Engine:
    """The same engine for batch work (a large import from the command line) whose SQLite write
    transactions wait several rounds of ``busy_timeout`` for the lock.

    SQLite's busy handler is not fair: a clinic's stream of short writes (every page read is
    audited) can keep one writer out past a single ``busy_timeout``, which would fail an import
    half-way through its chunks. A page gives up sooner and says so (``ui/busy.py``); a batch
    waits its turn."""
    return engine.execution_options(**{_EXTRA_ROUNDS_OPTION: BATCH_EXTRA_ROUNDS})


def is_sqlite(engine_or_session) -> bool:
    bind = engine_or_session.get_bind() if isinstance(engine_or_session, Session) else engine_or_session
    return bind.dialect.name == "sqlite"


def read_only(engine: Engine) -> Engine:
    """The same engine (pool, hooks) whose SQLite transactions begin deferred (no write lock)."""
    return engine.execution_options(**{_WRITE_OPTION: False})


@contextmanager
def session_scope(engine: Engine, write: bool = True) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error.

    ``write=False`` (SQLite): the transaction never takes the write lock, so it neither waits
    for a long writer nor holds one up; a write attempted in it may fail with "database is
    locked" instead of waiting, so use it only for work that writes nothing (no audit event).
    """
    session = Session(engine if write else read_only(engine), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def lock_for_append(session: Session, key: int) -> None:
    """Serialise appends to a chain (audit events, plan versions) across processes.

    SQLite already serialises writers with BEGIN IMMEDIATE; PostgreSQL takes a
    transaction-scoped advisory lock that is released at commit or rollback.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.exec(text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=key))


def grant_runtime_role(engine: Engine, role: str) -> None:
    """PostgreSQL, run as the schema's owner: let ``role`` run the app and nothing more.

    Data rights on every table and sequence, then audit events back to INSERT and SELECT
    (no UPDATE, DELETE or TRUNCATE). The runtime role owns nothing, so it can neither alter
    nor drop a table nor disable a trigger (both need ownership), and it gets no CREATE on
    the schema. Default privileges cover tables a later migration (run by the owner) adds.
    """
    import re

    if engine.dialect.name != "postgresql":
        raise ValueError("A runtime role is a PostgreSQL setting (SQLite relies on file permissions).")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", role):
        raise ValueError("Role names are letters, digits and underscores.")
    with engine.begin() as conn:
        owner = conn.exec_driver_sql("SELECT tableowner FROM pg_tables WHERE tablename = 'audit_events'").scalar()
        if owner == role:
            raise ValueError(f"{role} owns the tables; the runtime role must be a different role from the owner.")
        for stmt in (
            f'GRANT USAGE ON SCHEMA public TO "{role}"',
            f'REVOKE CREATE ON SCHEMA public FROM "{role}"',
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"',
            f'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO "{role}"',
            f'REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_events FROM "{role}"',
            f'REVOKE UPDATE, DELETE, TRUNCATE ON alembic_version FROM "{role}"',
            f'REVOKE INSERT ON alembic_version FROM "{role}"',
            f'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "{role}"',
            f'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO "{role}"',
        ):
            conn.exec_driver_sql(stmt)


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def migrate(url: str | None = None) -> None:
    """Apply pending Alembic migrations; running it twice is harmless."""
    from alembic import command

    url = url or get_settings().database_url
    if make_url(url).get_backend_name() == "sqlite":
        _prepare_sqlite_path(url)
    command.upgrade(alembic_config(url), "heads")


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
