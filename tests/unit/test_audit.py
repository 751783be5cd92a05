"""The audit trail: hash chain, tamper detection, `verify-audit`, the admin's filtered list."""

from __future__ import annotations

import subprocess
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from kapnotes import audit, auth, patients
from kapnotes.actor import actor_of
from kapnotes.config import get_settings
from kapnotes.db import session_scope
from kapnotes.errors import PermissionDenied
from kapnotes.models import AuditEvent
from tests.factories import PASSWORD
from tests.helpers.cli import kap
from tests.unit.tamper import rehash_audit_chain, unguarded

ROOT = Path(__file__).resolve().parents[2]


def _ids(session) -> list[int]:
    return list(session.exec(select(AuditEvent.id).order_by(col(AuditEvent.id))).all())


def _raw(session, sql: str, **params) -> None:
    """Tamper with raw SQL, as the schema's owner would (lifting the append-only guard), and commit."""
    unguarded(session, sql, **params)


def _cli(db_url: str, *args: str) -> subprocess.CompletedProcess:
    return kap(db_url, *args)


def test_chain_links_every_event(session, clinic):
    events = session.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()
    assert len(events) > 5
    assert events[0].prev_hash == audit.GENESIS_HASH
    for prev, ev in zip(events, events[1:]):
        assert ev.prev_hash == prev.hash
    report = audit.verify_chain(session)
    assert report.ok and report.count == len(events) and report.head_hash == events[-1].hash


def test_empty_chain_verifies(session):
    report = audit.verify_chain(session)
    assert report.ok and report.count == 0 and report.head_hash == audit.GENESIS_HASH


def test_verify_walks_in_batches(session, clinic):
    n = len(_ids(session))
    assert audit.verify_chain(session, batch=2).count == n


