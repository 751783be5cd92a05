"""Whether an open item still matches the record, and in plain words what changed if not.

An item records the facts key of the record it was made on (``facts.facts_key``); when the
plan or the record changed since, it is stale and cannot be approved as it stands.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, func, select

from kapnotes import doses as dose_log  # a module, not a name: kapnotes.doses imports this package
from kapnotes.config import get_settings
from kapnotes.dosing.adjustments import OPEN_STATES
from kapnotes.dosing.facts import facts_key
from kapnotes.dosing.plans import current_plan
from kapnotes.models import Assessment, DoseAdjustment, DoseEntry, TreatmentPlan


def _short_date(value) -> str:
    tz = get_settings().tz
    if isinstance(value, datetime):
        value = value.astimezone(tz).date()
    return f"{value.day} {value.strftime('%b %Y')}"


def is_stale(row: DoseAdjustment, plan: TreatmentPlan | None, key_now: str | None) -> bool:
    """An open or pending item made for another plan version or another state of the record."""
    if row.status not in OPEN_STATES:
        return False
    if plan is not None and row.plan_id is not None and row.plan_id != plan.id:
        return True
    return bool(row.facts_key and key_now and row.facts_key != key_now)


def stale_reason(session: Session, row: DoseAdjustment, plan: TreatmentPlan | None = None,
                 key_now: str | None = None) -> str | None:
    """In plain words, why an open or pending item no longer matches the record (None when it does).

    The plan and the facts key are read whatever the item's state, so a page costs the same
    number of statements for a decided item as for an open one (tests/unit/test_statement_count.py).
    """
    plan = plan if plan is not None else current_plan(session, row.patient_id)
    key_now = key_now or facts_key(session, row.patient_id, plan)
    if row.status not in OPEN_STATES:
        return None
    if plan is not None and row.plan_id is not None and row.plan_id != plan.id:
        return (f"The plan changed since this item was made (now version {plan.version_number}, "
                f"from {_short_date(plan.effective_from)}).")
    if not row.facts_key or row.facts_key == key_now:
        return None
    since = row.created_at
    what: list[str] = []
    new_doses = session.exec(select(DoseEntry.taken_at).where(
        DoseEntry.patient_id == row.patient_id, DoseEntry.created_at > since)
        .order_by(col(DoseEntry.taken_at).desc())).all()
    if new_doses:
        what.append(f"new dose on {_short_date(new_doses[0])}" if len(new_doses) == 1
                    else f"{len(new_doses)} new doses, the latest on {_short_date(new_doses[0])}")
    voided = session.exec(select(func.count()).select_from(DoseEntry).where(
        DoseEntry.patient_id == row.patient_id, DoseEntry.voided_at > since, dose_log.visible_filter())).one()
    if voided:
        what.append("a dose voided" if voided == 1 else f"{voided} doses voided")
    for inst, n in session.exec(select(Assessment.instrument, func.count()).where(
            Assessment.patient_id == row.patient_id, Assessment.created_at > since)
            .group_by(Assessment.instrument)).all():
        what.append(f"new {inst}" if n == 1 else f"{n} new {inst} scores")
    a_voided = session.exec(select(func.count()).select_from(Assessment).where(
        Assessment.patient_id == row.patient_id, Assessment.voided_at > since)).one()
    if a_voided:
        what.append("a score voided" if a_voided == 1 else f"{a_voided} scores voided")
    detail = "; ".join(what) or "an entry was edited"
    return f"The record changed since this item was made ({detail})."
