"""Session notes service: the lifecycle draft -> conflict -> sign -> refused edit -> addendum,
dose-log linking, bad input, access. Runs on SQLite and PostgreSQL (``engine`` fixture)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError
from sqlmodel import select

from kapnotes import events, notes
from kapnotes.config import get_settings
from kapnotes.db import session_scope
from kapnotes.errors import ConflictError, PermissionDenied, ValidationError
from kapnotes.models import Addendum, AuditEvent, DoseContext, DoseEntry, NoteStatus, SessionNote
from kapnotes.notes import clock
from kapnotes.notes.hashing import content_hash, text_hash
from kapnotes.timeutil import utcnow

TODAY = utcnow().date() - timedelta(days=1)  # safely "not in the future" in any clinic zone

DOSING_OK = {
    "session_number": 3, "present": "Therapist and sitter", "consent_confirmed": True,
    "intention": "Soften the worry.", "bp_systolic_pre": 124, "bp_diastolic_pre": 80, "heart_rate_pre": 72,
    "dose_mg": 150.0, "formulation": "odt", "time_taken": "10:05", "administration": "spit",
    "discharge_status": "Alert; partner drove home.",
}


def _integration_fields(**extra):
    return {"client_account": "Gentle.", "risk_check": "Denies.", "plan": "Continue.", **extra}


def test_lifecycle_draft_conflict_sign_refuse_addendum(engine, clinic):
    with session_scope(engine) as s:
        note = notes.create_draft(s, clinic.tina, clinic.a1, "dosing", session_date=TODAY)
        nid, v1 = note.id, note.version
        assert note.status == NoteStatus.draft and note.fields["dose_mg"] == 150.0  # defaulted from the plan

    # Two editors load version v1; the first save wins, the second gets a conflict with both versions.
    with session_scope(engine) as s:
        saved = notes.save_draft(s, clinic.tina, nid, v1, fields={**DOSING_OK, "intention": "first tab"})
        v2 = saved.version
    assert v2 > v1
    with pytest.raises(ConflictError) as exc, session_scope(engine) as s:
        notes.save_draft(s, clinic.tina, nid, v1, fields={**DOSING_OK, "intention": "second tab"})
    conflict = exc.value
    assert isinstance(conflict, notes.DraftConflict)
    assert conflict.my_version == v1 and conflict.their_version == v2
    assert conflict.mine["fields"]["intention"] == "second tab"
    assert conflict.theirs["fields"]["intention"] == "first tab"
    with session_scope(engine) as s:
        assert s.get(SessionNote, nid).fields["intention"] == "first tab"  # nothing overwritten

    with session_scope(engine) as s:
        signed = notes.sign(s, clinic.tina, nid, v2, start_time="10:00", end_time="11:30")
        assert signed.status == NoteStatus.signed
        assert signed.signed_by_id == clinic.tina.id and signed.signed_at is not None
        assert signed.content_hash == content_hash(signed)
        version_signed = signed.version

    with session_scope(engine) as s:
        with pytest.raises(notes.SignedNoteError):
            notes.save_draft(s, clinic.tina, nid, version_signed, free_text="changed after signing")
        with pytest.raises(notes.SignedNoteError):
            notes.sign(s, clinic.tina, nid, version_signed)
        with pytest.raises(notes.SignedNoteError):
            notes.discard_draft(s, clinic.tina, nid, version_signed)

    with session_scope(engine) as s:
        row = s.get(SessionNote, nid)
        assert notes.verify(row)
        assert row.free_text is None and row.end_time == "11:30"

    with session_scope(engine) as s:
        add1 = notes.add_addendum(s, clinic.tina, nid, "Correction: sitter was the partner.")
        add2 = notes.add_addendum(s, clinic.paul, nid, "Prescriber: BP reviewed.")
        assert add1.content_hash == text_hash(str(nid), str(clinic.tina.id), add1.created_at.isoformat(), add1.text)
    with session_scope(engine) as s:
        rows = notes.list_addenda(s, clinic.paul, nid)
        assert [r.id for r in rows] == [add1.id, add2.id]
        assert [r.author_name for r in rows] == ["Tina Torres, LMFT", "Paul Park, MD"]
        assert all(r.verified for r in rows)
        assert notes.verify(s.get(SessionNote, nid))  # the addenda did not touch the note


def test_database_refuses_raw_update_of_signed_note(engine, clinic):
    with session_scope(engine) as s:
        note = notes.create_draft(s, clinic.tina, clinic.a1, "check_in", session_date=TODAY,
                                  fields={"data": "d", "assessment": "a", "plan": "p"})
        notes.sign(s, clinic.tina, note.id, note.version)
        nid = note.id
    with pytest.raises(DatabaseError), session_scope(engine) as s:
        s.execute(text("UPDATE session_notes SET free_text = 'tampered' WHERE id = :i").bindparams(i=nid))
    with pytest.raises(DatabaseError), session_scope(engine) as s:
        s.execute(text("DELETE FROM session_notes WHERE id = :i").bindparams(i=nid))
    with session_scope(engine) as s:
        add = notes.add_addendum(s, clinic.tina, nid, "late entry")
        aid = add.id
    with pytest.raises(DatabaseError), session_scope(engine) as s:
        s.execute(text("UPDATE addenda SET text = 'x' WHERE id = :i").bindparams(i=aid))
    with session_scope(engine) as s:
        assert s.get(SessionNote, nid).free_text is None
        assert s.get(Addendum, aid).text == "late entry"


def test_sign_refuses_missing_required_and_writes_nothing(engine, clinic):
    with session_scope(engine) as s:
        note = notes.create_draft(s, clinic.tina, clinic.a1, "integration", session_date=TODAY)
        nid, v = note.id, note.version
    with pytest.raises(ValidationError) as exc, session_scope(engine) as s:
        notes.sign(s, clinic.tina, nid, v, fields={"client_account": "only this"})
    assert set(exc.value.errors) == {"risk_check", "plan"}
    assert "required before signing" in exc.value.errors["plan"]
    with session_scope(engine) as s:
        row = s.get(SessionNote, nid)
        assert row.status == NoteStatus.draft and row.version == v and "client_account" not in row.fields


@pytest.mark.parametrize("fields, start, end, sdate, key, words", [
    ({"bp_systolic_pre": 300, "bp_diastolic_pre": 80}, None, None, None, "bp_systolic_pre", "between 60 and 260"),
    ({"bp_systolic_pre": 120, "bp_diastolic_pre": 20}, None, None, None, "bp_diastolic_pre", "between 30 and 160"),
    ({"bp_systolic_pre": 90, "bp_diastolic_pre": 95}, None, None, None, "bp_systolic_pre", "must be above diastolic"),
    ({"dose_mg": 0}, None, None, None, "dose_mg", "above 0"),
    ({"time_taken": "9am"}, None, None, None, "time_taken", "HH:MM"),
    ({}, "10:00", "09:30", None, "end_time", "before start time"),
    ({}, None, None, 3, "session_date", "in the future"),
    ({"formulation": "pill"}, None, None, None, "formulation", "one of"),
    ({"not_a_field": 1}, None, None, None, "not_a_field", "not a field"),
])
def test_bad_input_is_refused_at_the_field(engine, clinic, fields, start, end, sdate, key, words):
    with session_scope(engine) as s:
        note = notes.create_draft(s, clinic.tina, clinic.a1, "dosing", session_date=TODAY)
        nid, v = note.id, note.version
    changes = {"fields": {**DOSING_OK, **fields}}
    if start:
        changes.update(start_time=start, end_time=end)
    if sdate:
        changes["session_date"] = utcnow().date() + timedelta(days=sdate)
    with pytest.raises(ValidationError) as exc, session_scope(engine) as s:
        notes.save_draft(s, clinic.tina, nid, v, **changes)
    assert key in exc.value.errors and words in exc.value.errors[key]
    with session_scope(engine) as s:
        assert s.get(SessionNote, nid).version == v  # nothing half-saved
        assert s.exec(select(DoseEntry).where(DoseEntry.session_note_id == nid)).first() is None


def test_bp_pair_required_only_at_sign(engine, clinic):
    with session_scope(engine) as s:
        note = notes.create_draft(s, clinic.tina, clinic.a1, "dosing", session_date=TODAY)
        half = {k: v for k, v in DOSING_OK.items() if k != "bp_diastolic_pre"}
        saved = notes.save_draft(s, clinic.tina, note.id, note.version, fields=half)  # a draft may be partial
        with pytest.raises(ValidationError) as exc:
            notes.sign(s, clinic.tina, note.id, saved.version)
        assert "bp_diastolic_pre" in exc.value.errors


def test_dosing_note_creates_one_dose_entry_and_updates_it(engine, clinic, monkeypatch):
    seen = []
    monkeypatch.setattr(events, "emit", lambda session, event, actor, **p: seen.append((event, p)))
    with session_scope(engine) as s:
        note = notes.create_draft(s, clinic.tina, clinic.a1, "dosing", session_date=TODAY)
        assert notes.linked_dose(s, note.id) is None  # only saving creates the entry
        saved = notes.save_draft(s, clinic.tina, note.id, note.version,
                                 fields={**DOSING_OK, "adverse_events": ["nausea", "dizziness"], "nausea": 2})
        saved = notes.save_draft(s, clinic.tina, note.id, saved.version,
                                 fields={**DOSING_OK, "dose_mg": 175.0, "bp_systolic_post": 150,
                                         "bp_diastolic_post": 95})
        notes.sign(s, clinic.tina, note.id, saved.version)
        nid = note.id
    with session_scope(engine) as s:
        entries = s.exec(select(DoseEntry).where(DoseEntry.patient_id == clinic.a1)).all()
        assert len(entries) == 1
        e = entries[0]
        assert (e.context, e.source, e.session_note_id, e.entered_by_id) == ("in_session", "session", nid,
                                                                            clinic.tina.id)
        assert e.dose_mg == 175.0 and e.bp_systolic_post == 150 and e.heart_rate == 72
        assert e.adverse_events == ""  # cleared by the second save
        note = s.get(SessionNote, nid)
        assert note.fields["dose_differs_from_plan"] is True and note.fields["plan_dose_mg"] == 150.0
        assert "differs from the active plan" in notes.warnings_for(note)["dose_mg"]
    kinds = [e for e, _ in seen]
    assert kinds.count("dose.changed") == 2 and kinds[-1] == "note.signed"
    assert seen[-1][1] == {"patient_id": clinic.a1, "note_id": nid, "note_type": "dosing"}


def test_dosing_note_links_a_dose_already_logged_for_the_session(engine, clinic):
    from datetime import datetime, time

    with session_scope(engine) as s:
        pre = DoseEntry(patient_id=clinic.a1, taken_at=datetime.combine(TODAY, time(10, 0), get_settings().tz),
                        dose_mg=150, formulation="odt", context=DoseContext.in_session, source="manual",
                        entered_by_id=clinic.tina.id)
        s.add(pre)
        s.flush()
        pre_id = pre.id
        note = notes.create_draft(s, clinic.tina, clinic.a1, "dosing", session_date=TODAY)
        notes.sign(s, clinic.tina, note.id, note.version, fields=DOSING_OK)
    with session_scope(engine) as s:
        entries = s.exec(select(DoseEntry).where(DoseEntry.patient_id == clinic.a1)).all()
        assert [e.id for e in entries] == [pre_id]
        assert entries[0].session_note_id == note.id
        assert note.fields.get("dose_differs_from_plan") is None  # 150 mg ODT = the plan


def test_integration_proposal_needs_reason_and_emits_note_signed(engine, clinic, monkeypatch):
    seen = []
    monkeypatch.setattr(events, "emit", lambda session, event, actor, **p: seen.append((event, p)))
    with session_scope(engine) as s:
        note = notes.create_draft(s, clinic.tina, clinic.a1, "integration", session_date=TODAY)
        with pytest.raises(ValidationError) as exc:
            notes.sign(s, clinic.tina, note.id, note.version, fields=_integration_fields(proposal_dose_mg=200))
        assert "proposal_reason" in exc.value.errors
        signed = notes.sign(s, clinic.tina, note.id, note.version, fields=_integration_fields(
            proposal_dose_mg=200, proposal_interval_days=14, proposal_reason="Partial response, well tolerated."))
        assert signed.fields["proposal_dose_mg"] == 200.0 and signed.fields["proposal_interval_days"] == 14
    assert seen == [("note.signed", {"patient_id": clinic.a1, "note_id": signed.id, "note_type": "integration"})]


def test_load_last_note_carries_over_intention_homework_plan(engine, clinic):
    with session_scope(engine) as s:
        with pytest.raises(ValidationError) as exc:
            notes.create_draft(s, clinic.tina, clinic.a1, "preparation", carry_over=True)
        assert "carry_over" in exc.value.errors
        first = notes.create_draft(s, clinic.tina, clinic.a1, "preparation", session_date=TODAY - timedelta(days=7),
                                   fields={"data": "D1", "assessment": "A1", "plan": "P1", "intention": "I1",
                                           "homework": "H1"})
        notes.sign(s, clinic.tina, first.id, first.version)
        new = notes.create_draft(s, clinic.tina, clinic.a1, "preparation", carry_over=True)
        assert new.carried_over_from_id == first.id
        assert {k: new.fields.get(k) for k in ("intention", "homework", "plan", "data")} == {
            "intention": "I1", "homework": "H1", "plan": "P1", "data": None}


def test_drafts_are_the_authors_alone(engine, clinic):
    with session_scope(engine) as s:
        draft = notes.create_draft(s, clinic.tina, clinic.a1, "check_in", session_date=TODAY,
                                   fields={"data": "secret draft words"})
        signed = notes.create_draft(s, clinic.tina, clinic.a1, "check_in", session_date=TODAY,
                                    fields={"data": "d", "assessment": "a", "plan": "signed words"})
        notes.sign(s, clinic.tina, signed.id, signed.version)
    with session_scope(engine) as s:
        with pytest.raises(PermissionDenied):
            notes.get_note(s, clinic.paul, draft.id)
        with pytest.raises(PermissionDenied):
            notes.save_draft(s, clinic.paul, draft.id, draft.version, free_text="x")
        with pytest.raises(PermissionDenied):
            notes.get_note(s, clinic.theo, signed.id)  # other care team
        with pytest.raises(PermissionDenied):
            notes.create_draft(s, clinic.paul, clinic.a1, "check_in")  # prescribers read, never write
        assert notes.get_note(s, clinic.paul, signed.id).id == signed.id
        assert [r.id for r in notes.timeline(s, clinic.paul, clinic.a1)] == [signed.id]
        assert {r.id for r in notes.timeline(s, clinic.tina, clinic.a1)} == {signed.id, draft.id}
        assert notes.search(s, clinic.paul, "secret") == []
        assert [h.note_id for h in notes.search(s, clinic.paul, "SIGNED words")] == [signed.id]
        assert notes.search(s, clinic.tina, "secret") == []  # search covers signed notes only
        assert notes.search(s, clinic.theo, "signed") == []
        with pytest.raises(PermissionDenied):
            notes.add_addendum(s, clinic.theo, signed.id, "not my team")
        with pytest.raises(PermissionDenied):
            notes.add_addendum(s, clinic.ada, signed.id, "admin")
        assert [r.id for r in notes.my_drafts(s, clinic.tina)] == [draft.id]


def test_timeline_filters_and_audit_has_no_text(engine, clinic):
    with session_scope(engine) as s:
        for kind in ("check_in", "preparation"):
            n = notes.create_draft(s, clinic.tina, clinic.a1, kind, session_date=TODAY,
                                   fields={"data": "UNIQUE-CLINICAL-TEXT", "assessment": "a", "plan": "p"})
            notes.sign(s, clinic.tina, n.id, n.version)
        notes.create_draft(s, clinic.tina, clinic.a1, "check_in", session_date=TODAY)
    with session_scope(engine) as s:
        assert [r.note_type for r in notes.timeline(s, clinic.tina, clinic.a1, note_types=["preparation"])] == [
            "preparation"]
        assert [r.status for r in notes.timeline(s, clinic.tina, clinic.a1, statuses=["draft"])] == ["draft"]
        hits = notes.search(s, clinic.tina, "unique-clinical-text")
        assert len(hits) == 2 and "UNIQUE-CLINICAL-TEXT" in hits[0].snippet
        details = " ".join(e.detail or "" for e in s.exec(select(AuditEvent)).all())
        actions = {e.action for e in s.exec(select(AuditEvent)).all()}
    assert "UNIQUE" not in details and "unique" not in details
    assert {"note.create", "note.sign", "note.list", "note.search"} <= actions


def test_discard_draft_voids_its_dose(engine, clinic):
    with session_scope(engine) as s:
        note = notes.create_draft(s, clinic.tina, clinic.a1, "dosing", session_date=TODAY)
        saved = notes.save_draft(s, clinic.tina, note.id, note.version, fields=DOSING_OK)
        dose_id = notes.linked_dose(s, note.id).id
        notes.discard_draft(s, clinic.tina, note.id, saved.version)
    with session_scope(engine) as s:
        assert s.get(SessionNote, note.id) is None
        dose = s.get(DoseEntry, dose_id)
        assert dose.voided_at is not None and dose.session_note_id is None


_TEXT = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), min_size=1,
                max_size=300).filter(lambda t: t.strip() != "")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(free=_TEXT, intention=_TEXT, addendum=_TEXT)
def test_unicode_text_round_trips_through_save_sign_and_read(engine, clinic, free, intention, addendum):
    with session_scope(engine) as s:
        note = notes.create_draft(s, clinic.tina, clinic.a2, "preparation", session_date=TODAY)
        saved = notes.save_draft(s, clinic.tina, note.id, note.version, free_text=free,
                                 fields={"data": free, "assessment": "a", "plan": "p", "intention": intention})
        signed = notes.sign(s, clinic.tina, note.id, saved.version)
        notes.add_addendum(s, clinic.tina, note.id, addendum)
        nid, digest = signed.id, signed.content_hash
    with session_scope(engine) as s:
        back = notes.get_note(s, clinic.tina, nid)
        assert back.free_text == free and back.fields["data"] == free and back.fields["intention"] == intention
        assert back.content_hash == digest == content_hash(back)
        adds = notes.list_addenda(s, clinic.tina, nid)
        assert adds[0].text == addendum and adds[0].verified


def test_nul_character_is_refused_with_a_message(engine, clinic):
    with session_scope(engine) as s:
        note = notes.create_draft(s, clinic.tina, clinic.a1, "check_in", session_date=TODAY)
        with pytest.raises(ValidationError) as exc:
            notes.save_draft(s, clinic.tina, note.id, note.version, free_text="a\x00b", fields={"data": "x\x00"})
        assert set(exc.value.errors) == {"free_text", "data"}


def test_signed_integration_proposal_reaches_the_prescribers_queue(engine, clinic):
    """Through the real listeners (kapnotes.events.LISTENER_MODULES): one pending proposal."""
    from kapnotes.models import DoseAdjustment

    with session_scope(engine) as s:
        note = notes.create_draft(s, clinic.tina, clinic.a1, "integration", session_date=TODAY)
        notes.sign(s, clinic.tina, note.id, note.version, start_time="10:00", fields=_integration_fields(
            proposal_dose_mg=200, proposal_reason="Partial response at 150 mg, well tolerated."))
    with session_scope(engine) as s:
        rows = s.exec(select(DoseAdjustment).where(DoseAdjustment.source_note_id == note.id)).all()
        assert len(rows) == 1 and rows[0].kind == "proposal" and rows[0].proposed_dose_mg == 200


def _noon_today(monkeypatch):
    """Freeze the notes service's clock at 12:00 clinic time today; returns that date."""
    from datetime import datetime, time, timezone

    tz = get_settings().tz
    day = utcnow().astimezone(tz).date()
    monkeypatch.setattr(clock, "utcnow", lambda: datetime.combine(day, time(12, 0), tz).astimezone(timezone.utc))
    return day


