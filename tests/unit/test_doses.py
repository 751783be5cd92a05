"""Dose log service: validation, add/edit/void, signed-note lock, optimistic locking, adherence."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlmodel import select

from kapnotes import doses, events
from kapnotes.db import session_scope
from kapnotes.errors import ConflictError, PermissionDenied, ValidationError
from kapnotes.models import AuditEvent, DoseEntry, NoteStatus, SessionNote
from kapnotes.timeutil import utcnow


def _dose(**kw) -> doses.DoseInput:
    base = dict(taken_at=utcnow() - timedelta(days=1), dose_mg=150, formulation="odt", administration="spit",
                context="home", anxiety_before=6, anxiety_after=2, dissociation=5, nausea=1,
                bp_systolic_pre=120, bp_diastolic_pre=80, bp_systolic_post=130, bp_diastolic_post=85, heart_rate=70)
    base.update(kw)
    return doses.DoseInput(**base)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"dose_mg": 0}, "dose_mg"),
        ({"dose_mg": -5}, "dose_mg"),
        ({"dose_mg": 1000.5}, "dose_mg"),
        ({"dose_mg": None}, "dose_mg"),
        ({"formulation": "pill"}, "formulation"),
        ({"formulation": None}, "formulation"),
        ({"administration": "chewed"}, "administration"),
        ({"context": "car"}, "context"),
        ({"anxiety_before": 11}, "anxiety_before"),
        ({"anxiety_after": -1}, "anxiety_after"),
        ({"dissociation": 10.5}, "dissociation"),
        ({"nausea": 4}, "nausea"),
        ({"heart_rate": 10}, "heart_rate"),
        ({"bp_systolic_pre": 300}, "bp_systolic_pre"),
        ({"bp_diastolic_post": 20}, "bp_diastolic_post"),
        ({"bp_systolic_post": 90, "bp_diastolic_post": 90}, "bp_systolic_post"),
        ({"bp_systolic_pre": None}, "bp_systolic_pre"),
        ({"taken_at": utcnow() + timedelta(hours=6)}, "taken_at"),  # parametrised at collection: far enough ahead
        ({"taken_at": None}, "taken_at"),
        ({"taken_at": datetime(1999, 12, 31, 23, tzinfo=timezone.utc)}, "taken_at"),
        ({"taken_at": datetime(2026, 1, 1, 12)}, "taken_at"),  # naive
        ({"adverse_events": "chest pain!!"}, "adverse_events"),
    ],
)
def test_validate_refuses_bad_values_naming_the_field(changes, field):
    errors = doses.validate_dose(doses._clean(_dose(**changes)))
    assert field in errors, errors
    assert errors[field]


def test_validate_accepts_edges():
    ok = _dose(dose_mg=1000, anxiety_before=0, anxiety_after=10, nausea=3, heart_rate=30,
               bp_systolic_pre=260, bp_diastolic_pre=160, bp_systolic_post=61, bp_diastolic_post=60,
               taken_at=utcnow() + timedelta(minutes=4))  # clock skew only
    assert doses.validate_dose(ok) == {}
    assert doses.validate_dose(_dose(dose_mg=0.5, taken_at=datetime(2000, 1, 1, tzinfo=timezone.utc))) == {}


def test_add_dose_writes_audits_and_emits(engine, clinic, monkeypatch):
    seen = []
    monkeypatch.setattr(events, "LISTENER_MODULES", ("tests.unit.test_doses",))
    globals()["handle"] = lambda s, e, a, p: seen.append((e, p))
    with session_scope(engine) as s:
        entry = doses.add_dose(s, clinic.tina, clinic.a1, _dose(adverse_events="Dizziness; chest pain"))
    with session_scope(engine) as s:
        row = s.get(DoseEntry, entry.id)
        assert row.entered_by_id == clinic.tina.id and row.source == "manual"
        assert row.adverse_events == "dizziness;chest_pain"
        assert row.plan_id is not None  # linked to the plan in effect
        actions = s.exec(select(AuditEvent.action).where(AuditEvent.record_id == str(entry.id))).all()
        assert "dose.add" in actions
    assert seen == [("dose.changed", {"patient_id": clinic.a1, "dose_id": entry.id})]


def test_bad_dose_writes_nothing(engine, clinic):
    with pytest.raises(ValidationError) as exc, session_scope(engine) as s:
        doses.add_dose(s, clinic.tina, clinic.a1, _dose(dose_mg=1200))
    assert "dose_mg" in exc.value.errors
    with session_scope(engine) as s:
        assert s.exec(select(DoseEntry)).all() == []


def _count(engine) -> int:
    with session_scope(engine) as s:
        return len(s.exec(select(DoseEntry.id)).all())


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"taken_at": None}, "taken_at", "Enter when the dose was taken"),
    ({"taken_at": utcnow() + timedelta(minutes=30)}, "taken_at", "in the future"),
    ({"taken_at": utcnow() + timedelta(hours=20)}, "taken_at", "in the future"),
    ({"dose_mg": None}, "dose_mg", "Enter the dose"),
    ({"bp_systolic_pre": 300}, "bp_systolic_pre", "Blood pressure before the dose: systolic"),
])
def test_refused_dose_leaves_the_log_unchanged(engine, clinic, changes, field, words):
    with session_scope(engine) as s:
        doses.add_dose(s, clinic.tina, clinic.a1, _dose())
    before = _count(engine)
    with pytest.raises(ValidationError) as exc, session_scope(engine) as s:
        doses.add_dose(s, clinic.tina, clinic.a1, _dose(**changes))
    assert words in exc.value.errors[field]
    assert _count(engine) == before


def test_unusual_dose_needs_confirmation_then_is_recorded(engine, clinic):
    """900 mg on a 150 mg plan (ceiling 300): refused at the dose field, saved once confirmed."""
    before = _count(engine)
    with pytest.raises(doses.UnusualDose) as exc, session_scope(engine) as s:
        doses.add_dose(s, clinic.tina, clinic.a1, _dose(dose_mg=900))
    assert exc.value.errors == {"dose_mg": "900 mg is above the plan's 150 mg and the protocol's 300 mg ceiling. "
                                           "Check the number; if that is what was taken, confirm it."}
    assert _count(engine) == before
    with session_scope(engine) as s:
        entry = doses.add_dose(s, clinic.tina, clinic.a1, _dose(dose_mg=900), confirm_unusual_dose=True)
        dose_id = entry.id
    with session_scope(engine) as s:
        assert s.get(DoseEntry, dose_id).dose_mg == 900
        detail = s.exec(select(AuditEvent.detail).where(AuditEvent.action == "dose.add",
                                                        AuditEvent.record_id == str(dose_id))).one()
        assert "unusual_dose_confirmed" in detail
    assert _count(engine) == before + 1


def test_dose_above_plan_below_ceiling_also_asks(engine, clinic):
    with pytest.raises(doses.UnusualDose) as exc, session_scope(engine) as s:
        doses.add_dose(s, clinic.tina, clinic.a1, _dose(dose_mg=200))
    assert exc.value.errors["dose_mg"].startswith("200 mg is above the plan's 150 mg. Check the number")
    with session_scope(engine) as s:  # the plan's own dose, or less, needs nothing
        doses.add_dose(s, clinic.tina, clinic.a1, _dose(dose_mg=150))
        doses.add_dose(s, clinic.tina, clinic.a1, _dose(dose_mg=100, taken_at=utcnow() - timedelta(days=2)))


def test_edit_to_unusual_dose_needs_confirmation(engine, clinic):
    when = utcnow().replace(microsecond=0) - timedelta(days=1)
    with session_scope(engine) as s:
        entry = doses.add_dose(s, clinic.tina, clinic.a1, _dose(taken_at=when))
        dose_id, v1 = entry.id, entry.version
    with pytest.raises(doses.UnusualDose), session_scope(engine) as s:
        doses.edit_dose(s, clinic.tina, dose_id, _dose(taken_at=when, dose_mg=900), expected_version=v1)
    with session_scope(engine) as s:
        assert s.get(DoseEntry, dose_id).dose_mg == 150 and s.get(DoseEntry, dose_id).version == v1
    with session_scope(engine) as s:
        doses.edit_dose(s, clinic.tina, dose_id, _dose(taken_at=when, dose_mg=900), expected_version=v1,
                        confirm_unusual_dose=True)
    with session_scope(engine) as s:
        row = s.get(DoseEntry, dose_id)
        assert row.dose_mg == 900
        v2 = row.version
    with session_scope(engine) as s:  # a later change of the notes alone does not ask again
        doses.edit_dose(s, clinic.tina, dose_id, _dose(taken_at=when, dose_mg=900, notes="vomited later"),
                        expected_version=v2)


def test_other_team_cannot_add_or_read(engine, clinic):
    with session_scope(engine) as s:
        with pytest.raises(PermissionDenied):
            doses.add_dose(s, clinic.theo, clinic.a1, _dose())
        with pytest.raises(PermissionDenied):
            doses.list_doses(s, clinic.theo, clinic.a1)
        with pytest.raises(PermissionDenied):
            doses.list_doses(s, clinic.ada, clinic.a1)


def test_edit_then_conflict_on_stale_version(engine, clinic):
    with session_scope(engine) as s:
        entry = doses.add_dose(s, clinic.tina, clinic.a1, _dose())
        dose_id, v1 = entry.id, entry.version
    with session_scope(engine) as s:
        doses.edit_dose(s, clinic.paul, dose_id, _dose(dose_mg=100), expected_version=v1)
    with pytest.raises(ConflictError), session_scope(engine) as s:
        doses.edit_dose(s, clinic.tina, dose_id, _dose(dose_mg=200), expected_version=v1)
    with session_scope(engine) as s:
        row = s.get(DoseEntry, dose_id)
        assert row.dose_mg == 100 and row.version == v1 + 1


def test_concurrent_stale_flush_becomes_conflict(engine, clinic):
    """Two editors: the second one's UPDATE finds a newer version and gets ConflictError."""
    from sqlmodel import Session

    with session_scope(engine) as s:
        dose_id = doses.add_dose(s, clinic.tina, clinic.a1, _dose()).id
    first = Session(engine, expire_on_commit=False)
    stale = first.get(DoseEntry, dose_id)  # held: the identity map keeps the stale copy
    assert stale.version == 1
    first.commit()  # the transaction ends; the object stays loaded at version 1
    with session_scope(engine) as s:
        doses.edit_dose(s, clinic.paul, dose_id, _dose(dose_mg=100))
    with pytest.raises(ConflictError):
        doses.edit_dose(first, clinic.tina, dose_id, _dose(dose_mg=50))
    first.rollback()
    first.close()
    with session_scope(engine) as s:
        assert s.get(DoseEntry, dose_id).dose_mg == 100