@pytest.mark.parametrize(
    "column, value",
    [
        ("detail", "'edited'"),
        ("action", "'patient.export'"),
        ("actor_username", "'mallory'"),
        ("record_id", "'999'"),
        ("patient_id", "NULL"),
        ("at", "at"),  # replaced below by a shifted timestamp
    ],
)
def test_altered_event_is_named(engine, session, clinic, column, value):
    ids = _ids(session)
    victim = ids[len(ids) // 2]
    # load every event into this session first: verification must read the database, not a cache
    cached = session.exec(select(AuditEvent)).all()  # noqa: F841 - kept alive in the identity map
    if column == "at":
        at = session.get(AuditEvent, victim).at
        _raw(session, "UPDATE audit_events SET at = :at WHERE id = :id",
             at=(at - timedelta(minutes=5)).replace(tzinfo=None), id=victim)
    else:
        _raw(session, f"UPDATE audit_events SET {column} = {value} WHERE id = :id", id=victim)
    report = audit.verify_chain(session)
    assert not report.ok
    assert report.first_bad_id == victim
    assert "altered" in report.problem
    assert len(cached) == len(ids)


def test_recomputed_hash_breaks_the_next_link(engine, session, clinic):
    ids = _ids(session)
    victim = ids[2]
    _raw(session, "UPDATE audit_events SET detail = 'x', hash = :h WHERE id = :id", h="f" * 64, id=victim)
    report = audit.verify_chain(session)
    # the victim's own hash no longer matches its content
    assert not report.ok and report.first_bad_id == victim


def test_deleted_middle_event_names_the_next(engine, session, clinic):
    ids = _ids(session)
    victim = ids[len(ids) // 2]
    _raw(session, "DELETE FROM audit_events WHERE id = :id", id=victim)
    report = audit.verify_chain(session)
    assert not report.ok
    assert report.first_bad_id == ids[ids.index(victim) + 1]
    assert "deleted" in report.problem


def test_deleted_first_event_is_detected(engine, session, clinic):
    ids = _ids(session)
    _raw(session, "DELETE FROM audit_events WHERE id = :id", id=ids[0])
    report = audit.verify_chain(session)
    assert not report.ok and report.first_bad_id == ids[1]


def test_verify_does_not_discard_pending_work(session, clinic):
    from kapnotes.models import CareTeam

    team = CareTeam(name="Pending team")
    session.add(team)
    audit.verify_chain(session)
    session.flush()
    assert team.id is not None and session.get(CareTeam, team.id) is team


@pytest.mark.slow
def test_verify_audit_cli_intact_and_broken(session, db_url, clinic):
    ids = _ids(session)
    session.commit()
    ok = _cli(db_url, "verify-audit")
    assert ok.returncode == 0, ok.stderr
    assert f"{len(ids)} events" in ok.stdout

    victim = ids[3]
    _raw(session, "UPDATE audit_events SET detail = 'tampered' WHERE id = :id", id=victim)
    bad = _cli(db_url, "verify-audit")
    assert bad.returncode == 1
    assert f"event {victim}" in bad.stderr
    assert bad.stdout == ""


@pytest.mark.slow
def test_verify_audit_cli_names_event_after_deleted_one(session, db_url, clinic):
    ids = _ids(session)
    _raw(session, "DELETE FROM audit_events WHERE id = :id", id=ids[4])
    bad = _cli(db_url, "verify-audit")
    assert bad.returncode == 1
    assert f"event {ids[5]}" in bad.stderr


def test_no_clinical_text_in_details(engine, session, clinic):
    """Names, MRNs, dates of birth and passwords never reach the audit log."""
    with session_scope(engine) as s:
        patients.add_patient(s, clinic.ada, "SECRET-MRN-77", "Zelda Zebrafish", date(1981, 8, 9), "tina", "paul")
        auth.authenticate(s, "tina", "my-secret-guess-1")
        auth.authenticate(s, "tina", PASSWORD)
        pid = patients.list_patients(s, clinic.tina, "zebra")[0].id
        patients.open_record(s, clinic.tina, pid, "dashboard")
        patients.overview(s, clinic.tina, pid)
    session.expire_all()
    for ev in session.exec(select(AuditEvent)).all():
        blob = " ".join(str(v) for v in (ev.detail, ev.record_id, ev.actor_username, ev.record_type, ev.action))
        for secret in ("Zelda", "Zebrafish", "SECRET-MRN", "1981-08-09", "my-secret-guess", PASSWORD,
                       "Alice", "A-001", "Bea Brook"):
            assert secret not in blob, (ev.action, blob)


def test_detail_is_truncated_not_rejected(session, clinic):
    ev = audit.record(session, clinic.ada, "test.long", detail="x" * 1000)
    assert len(ev.detail) == 255
    assert audit.verify_chain(session).ok


# --- the admin's list -------------------------------------------------------------------


def _make_history(engine, clinic):
    with session_scope(engine) as s:
        patients.open_record(s, clinic.tina, clinic.a1, "dashboard")
        patients.open_record(s, clinic.tina, clinic.a2, "dashboard")
        patients.open_record(s, clinic.theo, clinic.b1, "dashboard")
        auth.authenticate(s, "paul", PASSWORD)


def test_list_events_is_admin_only(session, clinic):
    for actor in (clinic.tina, clinic.paul):
        with pytest.raises(PermissionDenied):
            audit.list_events(session, actor, audit.AuditFilter(), get_settings().tz)


def test_list_events_filters(engine, session, clinic):
    _make_history(engine, clinic)
    tz = get_settings().tz
    ada = clinic.ada

    by_user = audit.list_events(session, ada, audit.AuditFilter(username="tina"), tz)
    assert by_user and {e.actor_username for e in by_user} == {"tina"}

    by_patient = audit.list_events(session, ada, audit.AuditFilter(patient_id=clinic.a1), tz)
    assert by_patient and {e.patient_id for e in by_patient} == {clinic.a1}

    by_action = audit.list_events(session, ada, audit.AuditFilter(action="patient.open"), tz)
    assert sorted(e.patient_id for e in by_action) == sorted([clinic.a1, clinic.a2, clinic.b1])

    both = audit.list_events(session, ada, audit.AuditFilter(username="tina", action="patient.open"), tz)
    assert sorted(e.patient_id for e in both) == sorted([clinic.a1, clinic.a2])

    newest_first = audit.list_events(session, ada, audit.AuditFilter(), tz)
    assert [e.id for e in newest_first] == sorted((e.id for e in newest_first), reverse=True)
    assert len(audit.list_events(session, ada, audit.AuditFilter(), tz, limit=3)) == 3

    # reading the log is itself recorded
    assert session.exec(select(AuditEvent).where(AuditEvent.action == "audit.read")).all()


def test_distinct_actions_lists_each_action_once_in_order(engine, session, clinic):
    _make_history(engine, clinic)
    expected = sorted(set(session.exec(select(AuditEvent.action)).all()))
    assert audit.distinct_actions(session) == expected and "patient.open" in expected


def test_distinct_actions_of_an_empty_log(engine):
    with session_scope(engine) as s:
        assert audit.distinct_actions(s) == []


def test_verify_and_record_is_admin_only_and_recorded(engine, session, clinic):
    for actor in (clinic.tina, clinic.paul):
        with pytest.raises(PermissionDenied):
            audit.verify_and_record(session, actor)
        with pytest.raises(PermissionDenied):
            audit.last_verification(session, actor)
    assert audit.last_verification(session, clinic.ada) is None
    report = audit.verify_and_record(session, clinic.ada)
    session.commit()
    assert report.ok
    last = audit.last_verification(session, clinic.ada)
    assert last.ok and last.username == "ada" and last.detail == f"intact {report.count} events"
    assert audit.verify_chain(session).ok  # the recorded check is itself on the chain


def test_a_recorded_failed_check_stays_visible(engine, session, clinic):
    third = _ids(session)[2]
    _raw(session, "UPDATE audit_events SET detail = 'forged' WHERE id = :i", i=third)
    report = audit.verify_and_record(session, clinic.ada)
    session.commit()
    assert not report.ok and report.first_bad_id == third
    last = audit.last_verification(session, clinic.ada)
    assert not last.ok and last.detail.startswith(f"broken at event {third}")


def test_list_events_date_range_uses_clinic_days(engine, session, clinic):
    tz = get_settings().tz
    # an event at 23:30 clinic time on 2026-01-10 is on the 10th there (the 11th in UTC)
    late = datetime(2026, 1, 10, 23, 30, tzinfo=tz).astimezone(timezone.utc)
    with session_scope(engine) as s:
        ev = audit.record(s, clinic.ada, "test.dated")
        ev_id = ev.id
    _raw(session, "UPDATE audit_events SET at = :at WHERE id = :id", at=late.replace(tzinfo=None), id=ev_id)

    def ids(d_from, d_to):
        flt = audit.AuditFilter(action="test.dated", date_from=d_from, date_to=d_to)
        return [e.id for e in audit.list_events(session, clinic.ada, flt, tz)]

    assert ids(date(2026, 1, 10), date(2026, 1, 10)) == [ev_id]
    assert ids(None, date(2026, 1, 10)) == [ev_id]
    assert ids(date(2026, 1, 10), None) == [ev_id]
    assert ids(date(2026, 1, 11), None) == []
    assert ids(None, date(2026, 1, 9)) == []


# --- the chain under concurrency, and any single change ------------------------------------------


def test_concurrent_writers_keep_one_chain(engine, clinic):
    """Several sessions appending at once never fork the chain (advisory lock / BEGIN IMMEDIATE)."""
    from functools import partial

    from tests.helpers.threads import together

    def writer(n):
        for i in range(10):
            with session_scope(engine) as s:
                audit.record(s, clinic.ada, "test.concurrent", detail=f"w{n}-{i}")

    errors = together(*(partial(writer, n) for n in range(4)), timeout=120)
    assert not errors
    with session_scope(engine) as s:
        report = audit.verify_chain(s)
        n = s.exec(select(AuditEvent).where(AuditEvent.action == "test.concurrent")).all()
    assert report.ok, report
    assert len(n) == 40


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n_events=st.integers(min_value=1, max_value=12),
    data=st.data(),
)
def test_any_single_change_is_found_at_that_event(n_events, data):
    """verify_events: altering any field of any event, or deleting any non-final event, is caught there."""
    from kapnotes.audit import GENESIS_HASH, _digest

    class Ev:
        pass

    events = []
    prev = GENESIS_HASH
    for i in range(n_events):
        ev = Ev()
        ev.id = i + 1
        ev.at = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=i)
        ev.actor_id, ev.actor_username, ev.action = 1, "ada", f"a{i}"
        ev.record_type, ev.record_id, ev.patient_id, ev.detail = "x", str(i), None, ""
        ev.prev_hash, ev.hash = prev, ""
        ev.hash = _digest(prev, ev)
        prev = ev.hash
        events.append(ev)

    def first_bad(evs):
        report = audit.verify_events(evs)
        assert report.ok is (report.first_bad_id is None)
        return report.first_bad_id

    assert first_bad(events) is None
    victim = data.draw(st.integers(min_value=0, max_value=n_events - 1))
    if data.draw(st.booleans()) and victim < n_events - 1:
        remaining = events[:victim] + events[victim + 1:]
        assert first_bad(remaining) == events[victim + 1].id
    else:
        field = data.draw(st.sampled_from(["at", "actor_id", "actor_username", "action", "record_type",
                                           "record_id", "patient_id", "detail"]))
        new = {"at": events[victim].at + timedelta(microseconds=1), "actor_id": 2, "patient_id": 7}.get(
            field, data.draw(st.text(min_size=1, max_size=8)))
        if getattr(events[victim], field) == new:
            new = str(new) + "!"
        setattr(events[victim], field, new)
        assert first_bad(events) == events[victim].id


