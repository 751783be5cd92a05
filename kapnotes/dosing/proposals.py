"""What a therapist puts to the prescriber: sending an engine suggestion, a proposal of their
own (from the Proposals page or an integration note), and taking it back.

A proposal goes straight to the prescriber's queue, with the facts key of the record it was
made on (so a later change to the record shows it stale).
"""

from __future__ import annotations

from sqlmodel import Session, select

from kapnotes import audit, vocab
from kapnotes.access import require_patient, require_role
from kapnotes.actor import Actor
from kapnotes.dosing import plans
from kapnotes.dosing.adjustments import INFORMATIONAL_ACTIONS, check_version, flush, get_adjustment, parse_number
from kapnotes.dosing.facts import facts_key
from kapnotes.dosing.plans import current_plan
from kapnotes.dosing.rules import DECREASE, mg, same_dose
from kapnotes.dosing.staleness import stale_reason
from kapnotes.errors import ConflictError, PermissionDenied, ValidationError
from kapnotes.models import (
    AdjustmentKind,
    AdjustmentStatus,
    DoseAdjustment,
    PlanStatus,
    Role,
    SessionNote,
    TreatmentPlan,
)
from kapnotes.timeutil import utcnow


def _send(session: Session, actor: Actor, row: DoseAdjustment, note: str = "") -> DoseAdjustment:
    if row.kind != AdjustmentKind.suggestion.value or row.status != AdjustmentStatus.open.value:
        raise ConflictError(f"This suggestion is already {row.status}; only an open suggestion can be sent.")
    if row.action in INFORMATIONAL_ACTIONS:
        raise ConflictError("This suggestion only informs (nothing would change); it cannot be sent for a decision.")
    stale = stale_reason(session, row)
    if stale:
        raise ConflictError(f"{stale} Re-run the rules to bring the suggestion up to date.")
    row.status = AdjustmentStatus.pending.value
    row.sent_by_id, row.sent_at = actor.id, utcnow()
    row.therapist_note = (note or "").strip() or None
    session.add(row)
    flush(session)
    audit.record(session, actor, "adjustment.send", "dose_adjustment", row.id, row.patient_id,
                 detail=f"action={row.action} role={actor.role}")
    return row


def send_to_prescriber(session: Session, actor: Actor, adjustment_id: int, expected_version: int | None = None,
                       note: str = "") -> DoseAdjustment:
    """A therapist sends an open increase or space-out suggestion to the prescriber's queue."""
    require_role(actor, Role.therapist.value)
    row = get_adjustment(session, actor, adjustment_id)
    check_version(row, expected_version)
    return _send(session, actor, row, note)


def take_to_review(session: Session, actor: Actor, adjustment_id: int,
                   expected_version: int | None = None) -> DoseAdjustment:
    """A prescriber puts an open increase or space-out suggestion in their own queue."""
    require_role(actor, Role.prescriber.value)
    row = get_adjustment(session, actor, adjustment_id)
    require_patient(session, actor, row.patient_id, Role.prescriber.value)
    check_version(row, expected_version)
    return _send(session, actor, row)


def _proposal_action(plan: TreatmentPlan, dose: float, interval: int) -> str:
    if not same_dose(dose, plan.dose_mg):
        if interval != plan.interval_days:
            return "change"
        return "increase" if dose > plan.dose_mg else DECREASE
    if interval != plan.interval_days:
        return "space_out" if interval > plan.interval_days else "shorten_interval"
    return "continue"