def test_void_needs_reason_and_never_deletes(engine, clinic):
    with session_scope(engine) as s:
        dose_id = doses.add_dose(s, clinic.tina, clinic.a1, _dose()).id
    with pytest.raises(ValidationError), session_scope(engine) as s:
        doses.void_dose(s, clinic.tina, dose_id, "  ")
    with session_scope(engine) as s:
        doses.void_dose(s, clinic.tina, dose_id, "Entered twice")
    with session_scope(engine) as s:
        row = s.get(DoseEntry, dose_id)
        assert row.voided_at is not None and row.void_reason == "Entered twice"
        assert doses.list_doses(s, clinic.tina, clinic.a1).empty
        assert len(doses.list_doses(s, clinic.tina, clinic.a1, doses.DoseFilter(include_voided=True))) == 1
        assert "dose.void" in s.exec(select(AuditEvent.action)).all()
    with pytest.raises(ValidationError), session_scope(engine) as s:
        doses.edit_dose(s, clinic.tina, dose_id, _dose(dose_mg=100))


def _note(s, clinic, status):
    note = SessionNote(patient_id=clinic.a1, author_id=clinic.tina.id, note_type="dosing", status=status,
                       session_date=date.today(), fields={})
    if status == NoteStatus.signed:
        note.signed_at = utcnow()
        note.signed_by_id = clinic.tina.id
        note.content_hash = "0" * 64
    s.add(note)
    s.flush()
    return note.id


