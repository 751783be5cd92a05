"""Backups an admin can schedule and trust: a consistent copy, checked before it is kept.

SQLite: SQLite's online backup API copies a consistent snapshot while the app keeps
running (WAL readers and writers are not blocked for long); the copy is then opened on its
own and must pass ``PRAGMA integrity_check`` and the audit chain's verification.
PostgreSQL: ``pg_dump --format=custom`` (the server's own tool; a dump is a consistent
snapshot), then ``pg_restore --list`` must read it back; with a trial restore the dump is
restored into a scratch database on the server, its audit chain verified there, and the
scratch database dropped (the only check that proves the dump restores).

Every backup file holds all patient data: it is created readable by its owner only (0600),
and its creation is an audit event (counts only, never a path or a name).
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from kapnotes import audit
from kapnotes.db import make_engine, session_scope
from kapnotes.errors import KapError
from kapnotes.notes.hashing import default_key_path
from kapnotes.timeutil import utcnow

SCRATCH_PREFIX = "kapnotes_restore_check_"
NAME = re.compile(r"^kapnotes-(\d{8}T\d{6}Z)\.(db|dump)$")


@dataclass(frozen=True)
class BackupReport:
    path: Path
    bytes: int
    engine: str  # "sqlite" | "postgresql"
    check: str  # what was verified, in words
    audit_events: int | None = None
    audit_head: str | None = None
    removed: tuple[Path, ...] = ()
    anchor_file: Path | None = None  # where the chain head was appended (KAPNOTES_AUDIT_ANCHOR_FILE)
    signing_key: Path | None = None  # NOT in the backup: it must be kept apart


def backup_name(now: datetime, suffix: str) -> str:
    return f"kapnotes-{now.strftime('%Y%m%dT%H%M%SZ')}.{suffix}"


def _private_file(path: Path) -> None:
    """Create ``path`` empty and readable by its owner only, before any data goes in."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)


def _out_dir(out_dir: Path) -> Path:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KapError(f"Cannot create the backup folder {out_dir}: {exc.strerror}.") from None
    if not os.access(out_dir, os.W_OK):
        raise KapError(f"The backup folder {out_dir} is not writable.")
    return out_dir


def _sqlite_backup(url: str, target: Path) -> tuple[str, int, str]:
    source_path = make_url(url).database
    if not source_path or source_path == ":memory:" or not Path(source_path).exists():
        raise KapError(f"There is no SQLite database file at {source_path!r} to back up.")
    _private_file(target)
    src = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst, pages=1024)  # in steps, so writers are not held up by a large copy
        dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
    finally:
        dst.close()
        src.close()
    try:
        return check_sqlite_copy(target)
    except KapError as exc:
        target.unlink(missing_ok=True)
        raise KapError(f"{exc} Nothing was kept; run `verify-audit` on the live database.") from None


def _intact_chain(engine, where: str):
    """Verify the audit chain of the database behind ``engine`` (then disposed), or raise."""
    try:
        with Session(engine) as s:
            report = audit.verify_chain(s)
    finally:
        engine.dispose()
    if not report.ok:
        raise KapError(f"The audit chain {where} is broken at event {report.first_bad_id} ({report.problem}).")
    return report


