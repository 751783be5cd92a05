"""Backups: a consistent copy, checked before it is kept, owner-only, audited, pruned by --keep."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import col, func, select

from kapnotes import backup
from kapnotes.db import make_engine, session_scope
from kapnotes.errors import KapError
from kapnotes.models import AuditEvent, Patient
from tests.factories import make_clinic
from tests.helpers.cli import kap
from tests.unit.tamper import unguarded

ROOT = Path(__file__).resolve().parents[2]


def _cli(db_url: str, *args: str) -> subprocess.CompletedProcess:
    return kap(db_url, *args)


@pytest.mark.slow
def test_backup_is_a_checked_private_copy_and_is_audited(engine, db_url, backend, clinic, tmp_path):
    with session_scope(engine) as s:
        patients = s.exec(select(func.count()).select_from(Patient)).one()
        events_before = s.exec(select(func.count()).select_from(AuditEvent)).one()
    out = tmp_path / "backups"
    done = _cli(db_url, "backup", "--out-dir", str(out))
    assert done.returncode == 0, done.stderr
    files = list(out.iterdir())
    assert len(files) == 1 and backup.NAME.match(files[0].name)
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600  # all patient data: owner only
    assert f"backup written: {files[0]}" in done.stdout
    if backend == "sqlite":
        assert "integrity check ok; audit chain intact" in done.stdout
        copy = sqlite3.connect(files[0])
        try:
            assert copy.execute("SELECT count(*) FROM patients").fetchone()[0] == patients
            assert copy.execute("SELECT count(*) FROM audit_events").fetchone()[0] == events_before
        finally:
            copy.close()
    else:
        listed = subprocess.run(["pg_restore", "--list", str(files[0])], capture_output=True, text=True, check=True)
        assert "TABLE DATA public patients" in listed.stdout
        assert "TABLE DATA public audit_events" in listed.stdout
    with session_scope(engine) as s:
        ev = s.exec(select(AuditEvent).where(AuditEvent.action == "backup.create")).one()
        assert ev.actor_username == "system" and ev.detail.startswith(
            f"engine={'sqlite' if backend == 'sqlite' else 'postgresql'};bytes=")
        assert str(tmp_path) not in ev.detail


def test_keep_deletes_only_older_kapnotes_backups(sqlite_url, tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    for stamp in ("20240101T000000Z", "20250101T000000Z", "20250601T120000Z"):
        (out / f"kapnotes-{stamp}.db").write_bytes(b"old")
    (out / "notes.txt").write_text("not ours")
    (out / "kapnotes-manual-copy.db").write_bytes(b"not ours either")
    report = backup.create_backup(sqlite_url, out, keep=2)
    names = sorted(p.name for p in out.iterdir())
    assert report.path.name in names and "kapnotes-20250601T120000Z.db" in names
    assert "kapnotes-20240101T000000Z.db" not in names and "kapnotes-20250101T000000Z.db" not in names
    assert "notes.txt" in names and "kapnotes-manual-copy.db" in names
    assert {p.name for p in report.removed} == {"kapnotes-20240101T000000Z.db", "kapnotes-20250101T000000Z.db"}
    with pytest.raises(KapError, match="at least 1"):
        backup.prune(out, 0)


def _tamper_third_event(engine) -> int:
    """Change the third audit event's detail behind the chain's back; returns its id."""
    with session_scope(engine) as s:
        victim = s.exec(select(AuditEvent.id).order_by(col(AuditEvent.id))).all()[2]
        unguarded(s, "UPDATE audit_events SET detail = 'tampered' WHERE id = :id", id=victim)
    return victim


def test_a_copy_whose_audit_chain_is_broken_is_not_kept(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    make_clinic(engine)
    victim = _tamper_third_event(engine)
    out = tmp_path / "b"
    with pytest.raises(KapError, match=f"broken at event {victim}"):
        backup.create_backup(sqlite_url, out)
    assert list(out.iterdir()) == []
    engine.dispose()


@pytest.mark.slow
def test_an_unusable_folder_is_a_plain_error(sqlite_url, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    done = _cli(sqlite_url, "backup", "--out-dir", str(blocker / "sub"))
    assert done.returncode == 1
    assert done.stderr.startswith("error: Cannot create the backup folder")


@pytest.mark.slow
def test_verify_backup_checks_a_file_without_changing_it(db_url, engine, backend, clinic, tmp_path):
    out = tmp_path / "b"
    assert _cli(db_url, "backup", "--out-dir", str(out)).returncode == 0
    [path] = list(out.iterdir())
    before = path.read_bytes()
    ok = _cli(db_url, "verify-backup", str(path))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"backup ok: {path}")
    assert path.read_bytes() == before  # checking never writes to the backup
    damaged = tmp_path / f"damaged{path.suffix}"
    damaged.write_bytes(before[: len(before) // 3])
    bad = _cli(db_url, "verify-backup", str(damaged))
    assert bad.returncode == 1 and bad.stderr.startswith("error: ")
    assert _cli(db_url, "verify-backup", str(tmp_path / "missing.db")).stderr.startswith("error: There is no backup")


def test_verify_backup_finds_a_tampered_audit_log_in_a_copy(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    make_clinic(engine)
    report = backup.create_backup(sqlite_url, tmp_path / "b")
    engine.dispose()
    copy = sqlite3.connect(report.path)
    victim = copy.execute("SELECT id FROM audit_events ORDER BY id LIMIT 1 OFFSET 3").fetchone()[0]
    copy.execute("DROP TRIGGER trg_audit_no_update")  # as the file's owner can
    copy.execute("UPDATE audit_events SET detail = 'tampered' WHERE id = ?", (victim,))
    copy.commit()
    copy.close()
    with pytest.raises(KapError, match=f"broken at event {victim}"):
        backup.verify_backup(report.path)


def _scratch_databases(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                                 {"p": backup.SCRATCH_PREFIX + "%"}).scalars())


def test_postgres_trial_restore_proves_the_dump_restores_and_leaves_no_scratch_database(pg_session_engine,
                                                                                         tmp_path):
    from tests.conftest import PG_URL, truncate_all

    truncate_all(pg_session_engine)
    make_clinic(pg_session_engine)
    with session_scope(pg_session_engine) as s:
        events = s.exec(select(func.count()).select_from(AuditEvent)).one()
    done = _cli(PG_URL, "backup", "--out-dir", str(tmp_path / "b"), "--trial-restore")
    assert done.returncode == 0, done.stderr
    assert "restored into a scratch database (then dropped); audit chain intact" in done.stdout
    assert f": {events} events, head " in done.stdout  # every event was restored and re-verified
    assert _scratch_databases(pg_session_engine) == []
    [dump] = list((tmp_path / "b").iterdir())
    again = _cli(PG_URL, "verify-backup", str(dump), "--trial-restore")
    assert again.returncode == 0, again.stderr
    assert "restored into a scratch database" in again.stdout and _scratch_databases(pg_session_engine) == []


def test_postgres_trial_restore_finds_a_broken_chain_keeps_nothing_and_drops_the_scratch(pg_session_engine,
                                                                                        tmp_path):
    from tests.conftest import PG_URL, truncate_all

    truncate_all(pg_session_engine)
    make_clinic(pg_session_engine)
    victim = _tamper_third_event(pg_session_engine)
    out = tmp_path / "b"
    with pytest.raises(KapError, match=f"broken at event {victim}.*Nothing was kept"):
        backup.create_backup(PG_URL, out, trial_restore=True)
    assert list(out.iterdir()) == [] and _scratch_databases(pg_session_engine) == []
    plain = backup.create_backup(PG_URL, out)  # without the trial, pg_restore --list cannot see it
    with pytest.raises(KapError, match=f"broken at event {victim}"):
        backup.verify_backup(plain.path, PG_URL)
    assert _scratch_databases(pg_session_engine) == []
    with pytest.raises(KapError, match="needs a PostgreSQL server URL"):
        backup.verify_backup(plain.path, "sqlite:///elsewhere.db")