def test_entry_used_by_signed_note_is_locked(engine, clinic):
    with session_scope(engine) as s:
        signed = _note(s, clinic, NoteStatus.signed)
        draft = _note(s, clinic, NoteStatus.draft)
        locked = doses.add_dose(s, clinic.tina, clinic.a1, _dose(), source="session", session_note_id=signed).id
        open_ = doses.add_dose(s, clinic.tina, clinic.a1, _dose(dose_mg=100), source="session",
                               session_note_id=draft).id
    with pytest.raises(ValidationError, match="signed session note"), session_scope(engine) as s:
        doses.edit_dose(s, clinic.tina, locked, _dose(dose_mg=10))
    with pytest.raises(ValidationError, match="signed session note"), session_scope(engine) as s:
        doses.void_dose(s, clinic.tina, locked, "wrong")
    with session_scope(engine) as s:
        doses.edit_dose(s, clinic.tina, open_, _dose(dose_mg=125))
        assert s.get(DoseEntry, locked).dose_mg == 150


def test_filters(engine, clinic):
    now = utcnow()
    with session_scope(engine) as s:
        doses.add_dose(s, clinic.tina, clinic.a1, _dose(taken_at=now - timedelta(days=20)))
        doses.add_dose(s, clinic.tina, clinic.a1, _dose(taken_at=now - timedelta(days=10), context="in_session"))
        doses.add_dose(s, clinic.tina, clinic.a1, _dose(taken_at=now - timedelta(days=3), adverse_events="headache"))
        doses.add_dose(s, clinic.tina, clinic.a2, _dose(taken_at=now - timedelta(days=3)))
    with session_scope(engine) as s:
        all_ = doses.list_doses(s, clinic.tina, clinic.a1)
        assert len(all_) == 3 and list(all_["taken_at"]) == sorted(all_["taken_at"], reverse=True)
        recent = doses.list_doses(s, clinic.tina, clinic.a1,
                                  doses.DoseFilter(date_from=(now - timedelta(days=12)).date()))
        assert len(recent) == 2
        old = doses.list_doses(s, clinic.tina, clinic.a1, doses.DoseFilter(date_to=(now - timedelta(days=15)).date()))
        assert len(old) == 1
        assert list(doses.list_doses(s, clinic.tina, clinic.a1,
                                     doses.DoseFilter(contexts=("in_session",)))["context"]) \
            == ["in_session"]
        assert list(doses.list_doses(s, clinic.tina, clinic.a1,
                                     doses.DoseFilter(adverse_only=True))["adverse_events"]) \
            == ["headache"]
        newest = doses.list_doses(s, clinic.tina, clinic.a1, doses.DoseFilter(limit=2))
        assert list(newest["id"]) == list(all_["id"][:2])  # the newest two, in SQL