def test_repeated_identical_reads_are_recorded_once(session, clinic, monkeypatch):
    """A read re-shown on every rerun is one event while nothing else happens in between and
    it is younger than READ_COALESCE; any other event, detail or user starts a new one."""
    import kapnotes.audit as audit_mod

    def reads() -> list[AuditEvent]:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == "note.list")
                                 .order_by(col(AuditEvent.id))).all())

    def read(actor, detail="rows=3"):
        return audit.record(session, actor, "note.list", "patient", clinic.a1, clinic.a1, detail,
                            coalesce=audit.READ_COALESCE)

    first = read(clinic.tina)
    assert read(clinic.tina).id == first.id and read(clinic.tina).id == first.id
    assert len(reads()) == 1
    read(clinic.tina, detail="rows=4")  # another result: a new event
    assert len(reads()) == 2
    read(clinic.paul)  # another user
    read(clinic.tina)  # tina again, after paul's event: a new event
    assert len(reads()) == 4
    audit.record(session, clinic.tina, "note.save", "session_note", 1, clinic.a1)  # a change in between
    read(clinic.tina)
    assert len(reads()) == 5
    later = audit_mod.utcnow() + audit.READ_COALESCE + timedelta(seconds=1)
    monkeypatch.setattr(audit_mod, "utcnow", lambda: later)
    read(clinic.tina)  # same read, but older than the window: recorded again
    assert len(reads()) == 6
    assert audit.verify_chain(session).ok
    # a change is never coalesced, even when it repeats exactly
    audit.record(session, clinic.tina, "note.save", "session_note", 1, clinic.a1)
    audit.record(session, clinic.tina, "note.save", "session_note", 1, clinic.a1)
    saves = session.exec(select(AuditEvent).where(AuditEvent.action == "note.save")).all()
    assert len(saves) == 3