def _state(engine, nid):
    with session_scope(engine) as s:
        row = s.get(SessionNote, nid)
        doses = s.exec(select(DoseEntry.id).where(DoseEntry.session_note_id == nid)).all()
        return row.status, row.version, row.session_date, row.start_time, row.end_time, len(doses)


@pytest.mark.parametrize(("changes", "key", "words"), [
    ({"start_time": "11:00", "end_time": "10:30"}, "end_time", "before start time"),
    ({"session_date": None}, "session_date", "Enter the session date"),  # never signed "today" instead
    ({"session_date": "2090-01-01"}, "session_date", "in the future"),
    ({"start_time": "10:00", "end_time": "13:30"}, "end_time", "still in the future"),  # it is 12:00
    ({"start_time": "12:30"}, "start_time", "still in the future"),
])
def test_sign_refuses_inconsistent_or_future_times_and_writes_nothing(engine, clinic, monkeypatch, changes, key,
                                                                      words):
    day = _noon_today(monkeypatch)
    with session_scope(engine) as s:
        note = notes.create_draft(s, clinic.tina, clinic.a1, "integration", session_date=day,
                                  start_time="09:00", fields=_integration_fields())
        nid = note.id
    before = _state(engine, nid)
    with pytest.raises(ValidationError) as exc, session_scope(engine) as s:
        notes.sign(s, clinic.tina, nid, before[1], **changes)
    assert words in exc.value.errors[key]
    assert _state(engine, nid) == before and before[0] == NoteStatus.draft
    with session_scope(engine) as s:  # the same note signs once the times are true
        notes.sign(s, clinic.tina, nid, before[1], start_time="10:00", end_time="11:45")