def test_adherence_planned_vs_taken(engine, clinic):
    # make_clinic: 150 mg every 7 days since 60 days ago → 8 planned.
    now = utcnow()
    with session_scope(engine) as s:
        for k in range(6):
            doses.add_dose(s, clinic.tina, clinic.a1, _dose(taken_at=now - timedelta(days=2 + 7 * k)))
        doses.add_dose(s, clinic.tina, clinic.a1, _dose(taken_at=now - timedelta(days=90)))  # before the plan
    with session_scope(engine) as s:
        adh = doses.adherence(s, clinic.tina, clinic.a1, as_of=now)
        assert (adh.planned, adh.taken) == (8, 6)
        assert adh.ratio == pytest.approx(0.75)
        last28 = doses.adherence(s, clinic.tina, clinic.a1, as_of=now, window_days=28)
        assert (last28.planned, last28.taken) == (4, 4)
        assert "6 of 8 planned doses" in adh.describe()
        assert doses.adherence(s, clinic.tina, clinic.a2, as_of=now).taken == 0


def test_same_dose_same_time_is_refused_as_a_duplicate(engine, clinic):
    t = utcnow().replace(microsecond=0) - timedelta(hours=5)
    with session_scope(engine) as s:
        first = doses.add_dose(s, clinic.tina, clinic.a1, _dose(taken_at=t)).id
    with pytest.raises(ValidationError) as exc, session_scope(engine) as s:
        doses.add_dose(s, clinic.tina, clinic.a1, _dose(taken_at=t + timedelta(microseconds=5)))
    assert "already in the log; edit that entry" in exc.value.errors["taken_at"]
    assert f"entry {first}" not in str(exc.value)  # no record id in what a clinician reads
    with session_scope(engine) as s:
        doses.add_dose(s, clinic.tina, clinic.a1, _dose(taken_at=t, dose_mg=100))  # another dose: fine
        doses.add_dose(s, clinic.tina, clinic.a2, _dose(taken_at=t))  # another patient: fine
        doses.void_dose(s, clinic.tina, first, "wrong")
        doses.add_dose(s, clinic.tina, clinic.a1, _dose(taken_at=t))  # the voided one does not count
    with session_scope(engine) as s:
        assert len(doses.list_doses(s, clinic.tina, clinic.a1)) == 2


