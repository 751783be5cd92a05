"""Clinical histories written for a test: what a page or service then has to show or judge."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from sqlmodel import func, select

from kapnotes import assessments, doses
from kapnotes.config import get_settings
from kapnotes.db import session_scope
from kapnotes.models import Assessment, DoseEntry, NoteStatus, SessionNote
from kapnotes.scales import score
from kapnotes.timeutil import utcnow


def today() -> date:
    return datetime.now(timezone.utc).astimezone(get_settings().tz).date()


def at_day(days_ago: int, hour: int = 12) -> datetime:
    return datetime.combine(today() - timedelta(days=days_ago), time(hour), get_settings().tz)


def add_dose(session, clinic, pid, days_ago, mg=150, **kw) -> DoseEntry:
    row = DoseEntry(patient_id=pid, taken_at=at_day(days_ago), dose_mg=mg, formulation="odt",
                    entered_by_id=clinic.tina.id, **kw)
    session.add(row)
    session.flush()
    return row


def add_assessment(session, clinic, pid, instrument, days_ago, items=None, total=None) -> Assessment:
    s = score(instrument, items=items, total=total)
    row = Assessment(patient_id=pid, instrument=instrument, administered_on=today() - timedelta(days=days_ago),
                     items=s.items, total=s.total, band=s.band, item9=s.item9, loinc_panel=s.loinc_panel,
                     loinc_total=s.loinc_total, entered_by_id=clinic.tina.id)
    session.add(row)
    session.flush()
    return row


def healthy(session, clinic, pid):
    """A record on which no safety rule fires: weekly 150 mg doses with normal BP, mild effects,
    recent GAD-7 and PHQ-9 (item 9 = 0). A change toward more drug then needs no override when it
    stays on the protocol's steps and intervals."""
    for i in range(8):
        add_dose(session, clinic, pid, 7 * i + 1, nausea=0, dissociation=2, bp_systolic_pre=120, bp_diastolic_pre=78,
                 bp_systolic_post=124, bp_diastolic_post=80)
    add_assessment(session, clinic, pid, "GAD-7", 56, total=15)
    add_assessment(session, clinic, pid, "GAD-7", 2, total=14)
    add_assessment(session, clinic, pid, "PHQ-9", 56, items=[1, 1, 1, 1, 1, 1, 1, 1, 0])
    add_assessment(session, clinic, pid, "PHQ-9", 2, items=[1, 1, 1, 1, 1, 1, 1, 1, 0])


def count(session, model, *where) -> int:
    return session.exec(select(func.count()).select_from(model).where(*where)).one()


def add_history(engine, clinic):
    """Six weekly doses with vitals, three GAD-7 scores and a signed integration note for patient A1:
    enough for every dashboard chart."""
    now = utcnow()
    today_ = assessments._today()  # the clinic's today: a later date is refused
    with session_scope(engine) as s:
        for k in range(6):
            doses.add_dose(s, clinic.tina, clinic.a1, doses.DoseInput(
                taken_at=now - timedelta(days=1 + 7 * k), dose_mg=150, formulation="odt", anxiety_before=6,
                anxiety_after=2, dissociation=4, nausea=1, bp_systolic_pre=120, bp_diastolic_pre=80,
                bp_systolic_post=135, bp_diastolic_post=88))
        for days_ago, total in ((42, 15), (14, 10), (0, 6)):
            assessments.record_assessment(s, clinic.tina, clinic.a1, "GAD-7", today_ - timedelta(days=days_ago),
                                          total=total)
        s.add(SessionNote(patient_id=clinic.a1, author_id=clinic.tina.id, note_type="integration",
                          status=NoteStatus.signed, session_date=today_ - timedelta(days=2),
                          fields={"homework": "Breathing practice <b>twice</b> daily", "plan": "Next dose Friday"}))