def _create_proposal(session: Session, actor: Actor | None, patient_id: int, dose_mg, interval_days, reason: str,
                     source_note_id: int | None = None, field_prefix: str = "") -> DoseAdjustment:
    errors: dict[str, str] = {}
    f_dose, f_interval, f_reason = (f"{field_prefix}dose_mg", f"{field_prefix}interval_days", f"{field_prefix}reason")
    dose = parse_number(dose_mg, f_dose, False, errors)
    interval = parse_number(interval_days, f_interval, True, errors)
    if dose is not None and not (0 < dose <= plans.MAX_DOSE_MG):
        errors[f_dose] = f"Dose must be above 0 and at most {plans.MAX_DOSE_MG} mg, got {dose_mg!r}."
    if interval is not None and not 1 <= interval <= 90:
        errors[f_interval] = f"Interval must be 1–90 days, got {interval_days!r}."
    if dose is None and interval is None and not errors:
        errors[f_dose] = "Propose a new dose, a new interval, or both."
    if not (reason or "").strip():
        errors[f_reason] = "Give the reason for the proposal."
    plan = current_plan(session, patient_id)
    if plan is None and not errors:
        errors[f_dose] = "The patient has no treatment plan yet; the prescriber sets the first one."
    if errors:
        raise ValidationError(errors)
    new_dose = dose if dose is not None else plan.dose_mg
    new_interval = interval if interval is not None else plan.interval_days
    action = _proposal_action(plan, new_dose, new_interval)
    if action == "continue" and plan.status == PlanStatus.active:
        current = f"{mg(plan.dose_mg)} {vocab.every(plan.interval_days)}"
        raise ValidationError({f_dose: f"That is the current plan ({current}); propose a different dose or interval."})
    now = utcnow()
    change = (f"{mg(plan.dose_mg)} {vocab.every(plan.interval_days)} \u2192 {mg(new_dose)} {vocab.every(new_interval)}")
    row = DoseAdjustment(
        patient_id=patient_id, kind=AdjustmentKind.proposal.value, status=AdjustmentStatus.pending.value,
        plan_id=plan.id, action=action, proposed_dose_mg=float(new_dose), proposed_interval_days=new_interval,
        flags=[], reasons=[{"code": "therapist_proposal", "text": f"Therapist's proposal: {change}."}],
        facts={"plan_version": plan.version_number, "plan_status": plan.status,
               "plan_dose_mg": plan.dose_mg, "plan_interval_days": plan.interval_days},
        as_of=now, created_by_id=actor.id if actor else None, created_at=now,
        therapist_note=reason.strip(), source_note_id=source_note_id,
        sent_by_id=actor.id if actor else None, sent_at=now, facts_key=facts_key(session, patient_id, plan),
    )
    session.add(row)
    flush(session)
    audit.record(session, actor, "adjustment.propose", "dose_adjustment", row.id, patient_id,
                 detail=f"action={action}" + (f" note={source_note_id}" if source_note_id else ""))
    return row


def propose(session: Session, actor: Actor, patient_id: int, dose_mg=None, interval_days=None, reason: str = "",
            source_note_id: int | None = None) -> DoseAdjustment:
    """A therapist's proposal (new dose and/or interval, with a reason) for the prescriber's queue."""
    require_role(actor, Role.therapist.value)
    require_patient(session, actor, patient_id, Role.therapist.value)
    return _create_proposal(session, actor, patient_id, dose_mg, interval_days, reason, source_note_id)


def withdraw(session: Session, actor: Actor, adjustment_id: int, expected_version: int | None = None) -> DoseAdjustment:
    """The therapist who sent an item takes it back before the prescriber decides."""
    require_role(actor, Role.therapist.value)
    row = get_adjustment(session, actor, adjustment_id)
    check_version(row, expected_version)
    if row.status != AdjustmentStatus.pending.value:
        raise ConflictError(f"This item is already {row.status}; only a pending item can be withdrawn.")
    if row.sent_by_id != actor.id:
        raise PermissionDenied("Only the therapist who sent it can withdraw this item.")
    row.status = AdjustmentStatus.withdrawn.value
    session.add(row)
    flush(session)
    audit.record(session, actor, "adjustment.withdraw", "dose_adjustment", row.id, row.patient_id)
    return row


def proposal_from_note(session: Session, actor: Actor | None, note_id: int, patient_id: int) -> None:
    """A signed integration note that proposes a dose or interval becomes a proposal (once per note)."""
    note = session.get(SessionNote, note_id)
    if note is None or note.note_type != "integration":
        return
    fields = note.fields or {}
    dose, interval = fields.get("proposal_dose_mg"), fields.get("proposal_interval_days")
    blank = lambda v: v is None or (isinstance(v, str) and not v.strip())  # noqa: E731
    if blank(dose) and blank(interval):
        return
    already = session.exec(select(DoseAdjustment.id).where(DoseAdjustment.source_note_id == note_id)).first()
    if already is not None:
        return
    _create_proposal(session, actor, patient_id, dose, interval, str(fields.get("proposal_reason") or ""),
                     source_note_id=note_id, field_prefix="proposal_")
