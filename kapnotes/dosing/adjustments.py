"""A dose-adjustment item (``DoseAdjustment``): its states, reading one, saving one safely.

The small pieces every step of the lifecycle (loop, proposals, queue, decisions) shares, so
each state name and each conflict message has one home.
"""

from __future__ import annotations

from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, col, select

from kapnotes.access import require_patient, require_record
from kapnotes.actor import Actor
from kapnotes.dosing.rules import CONTINUE, DECREASE, HOLD, INCREASE, INSUFFICIENT, REVIEW, SPACE_OUT
from kapnotes.errors import ConflictError
from kapnotes.models import AdjustmentKind, AdjustmentStatus, DoseAdjustment, User

DECISIONS = ("approve", "modify", "reject")
OPEN_STATES = (AdjustmentStatus.open.value, AdjustmentStatus.pending.value)
DECIDED_STATES = (AdjustmentStatus.approved.value, AdjustmentStatus.modified.value, AdjustmentStatus.rejected.value)
PLAN_CHANGING_ACTIONS = ("increase", "decrease", "space_out", "shorten_interval", "change", HOLD)

URGENT_ACTIONS = (HOLD, DECREASE, REVIEW)  # reach the prescriber's queue at once, nobody forwarding them
SENDABLE_ACTIONS = (INCREASE, SPACE_OUT)  # wait for a therapist or prescriber to send them
INFORMATIONAL_ACTIONS = (CONTINUE, INSUFFICIENT)  # nothing to decide: never sent


def flush(session: Session, what: str = "This item") -> None:
    """Write now; a concurrent change to the same item (optimistic locking) is a ``ConflictError``."""
    try:
        session.flush()
    except StaleDataError:
        raise ConflictError(f"{what} was changed by someone else just now; nothing was saved. "
                            "Reload to see the latest version.") from None


def check_version(row: DoseAdjustment, expected_version: int | None) -> None:
    """The item is still the version the user saw, or nothing is saved."""
    if expected_version is not None and row.version != expected_version:
        raise ConflictError("This item was changed by someone else since you opened it; nothing was saved. "
                            "Reload to see the latest version.")


def parse_number(value, field_name: str, integer: bool, errors: dict):
    """A typed dose or interval as a number (None when blank); a bad one is noted under its field."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        errors[field_name] = f"Must be a number, got {value!r}."
        return None
    if integer:
        if not number.is_integer():
            errors[field_name] = f"Must be a whole number of days, got {value!r}."
            return None
        return int(number)
    return number


def get_adjustment(session: Session, actor: Actor, adjustment_id: int) -> DoseAdjustment:
    return require_record(session, actor, DoseAdjustment, adjustment_id)


def latest_suggestion(session: Session, actor: Actor, patient_id: int) -> DoseAdjustment | None:
    """The newest engine suggestion for the patient (open, sent or decided; not superseded)."""
    require_patient(session, actor, patient_id)
    return session.exec(
        select(DoseAdjustment)
        .where(DoseAdjustment.patient_id == patient_id, DoseAdjustment.kind == AdjustmentKind.suggestion.value,
               DoseAdjustment.status != AdjustmentStatus.superseded.value)
        .order_by(col(DoseAdjustment.id).desc())
    ).first()


def latest_decision(session: Session, actor: Actor, patient_id: int) -> DoseAdjustment | None:
    require_patient(session, actor, patient_id)
    return session.exec(
        select(DoseAdjustment)
        .where(DoseAdjustment.patient_id == patient_id, col(DoseAdjustment.status).in_(DECIDED_STATES))
        .order_by(col(DoseAdjustment.decided_at).desc(), col(DoseAdjustment.id).desc())
    ).first()


def patient_adjustments(session: Session, actor: Actor, patient_id: int, limit: int = 30) -> list[DoseAdjustment]:
    """Sent suggestions and proposals of the patient, newest first (for the therapist's page)."""
    require_patient(session, actor, patient_id)
    return list(session.exec(
        select(DoseAdjustment)
        .where(DoseAdjustment.patient_id == patient_id,
               col(DoseAdjustment.status).notin_([AdjustmentStatus.open.value, AdjustmentStatus.superseded.value]))
        .order_by(col(DoseAdjustment.id).desc()).limit(limit)
    ).all())


def user_names(session: Session, ids) -> dict[int, str]:
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    rows = session.exec(select(User.id, User.full_name, User.credentials).where(col(User.id).in_(ids))).all()
    return {i: (f"{n}, {c}" if c else n) for i, n, c in rows}