def test_adherence_in_sql_matches_the_dashboards_frame_rule(engine, clinic):
    """``adherences`` (SQL counts, the dose log) and ``adherence_from`` (the dashboard's loaded
    frame) count the same doses: window edges, voided entries and doses before the plan."""
    import pandas as pd

    from kapnotes.dosing.plans import current_plan

    now = utcnow()
    with session_scope(engine) as s:
        for days in (0.5, 3, 27.9, 28.1, 40, 59, 75):
            doses.add_dose(s, clinic.tina, clinic.a1, _dose(taken_at=now - timedelta(days=days)))
        voided = doses.add_dose(s, clinic.tina, clinic.a1, _dose(taken_at=now - timedelta(days=10))).id
    with session_scope(engine) as s:
        doses.void_dose(s, clinic.tina, voided, "entered twice")
    with session_scope(engine) as s:
        since_plan, last28, last7 = doses.adherences(s, clinic.tina, clinic.a1, (None, 28, 7), as_of=now)
        assert (since_plan.taken, last28.taken, last7.taken) == (6, 3, 2)
        plan = current_plan(s, clinic.a1)
        frame = doses.list_doses(s, clinic.tina, clinic.a1, doses.DoseFilter())
        times = pd.Series(list(frame["taken_at"]))
        for window, got in ((None, since_plan), (28, last28), (7, last7)):
            expected = doses.adherence_from(plan, times, now, window)
            assert (got.planned, got.taken, got.window_days) == (expected.planned, expected.taken,
                                                                 expected.window_days)
        assert doses.adherences(s, clinic.tina, clinic.a2, (None, 28), as_of=now)[1].taken == 0


def test_adherence_reads_naturally_for_a_daily_plan(engine, clinic):
    now = utcnow()
    with session_scope(engine) as s:
        adh = doses.adherence(s, clinic.tina, clinic.a1, as_of=now)
    daily = doses.Adherence(adh.plan_id, 100.0, 1, adh.window_start, now, 28, 27, 28)
    assert daily.describe().endswith("at 100 mg every day")
    assert adh.describe().endswith("every 7 days")


def test_a_broken_clinic_protocol_still_checks_against_the_bundled_ceiling(engine, clinic, tmp_path):
    from kapnotes.dosing import protocol
    from kapnotes.models import ClinicSetting

    bad = tmp_path / "bad.toml"
    bad.write_text(protocol.DEFAULT_PATH.read_text().replace("ceiling_mg = 300 ", "ceiling_mg = 'x' "))
    with session_scope(engine) as s:
        s.add(ClinicSetting(key=protocol.SETTING_KEY, value={"path": str(bad)}))
    with session_scope(engine) as s:
        doses.add_dose(s, clinic.tina, clinic.a1, _dose())  # documenting is never blocked
    with pytest.raises(doses.UnusualDose) as exc, session_scope(engine) as s:
        doses.add_dose(s, clinic.tina, clinic.a1, _dose(dose_mg=900, taken_at=utcnow() - timedelta(days=2)))
    assert "the protocol's 300 mg ceiling" in exc.value.errors["dose_mg"]
