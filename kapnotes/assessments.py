"""GAD-7 and PHQ-9 measures: record (item by item or a total), void, series.

Totals, bands and LOINC codes come from ``kapnotes.scales``; nobody types a total that
items could compute. A PHQ-9 with item 9 > 0 raises the safety flag
(``patients.safety_flags`` reads the latest PHQ-9) and an audit event
``safety.flag_raised``; a newer PHQ-9 answering 0 clears it (``safety.flag_cleared``).
A PHQ-9 given as a total must still answer item 9, so the flag never clears by omission.
"""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
from sqlmodel import Session, col, select

from kapnotes import audit, events, scales
from kapnotes.access import require_patient, require_record
from kapnotes.actor import Actor
from kapnotes.config import get_settings
from kapnotes.errors import ValidationError
from kapnotes.models import Assessment, Instrument
from kapnotes.patients import safety_flags
from kapnotes.query import not_voided
from kapnotes.timeutil import utcnow

EARLIEST = date(2000, 1, 1)


def _today() -> date:
    return utcnow().astimezone(get_settings().tz).date()


def record_assessment(
    session: Session,
    actor: Actor,
    patient_id: int,
    instrument: str,
    administered_on: date,
    items: list[int] | None = None,
    total: int | None = None,
    item9: int | None = None,
    session_note_id: int | None = None,
) -> Assessment:
    """Score and store one GAD-7 or PHQ-9. ``item9`` is for a PHQ-9 given as a total only."""
    require_patient(session, actor, patient_id)
    errors: dict[str, str] = {}
    if not isinstance(administered_on, date):  # never defaulted: an unreadable date is refused, not "today"
        errors["administered_on"] = "Enter the date the questionnaire was answered."
    elif isinstance(administered_on, datetime):
        errors["administered_on"] = "Give the date only, without a time."
    elif administered_on > _today():  # the clinic's today: a score cannot be answered tomorrow
        errors["administered_on"] = (f"{administered_on.isoformat()} is after today; enter the date the "
                                     "questionnaire was answered.")
    elif administered_on < EARLIEST:
        errors["administered_on"] = f"Date {administered_on.isoformat()} is before 2000."
    if errors:
        raise ValidationError(errors)
    result = scales.score(instrument, items=items, total=total)
    flag_item = result.item9
    if instrument == Instrument.phq9.value and items is None:
        scales.check_item9_with_total(item9, result.total)
        flag_item = item9
    elif item9 is not None and items is not None and instrument == Instrument.phq9.value and item9 != items[8]:
        raise ValidationError({"item9": "Item 9 differs from the ninth item answer."})
    was_flagged = "suicidality" in safety_flags(session, [patient_id]).get(patient_id, [])
    row = Assessment(
        patient_id=patient_id,
        instrument=result.instrument,
        administered_on=administered_on,
        items=result.items,
        total=result.total,
        band=result.band,
        item9=flag_item,
        loinc_panel=result.loinc_panel,
        loinc_total=result.loinc_total,
        session_note_id=session_note_id,
        entered_by_id=actor.id,
    )
    session.add(row)
    session.flush()
    audit.record(session, actor, "assessment.add", "assessment", row.id, patient_id,
                 detail=f"instrument={result.instrument} by={'items' if items is not None else 'total'}")
    _audit_flag_change(session, actor, patient_id, row.id, was_flagged)
    events.emit(session, "assessment.changed", actor, patient_id=patient_id, assessment_id=row.id)
    return row


def _audit_flag_change(session: Session, actor: Actor, patient_id: int, assessment_id: int, was: bool) -> None:
    now = "suicidality" in safety_flags(session, [patient_id]).get(patient_id, [])
    if now and not was:
        audit.record(session, actor, "safety.flag_raised", "assessment", assessment_id, patient_id,
                     detail="flag=suicidality")
    elif was and not now:
        audit.record(session, actor, "safety.flag_cleared", "assessment", assessment_id, patient_id,
                     detail="flag=suicidality")
    elif now:  # still flagged, and this PHQ-9 itself says item 9 > 0: record it too
        row = session.get(Assessment, assessment_id)
        if row is not None and row.instrument == Instrument.phq9.value and row.item9 and row.voided_at is None:
            audit.record(session, actor, "safety.flag_raised", "assessment", assessment_id, patient_id,
                         detail="flag=suicidality repeat")


def void_assessment(session: Session, actor: Actor, assessment_id: int, reason: str) -> Assessment:
    row = require_record(session, actor, Assessment, assessment_id)
    if not (reason or "").strip():
        raise ValidationError({"reason": "Give the reason for voiding this score."})
    if row.voided_at is not None:
        raise ValidationError({"_": "This score is already voided."})
    was_flagged = "suicidality" in safety_flags(session, [row.patient_id]).get(row.patient_id, [])
    row.voided_at = utcnow()
    row.voided_by_id = actor.id
    row.void_reason = reason.strip()
    session.add(row)
    session.flush()
    audit.record(session, actor, "assessment.void", "assessment", row.id, row.patient_id)
    now = "suicidality" in safety_flags(session, [row.patient_id]).get(row.patient_id, [])
    if was_flagged != now:
        audit.record(session, actor, "safety.flag_raised" if now else "safety.flag_cleared", "assessment",
                     row.id, row.patient_id, detail="flag=suicidality after void")
    events.emit(session, "assessment.changed", actor, patient_id=row.patient_id, assessment_id=row.id)
    return row


SERIES_COLUMNS = ("id", "instrument", "administered_on", "total", "band", "item9", "items", "loinc_total",
                  "voided_at", "void_reason")


def assessment_frame(session: Session, patient_id: int, instrument: str | None = None,
                     include_voided: bool = False) -> pd.DataFrame:
    """One query; oldest first. No access check: callers check."""
    q = select(*[getattr(Assessment, c) for c in SERIES_COLUMNS]).where(Assessment.patient_id == patient_id)
    if instrument:
        q = q.where(Assessment.instrument == instrument)
    if not include_voided:
        q = q.where(not_voided(Assessment))
    rows = session.exec(q.order_by(col(Assessment.administered_on), col(Assessment.id))).all()
    frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=list(SERIES_COLUMNS))
    frame["administered_on"] = pd.to_datetime(frame["administered_on"])
    return frame


def series(session: Session, actor: Actor, patient_id: int, instrument: str | None = None,
           include_voided: bool = False) -> pd.DataFrame:
    require_patient(session, actor, patient_id)
    return assessment_frame(session, patient_id, instrument, include_voided)