def test_dose_time_in_the_future_is_refused_at_the_field(engine, clinic, monkeypatch):
    day = _noon_today(monkeypatch)
    with session_scope(engine) as s:
        note = notes.create_draft(s, clinic.tina, clinic.a1, "dosing", session_date=day, start_time="11:00")
        nid = note.id
    before = _state(engine, nid)
    with pytest.raises(ValidationError) as exc, session_scope(engine) as s:
        notes.save_draft(s, clinic.tina, nid, before[1], fields={**DOSING_OK, "time_taken": "15:00"})
    assert "in the future" in exc.value.errors["time_taken"]
    assert _state(engine, nid) == before


def test_dose_without_any_time_is_not_logged_at_an_invented_time(engine, clinic):
    """No time taken and no start time: the dose waits for one (it used to be logged at 12:00)."""
    with session_scope(engine) as s:
        note = notes.create_draft(s, clinic.tina, clinic.a1, "dosing", session_date=TODAY, start_time=None)
        fields = {k: v for k, v in DOSING_OK.items() if k != "time_taken"}
        saved = notes.save_draft(s, clinic.tina, note.id, note.version, fields=fields)
        nid, version = saved.id, saved.version
    assert _state(engine, nid)[5] == 0
    with session_scope(engine) as s:
        notes.save_draft(s, clinic.tina, nid, version, fields={**fields, "time_taken": "09:40"})
    with session_scope(engine) as s:
        entry = s.exec(select(DoseEntry).where(DoseEntry.session_note_id == nid)).one()
        assert entry.taken_at.astimezone(get_settings().tz).strftime("%H:%M") == "09:40"


def test_create_draft_with_an_unreadable_date_is_refused_not_dated_today(engine, clinic):
    with session_scope(engine) as s:
        before = len(s.exec(select(SessionNote.id)).all())
    with pytest.raises(ValidationError) as exc, session_scope(engine) as s:
        notes.create_draft(s, clinic.tina, clinic.a1, "integration", session_date=None)
    assert "Enter the session date" in exc.value.errors["session_date"]
    with session_scope(engine) as s:
        assert len(s.exec(select(SessionNote.id)).all()) == before
        started = notes.create_draft(s, clinic.tina, clinic.a1, "integration")  # left out: starts today
        assert started.session_date == clock.local_today()