def check_sqlite_copy(path: Path) -> tuple[str, int, str]:
    """A SQLite backup file must pass ``PRAGMA integrity_check`` and hold an intact audit
    chain. Opened read-only: checking never changes the file."""
    try:
        check = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = check.execute("PRAGMA integrity_check").fetchone()[0]
            tables = {r[0] for r in check.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            check.close()
    except sqlite3.DatabaseError as exc:
        raise KapError(f"{path.name} is not a readable SQLite database ({exc}).") from None
    if result != "ok":
        raise KapError(f"{path.name} failed SQLite's integrity check ({result}).")
    if not {"audit_events", "patients", "alembic_version"} <= tables:
        raise KapError(f"{path.name} is not a KAPNotes database (its tables are missing).")
    # a plain read-only connection (not make_engine: its hooks switch to WAL and BEGIN IMMEDIATE)
    report = _intact_chain(create_engine("sqlite://", creator=lambda: sqlite3.connect(f"file:{path}?mode=ro",
                                                                                      uri=True)),
                           f"in {path.name}")
    return "SQLite integrity check ok; audit chain intact", report.count, report.head_hash


def check_pg_dump(path: Path) -> tuple[str, None, None]:
    """A PostgreSQL dump must be readable by ``pg_restore --list`` and hold table data."""
    pg_restore = shutil.which("pg_restore")
    if not pg_restore:
        raise KapError("pg_restore is needed to check a PostgreSQL dump (Debian: apt-get install postgresql-client).")
    listed = subprocess.run([pg_restore, "--list", str(path)], capture_output=True, text=True, check=False)
    entries = [line for line in listed.stdout.splitlines() if line and not line.startswith(";")]
    if listed.returncode != 0 or not any(" TABLE DATA public audit_events " in line for line in entries):
        raise KapError(f"{path.name} could not be read back with pg_restore --list (or holds no audit log).")
    return f"pg_restore reads the dump ({len(entries)} entries)", None, None


def trial_restore_pg(path: Path, server_url: str) -> tuple[str, int, str]:
    """Restore a dump into a new scratch database on ``server_url``'s server, verify the audit
    chain there, and drop the scratch database whatever happened. Needs CREATEDB."""
    pg_restore = shutil.which("pg_restore")
    if not pg_restore:
        raise KapError("pg_restore is needed to restore a PostgreSQL dump (Debian: apt-get install postgresql-client).")
    server = make_url(server_url)
    if server.get_backend_name() != "postgresql":
        raise KapError("A trial restore of a PostgreSQL dump needs a PostgreSQL server URL.")
    scratch = f"{SCRATCH_PREFIX}{utcnow():%Y%m%d%H%M%S}_{os.getpid()}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{scratch}"')
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise KapError(f"A trial restore needs a scratch database on the server, which could not be created "
                           f"({reason}); the role needs CREATEDB.") from None
        scratch_url = server.set(database=scratch)
        done = subprocess.run([pg_restore, "--no-owner", "--exit-on-error", "--dbname",
                               _libpq_url(scratch_url.render_as_string(hide_password=False)), str(path)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output"
            raise KapError(f"{path.name} could not be restored ({last}).")
        report = _intact_chain(create_engine(scratch_url), f"restored from {path.name}")
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        admin.dispose()
    return "restored into a scratch database (then dropped); audit chain intact", report.count, report.head_hash


def verify_backup(path: Path, trial_restore_url: str | None = None) -> tuple[str, int | None, str | None]:
    """Check a backup file (``.db``: SQLite; ``.dump``: PostgreSQL) without changing it or the
    clinic's database; a dump is restored on ``trial_restore_url``'s server when given."""
    path = Path(path)
    if not path.is_file():
        raise KapError(f"There is no backup file at {path}.")
    if path.suffix == ".dump":
        listed = check_pg_dump(path)
        return trial_restore_pg(path, trial_restore_url) if trial_restore_url else listed
    return check_sqlite_copy(path)


def _libpq_url(url: str) -> str:
    """postgresql+psycopg://... → postgresql://... (what pg_dump understands)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_backup(url: str, target: Path, trial_restore: bool = False) -> tuple[str, int | None, str | None]:
    pg_dump = shutil.which("pg_dump")
    if not pg_dump:
        raise KapError("pg_dump is needed to back up PostgreSQL (Debian: apt-get install postgresql-client, "
                       "the same major version as the server).")
    _private_file(target)
    done = subprocess.run([pg_dump, "--format=custom", "--no-owner", "--file", str(target), _libpq_url(url)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        target.unlink(missing_ok=True)
        raise KapError("pg_dump failed: "
                       + (done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output"))
    try:
        listed = check_pg_dump(target)
        return trial_restore_pg(target, url) if trial_restore else listed
    except KapError as exc:
        target.unlink(missing_ok=True)
        raise KapError(f"{exc} Nothing was kept.") from None


def prune(out_dir: Path, keep: int) -> tuple[Path, ...]:
    """Delete all but the ``keep`` newest KAPNotes backups in ``out_dir`` (other files untouched)."""
    if keep < 1:
        raise KapError("--keep must be at least 1.")
    ours = sorted((p for p in out_dir.iterdir() if p.is_file() and NAME.match(p.name)),
                  key=lambda p: NAME.match(p.name).group(1), reverse=True)
    removed = tuple(ours[keep:])
    for path in removed:
        path.unlink()
    return removed


def create_backup(url: str, out_dir: Path, keep: int | None = None, trial_restore: bool = False) -> BackupReport:
    """Write a checked backup of the database at ``url`` into ``out_dir`` and audit it.

    ``trial_restore``: PostgreSQL dumps are also restored into a scratch database on the same
    server and checked there (a SQLite copy is always opened and checked as a database)."""
    out_dir = _out_dir(Path(out_dir))
    backend = make_url(url).get_backend_name()
    now = utcnow()
    suffix = "db" if backend == "sqlite" else "dump"
    target = out_dir / backup_name(now, suffix)
    if target.exists():
        raise KapError(f"{target} already exists; run the backup again in a second.")
    if backend == "sqlite":
        check, events, head = _sqlite_backup(url, target)
    elif backend == "postgresql":
        check, events, head = _pg_backup(url, target, trial_restore)
    else:
        raise KapError(f"Backups support SQLite and PostgreSQL, not {backend}.")
    size = target.stat().st_size
    engine = make_engine(url)
    anchor_file = audit.anchor_path_from_env()
    try:
        with session_scope(engine) as s:
            audit.record(s, None, "backup.create", "database", None, None, detail=f"engine={backend};bytes={size}",
                         actor_username="system")
        if anchor_file is not None:  # the head, including this backup's own event, kept outside the database
            with session_scope(engine, write=False) as s:
                audit.write_anchor(s, anchor_file)
    finally:
        engine.dispose()
    removed = prune(out_dir, keep) if keep is not None else ()
    return BackupReport(target, size, backend, check, events, head, removed, anchor_file, default_key_path(url))
