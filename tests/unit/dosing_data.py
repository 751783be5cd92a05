"""A patient's record for the dose-adjustment tests: doses and scores so many days ago, and a
healthy record on which no rule of 1–4 fires (shared by the unit and AppTest suites)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from sqlmodel import func, select

from kapnotes.config import get_settings
from kapnotes.models import Assessment, DoseEntry
from kapnotes.scales import score


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
    """A record on which no rule of 1–4 fires (old and new engine): weekly 150 mg doses with normal
    BP, mild effects, recent GAD-7 and PHQ-9 (item 9 = 0). A change toward more drug then needs
    no override when it stays on the protocol's steps and intervals."""
    for i in range(8):
        add_dose(session, clinic, pid, 7 * i + 1, nausea=0, dissociation=2, bp_systolic_pre=120, bp_diastolic_pre=78,
                 bp_systolic_post=124, bp_diastolic_post=80)
    add_assessment(session, clinic, pid, "GAD-7", 56, total=15)
    add_assessment(session, clinic, pid, "GAD-7", 2, total=14)
    add_assessment(session, clinic, pid, "PHQ-9", 56, items=[1, 1, 1, 1, 1, 1, 1, 1, 0])
    add_assessment(session, clinic, pid, "PHQ-9", 2, items=[1, 1, 1, 1, 1, 1, 1, 1, 0])


def count(session, model, *where) -> int:
    return session.exec(select(func.count()).select_from(model).where(*where)).one()