@pytest.mark.slow
def test_anchors_catch_a_cut_tail_and_a_rewritten_chain(session, db_url, clinic, tmp_path):
    anchors = tmp_path / "audit-anchors.jsonl"
    session.commit()
    first = _cli(db_url, "verify-audit", "--anchor", str(anchors))
    assert first.returncode == 0, first.stderr
    assert "appended today's head" in first.stdout
    head = audit.Anchor.from_json(anchors.read_text().splitlines()[0])
    assert head.event_id == max(_ids(session)) and head.count == len(_ids(session))
    session.commit()
    again = _cli(db_url, "verify-audit", "--anchor", str(anchors))
    assert again.returncode == 0 and "1 anchor in" in again.stdout
    assert len(anchors.read_text().splitlines()) == 1  # same head: not appended twice

    audit.record(session, clinic.tina, "note.save", "session_note", 1, clinic.a1)
    audit.record(session, clinic.tina, "note.save", "session_note", 2, clinic.a1)
    session.commit()
    assert _cli(db_url, "verify-audit", "--anchor", str(anchors)).returncode == 0
    assert len(anchors.read_text().splitlines()) == 2
    saved = anchors.read_text()

    # cutting the newest events leaves a valid chain, but not the anchored head
    ids = _ids(session)
    _raw(session, "DELETE FROM audit_events WHERE id >= :id", id=ids[-2])
    assert audit.verify_chain(session).ok
    session.commit()
    cut = _cli(db_url, "verify-audit", "--anchor", str(anchors))
    assert cut.returncode == 1
    assert f"event {ids[-1]}" in cut.stderr and "removed from the end" in cut.stderr
    assert anchors.read_text() == saved  # a failed check appends nothing


@pytest.mark.slow
def test_anchors_catch_a_rewritten_chain(session, db_url, clinic, tmp_path):
    anchors = tmp_path / "anchors.jsonl"
    session.commit()
    assert _cli(db_url, "verify-audit", "--anchor", str(anchors)).returncode == 0
    ids = _ids(session)
    _raw(session, "UPDATE audit_events SET detail = 'forged' WHERE id = :id", id=ids[2])
    rehash_audit_chain(session)
    assert audit.verify_chain(session).ok  # the chain alone cannot tell
    session.commit()
    bad = _cli(db_url, "verify-audit", "--anchor", str(anchors))
    assert bad.returncode == 1 and "rewritten" in bad.stderr


@pytest.mark.slow
def test_a_malformed_anchor_file_is_refused_unchanged(session, db_url, clinic, tmp_path):
    anchors = tmp_path / "anchors.jsonl"
    anchors.write_text('{"event_id": 1, "hash": "abc"}\n')
    session.commit()
    bad = _cli(db_url, "verify-audit", "--anchor", str(anchors))
    assert bad.returncode == 1 and "line 1 is not an audit anchor" in bad.stderr
    assert anchors.read_text() == '{"event_id": 1, "hash": "abc"}\n'


