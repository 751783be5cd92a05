"""The data layer: SQLite connection settings, transactions, DB-level guards (both backends)."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, select

from kapnotes import db_guards
from kapnotes.db import is_sqlite, lock_for_append, make_engine, session_scope
from kapnotes.models import Addendum, CareTeam, CareTeamMember, Patient, SessionNote
from tests.helpers.threads import run_threads

# --- SQLite connection settings ----------------------------------------------------------


def test_every_sqlite_connection_has_wal_foreign_keys_and_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'pragmas.db'}")
    try:
        # several pooled DBAPI connections at once, not just the first one
        conns = [engine.raw_connection() for _ in range(3)]
        for conn in conns:
            cur = conn.cursor()
            assert cur.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
            assert cur.execute("PRAGMA foreign_keys").fetchone()[0] == 1
            assert cur.execute("PRAGMA busy_timeout").fetchone()[0] > 0
            cur.close()
        for conn in conns:
            conn.close()
        with engine.connect() as conn:  # and through SQLAlchemy, inside a transaction
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_sqlite_database_directory_is_created(tmp_path):
    path = tmp_path / "a" / "b" / "kap.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    engine.dispose()
    assert path.exists()


def test_foreign_keys_are_enforced(session, clinic):
    session.add(CareTeamMember(team_id=99999, user_id=clinic.tina.id))
    with pytest.raises(sa_exc.IntegrityError):
        session.flush()


def test_sqlite_writers_do_not_lose_updates(tmp_path):
    """BEGIN IMMEDIATE: read-modify-write transactions on SQLite run one at a time."""
    from kapnotes.db import migrate

    url = f"sqlite:///{tmp_path / 'race.db'}"
    migrate(url)
    engine = make_engine(url)
    with session_scope(engine) as s:
        s.add(CareTeam(name="0"))

    def bump():
        for _ in range(10):
            with session_scope(engine) as s:
                team = s.exec(select(CareTeam)).one()
                team.name = str(int(team.name) + 1)
                s.add(team)

    run_threads(*[bump] * 4)
    with Session(engine) as s:
        assert s.exec(select(CareTeam)).one().name == "40"
    engine.dispose()


# --- transactions -----------------------------------------------------------------------


def test_session_scope_commits_and_rolls_back(engine):
    with session_scope(engine) as s:
        s.add(CareTeam(name="kept"))
    with pytest.raises(RuntimeError):
        with session_scope(engine) as s:
            s.add(CareTeam(name="dropped"))
            s.flush()
            raise RuntimeError("boom")
    with Session(engine) as s:
        assert [t.name for t in s.exec(select(CareTeam)).all()] == ["kept"]


def test_lock_for_append_runs_on_both_backends(session, backend):
    lock_for_append(session, 12345)
    lock_for_append(session, 12345)  # re-entrant within a transaction
    assert is_sqlite(session) is (backend == "sqlite")


def test_utc_datetimes_round_trip_and_naive_ones_are_refused(session, clinic):
    moment = datetime(2026, 6, 1, 12, 30, 15, 123456, tzinfo=timezone.utc)
    team = CareTeam(name="tz", created_at=moment)
    session.add(team)
    session.flush()
    session.expire_all()
    back = session.get(CareTeam, team.id).created_at
    assert back == moment and back.tzinfo is not None
    session.add(CareTeam(name="naive", created_at=datetime(2026, 6, 1, 12, 0)))
    with pytest.raises(sa_exc.StatementError, match="naive"):
        session.flush()


def test_optimistic_locking_refuses_a_stale_write(engine, clinic):
    with Session(engine, expire_on_commit=False) as first, Session(engine, expire_on_commit=False) as second:
        p1 = first.get(Patient, clinic.a1)
        first.commit()
        p2 = second.get(Patient, clinic.a1)
        p2.status = "paused"
        second.add(p2)
        second.commit()
        p1.status = "discharged"  # first still holds version 1
        first.add(p1)
        with pytest.raises(StaleDataError):
            first.commit()
    with Session(engine) as s:
        assert s.get(Patient, clinic.a1).status == "paused"


# --- signed notes and addenda are immutable in the database itself ---------------------------


def _signed_note(engine, clinic) -> int:
    with session_scope(engine) as s:
        note = SessionNote(patient_id=clinic.a1, author_id=clinic.tina.id, note_type="integration",
                           session_date=date(2026, 3, 1), free_text="draft text", fields={})
        s.add(note)
        s.flush()
        note_id = note.id
    with engine.begin() as conn:  # a draft may change; signing is the last change
        conn.execute(text("UPDATE session_notes SET free_text = 'final text' WHERE id = :id"), {"id": note_id})
        conn.execute(text("UPDATE session_notes SET status = 'signed', content_hash = :h WHERE id = :id"),
                     {"id": note_id, "h": "a" * 64})
    return note_id


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE session_notes SET free_text = 'rewritten' WHERE id = :id",
        "UPDATE session_notes SET status = 'draft' WHERE id = :id",
        "DELETE FROM session_notes WHERE id = :id",
    ],
)
def test_signed_note_refuses_raw_update_and_delete(engine, clinic, sql):
    note_id = _signed_note(engine, clinic)
    with pytest.raises(sa_exc.DBAPIError, match=db_guards.SIGNED_NOTE_MESSAGE):
        with engine.begin() as conn:
            conn.execute(text(sql), {"id": note_id})
    with engine.connect() as conn:
        row = conn.execute(text("SELECT status, free_text FROM session_notes WHERE id = :id"),
                           {"id": note_id}).one()
    assert tuple(row) == ("signed", "final text")


def test_draft_note_can_be_deleted(engine, clinic):
    with session_scope(engine) as s:
        note = SessionNote(patient_id=clinic.a1, author_id=clinic.tina.id, note_type="preparation",
                           session_date=date(2026, 3, 1), fields={})
        s.add(note)
        s.flush()
        note_id = note.id
    with engine.begin() as conn:
        assert conn.execute(text("DELETE FROM session_notes WHERE id = :id"), {"id": note_id}).rowcount == 1


@pytest.mark.parametrize("sql", ["UPDATE addenda SET text = 'changed' WHERE id = :id",
                                 "DELETE FROM addenda WHERE id = :id"])
def test_addenda_refuse_raw_update_and_delete(engine, clinic, sql):
    note_id = _signed_note(engine, clinic)
    with session_scope(engine) as s:
        add = Addendum(note_id=note_id, author_id=clinic.tina.id, text="late entry", content_hash="b" * 64)
        s.add(add)
        s.flush()
        add_id = add.id
    with pytest.raises(sa_exc.DBAPIError, match=db_guards.ADDENDUM_MESSAGE):
        with engine.begin() as conn:
            conn.execute(text(sql), {"id": add_id})


def test_sqlite_write_units_lock_at_begin_and_read_units_never(tmp_path, sqlite_template):
    """Writes start BEGIN IMMEDIATE (two writers never interleave); ``write=False`` starts a
    deferred BEGIN, so a reader never holds the write lock against another process."""
    import shutil

    import sqlalchemy as sa
    from sqlalchemy.exc import OperationalError

    from kapnotes.db import make_engine, session_scope

    path = tmp_path / "x.db"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    other = sa.create_engine(f"sqlite:///{path}", connect_args={"isolation_level": None, "timeout": 0.05})
    with other.connect() as conn:
        with session_scope(engine, write=False) as s:
            s.execute(text("SELECT count(*) FROM users")).one()
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # another writer gets the lock meanwhile
            conn.exec_driver_sql("ROLLBACK")
        with session_scope(engine) as s:
            s.execute(text("SELECT count(*) FROM users")).one()
            with pytest.raises(OperationalError, match="database is locked"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
    other.dispose()
    engine.dispose()


def _dose_csv(rows: int) -> bytes:
    from datetime import timedelta

    from kapnotes.doses import CSV_COLUMNS

    start = datetime(2019, 1, 1, 8, 0, tzinfo=timezone.utc)
    base = {"dose_mg": "150", "formulation": "odt", "administration": "spit", "context": "home",
            "notes": "a fairly long note so that the rows take room " * 4}
    lines = [",".join(CSV_COLUMNS)]
    for i in range(rows):
        row = dict(base, taken_at=(start + timedelta(hours=6 * i)).isoformat())
        lines.append(",".join(row.get(c, "") for c in CSV_COLUMNS))
    return ("\n".join(lines) + "\n").encode()


def test_a_full_disk_during_an_import_leaves_nothing_half_written(tmp_path, sqlite_template):
    """Issue 19 fault: the database file cannot grow (SQLite ``max_page_count``: a full disk as
    SQLite sees it) part-way through a staged 6,000-row import. The import fails with an error;
    afterwards not one of its rows is visible and no staging batch is left behind."""
    import shutil

    from sqlalchemy import event, func

    from kapnotes import csv_import
    from kapnotes.config import get_settings
    from kapnotes.models import DoseEntry, ImportBatch
    from tests.factories import make_clinic

    path = tmp_path / "full.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    roomy = make_engine(url)
    clinic = make_clinic(roomy)
    with roomy.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
        doses_before = conn.execute(select(func.count()).select_from(DoseEntry)).scalar()
    roomy.dispose()
    data = _dose_csv(6000)  # above csv_import.STAGE_ABOVE: written in several short transactions
    parsed = csv_import.read_csv(data, get_settings().tz)

    full = make_engine(url)

    @event.listens_for(full, "connect")
    def _small_disk(dbapi_conn, _record):
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages + 150}")  # ~600 KB more: a few chunks fit

    with pytest.raises(sa_exc.OperationalError, match="full"):
        with session_scope(full) as s:
            csv_import.import_doses(s, clinic.tina, clinic.a1, parsed, "full-disk.csv")
    full.dispose()

    check = make_engine(url)
    with session_scope(check) as s:
        assert s.exec(select(func.count()).select_from(DoseEntry)).one() == doses_before
        staging = s.exec(select(ImportBatch).where(ImportBatch.status.startswith("staging"))).all()
        csv_import.cleanup_abandoned_imports(s)  # what the next start-up does (kapnotes.server.assembly)
    with session_scope(check) as s:
        assert s.exec(select(func.count()).select_from(DoseEntry)).one() == doses_before
        assert not s.exec(select(ImportBatch).where(ImportBatch.status.startswith("staging"))).all()
        assert s.exec(text("PRAGMA integrity_check")).one()[0] == "ok"
    check.dispose()
    print(f"staging batches left by the failed import before start-up clean-up: {len(staging)}")