def test_audit_events_refuse_update_and_delete(engine, clinic):
    """The chain only ever appends: the database refuses changes to an event (both backends)."""
    from sqlalchemy.exc import DatabaseError

    from kapnotes import db_guards

    with session_scope(engine) as s:
        victim = s.exec(select(AuditEvent.id).order_by(col(AuditEvent.id))).first()
    for sql in ("UPDATE audit_events SET detail = 'x' WHERE id = :id", "DELETE FROM audit_events WHERE id = :id"):
        with pytest.raises(DatabaseError, match=db_guards.AUDIT_MESSAGE), session_scope(engine) as s:
            s.execute(text(sql), {"id": victim})
    with session_scope(engine) as s:  # appending still works
        audit.record(s, None, "test.append", actor_username="system")


@pytest.mark.slow
def test_backup_appends_the_head_to_the_anchor_file(db_url, backend, clinic, tmp_path, monkeypatch):
    from kapnotes import backup

    if backend == "postgres":
        import shutil

        if not shutil.which("pg_dump"):
            pytest.skip("pg_dump is not installed")
    anchors = tmp_path / "elsewhere" / "anchors.jsonl"
    monkeypatch.setenv(audit.ANCHOR_FILE_ENV, str(anchors))
    backup.create_backup(db_url, tmp_path / "b")
    backup.create_backup(db_url, tmp_path / "b2")
    lines = anchors.read_text().splitlines()
    assert len(lines) == 2
    first, second = (audit.Anchor.from_json(x) for x in lines)
    assert second.event_id > first.event_id  # each backup's own event is covered
    ok = _cli_anchor(db_url, anchors)
    assert ok.returncode == 0, ok.stderr


def _cli_anchor(db_url, anchors):
    return _cli(db_url, "verify-audit", "--anchor", str(anchors), "--no-append")


def test_anchor_thread_writes_until_stopped(engine, clinic, tmp_path):
    import time

    path = tmp_path / "anchors.jsonl"
    thread = audit.start_anchor_thread(engine, path, every_seconds=0.05)
    try:
        deadline = time.monotonic() + 20
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert path.exists(), thread.last_error
        with session_scope(engine) as s:
            audit.record(s, None, "test.more", actor_username="system")
        while len(path.read_text().splitlines()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        thread.stop()
    assert not thread.is_alive()
    lines = path.read_text().splitlines()
    assert len(lines) == 2  # a new head is appended, an unchanged one is not repeated
    with session_scope(engine) as s:
        newest = s.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc())).first()
    assert audit.Anchor.from_json(lines[-1]).hash == newest.hash


@pytest.mark.parametrize("action, record_type, detail, shown", [
    ("assessment.flag", "assessment", "flag=suicidality", "flag=…"),
    ("assessment.add", "assessment", "instrument=PHQ-9 by=items", "instrument=… by=…"),
    ("adjustment.decide", "dose_adjustment", "action=hold role=prescriber", "action=… role=prescriber"),
    ("note.sign", "session_note", "type=dosing;sha256=" + "a" * 64, "type=… sha256=" + "a" * 64),
    ("note.read", "session_note", "status=signed", "status=signed"),
    ("plan.version", "treatment_plan", "v3 status=approved", "… status=…"),
    ("import.batch", "import_batch", "imported=4 duplicates=0 invalid=1", "imported=4 duplicates=0 invalid=1"),
    ("auth.fail", "", "unknown or inactive account", "unknown or inactive account"),
    ("backup.create", "database", "engine=sqlite;bytes=10", "engine=sqlite;bytes=10"),
])
def test_admins_see_details_without_clinical_values(action, record_type, detail, shown):
    assert audit.redact_detail(action, record_type, detail) == shown


def test_the_auditor_reads_the_log_and_no_patient(session, clinic):
    from kapnotes.access import require_patient

    auditor = actor_of(auth.create_user(session, None, "audrey", "auditor", "Audrey Auditor", PASSWORD))
    audit.record(session, clinic.tina, "assessment.flag", "assessment", 1, clinic.a1, detail="flag=suicidality")
    tz = get_settings().tz
    events = audit.list_events(session, auditor, audit.AuditFilter(action="assessment.flag"), tz)
    assert [audit.shown_detail(auditor, e) for e in events] == ["flag=suicidality"]
    assert [audit.shown_detail(clinic.ada, e) for e in events] == ["flag=…"]
    with pytest.raises(PermissionDenied):
        require_patient(session, auditor, clinic.a1)
    with pytest.raises(PermissionDenied):
        audit.list_events(session, clinic.tina, audit.AuditFilter(), tz)
