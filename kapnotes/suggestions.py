"""Dose adjustments: engine suggestions, therapist proposals and the prescriber's review.

Lifecycle of a ``DoseAdjustment``:
- the engine runs for a patient whenever a dose, assessment or signed note changes its
  inputs (``handle``), storing a ``suggestion`` with status ``open``; a newer, different
  result supersedes the open one;
- a therapist sends a suggestion to the prescriber, or writes a ``proposal`` (also from
  an integration note's proposal fields): status ``pending``;
- the prescriber's review queue lists pending items of their patients, most urgent first;
- the prescriber approves, modifies (rationale required) or rejects (rationale required);
  an approval or modification that changes the plan appends the next plan version via
  ``plans.new_plan_version(..., adjustment_id=...)``, naming the prescriber.

Only a prescriber can change a plan (``decide``, ``set_plan_status``, and
``plans.new_plan_version`` itself check it). Two prescribers deciding the same item at
once: ``DoseAdjustment.version`` (optimistic locking) lets exactly one win; the other
gets ``ConflictError``. Every change and every cross-patient read is audited, with ids
and codes only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, time
from typing import Any

from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, col, func, select

from kapnotes import audit, plans
from kapnotes import protocol as protocol_mod
from kapnotes.access import require_patient, require_role, visible_patient_ids
from kapnotes.auth import Actor
from kapnotes.config import get_settings
from kapnotes.db import lock_for_append
from kapnotes.engine import (
    DECREASE,
    HOLD,
    HOLD_FLAGS,
    AssessmentFacts,
    DoseFacts,
    PlanFacts,
    Suggestion,
    mg,
    same_dose,
    suggest,
)
from kapnotes.errors import ConflictError, KapError, NotFound, PermissionDenied, ValidationError
from kapnotes.models import (
    AdjustmentKind,
    AdjustmentStatus,
    Assessment,
    DoseAdjustment,
    DoseEntry,
    Instrument,
    Patient,
    PlanStatus,
    Role,
    SessionNote,
    TreatmentPlan,
    User,
)
from kapnotes.plans import PlanInput, current_plan
from kapnotes.timeutil import utcnow

log = logging.getLogger(__name__)

DECISIONS = ("approve", "modify", "reject")
OPEN_STATES = (AdjustmentStatus.open.value, AdjustmentStatus.pending.value)
DECIDED_STATES = (AdjustmentStatus.approved.value, AdjustmentStatus.modified.value, AdjustmentStatus.rejected.value)
PLAN_CHANGING_ACTIONS = ("increase", "decrease", "space_out", "shorten_interval", "change", HOLD)


# --- running the engine on the database ---------------------------------------------------------


def _today(tz) -> date:
    return utcnow().astimezone(tz).date()


def engine_inputs(session: Session, patient_id: int, plan: TreatmentPlan, as_of: date, tz=None):
    """The plan, doses and assessments the engine needs, as plain facts (non-voided rows only)."""
    tz = tz or get_settings().tz
    end = datetime.combine(as_of + timedelta(days=1), time(), tz)
    eff_local = plan.effective_from.astimezone(tz)
    # since the plan took effect (doses at the current dose) and the adherence/hold windows;
    # the engine applies the exact windows
    since = min(datetime.combine(eff_local.date(), time(), tz), end - timedelta(days=32))
    base = select(DoseEntry).where(DoseEntry.patient_id == patient_id, col(DoseEntry.voided_at).is_(None),
                                   DoseEntry.taken_at < end)
    rows = {d.id: d for d in session.exec(base.where(DoseEntry.taken_at >= since)).all()}
    # the last doses before that window still count for the decrease rule
    for d in session.exec(base.order_by(col(DoseEntry.taken_at).desc()).limit(10)).all():
        rows.setdefault(d.id, d)
    doses = [
        DoseFacts(
            taken_at=d.taken_at.astimezone(tz), dose_mg=d.dose_mg, vomited=bool(d.vomited), nausea=d.nausea,
            bp_systolic_pre=d.bp_systolic_pre, bp_diastolic_pre=d.bp_diastolic_pre,
            bp_systolic_post=d.bp_systolic_post, bp_diastolic_post=d.bp_diastolic_post,
            adverse_events=tuple(t for t in (d.adverse_events or "").split(";") if t.strip()),
        )
        for d in sorted(rows.values(), key=lambda d: (d.taken_at, d.id))
    ]
    assessments = [
        AssessmentFacts(a.instrument, a.administered_on, a.total,
                        tuple(a.items) if a.items else None, a.item9)
        for a in session.exec(
            select(Assessment)
            .where(Assessment.patient_id == patient_id, col(Assessment.voided_at).is_(None),
                   col(Assessment.instrument).in_([Instrument.gad7.value, Instrument.phq9.value]),
                   Assessment.administered_on <= as_of)
            .order_by(col(Assessment.administered_on), col(Assessment.id))
        ).all()
    ]
    facts = PlanFacts(plan.dose_mg, plan.interval_days, eff_local.date())
    return facts, doses, assessments


def evaluate(session: Session, patient_id: int, as_of: date | None = None,
             proto: protocol_mod.Protocol | None = None) -> tuple[TreatmentPlan, Suggestion] | None:
    """Run the engine for a patient's active plan (no access check: callers do that)."""
    plan = current_plan(session, patient_id)
    if plan is None or plan.status != PlanStatus.active:
        return None
    tz = get_settings().tz
    as_of = as_of or _today(tz)
    proto = proto or protocol_mod.in_force(session)
    facts, doses, assessments = engine_inputs(session, patient_id, plan, as_of, tz)
    return plan, suggest(facts, doses, assessments, proto, as_of)


def _open_suggestion(session: Session, patient_id: int) -> DoseAdjustment | None:
    return session.exec(
        select(DoseAdjustment)
        .where(DoseAdjustment.patient_id == patient_id, DoseAdjustment.kind == AdjustmentKind.suggestion.value,
               DoseAdjustment.status == AdjustmentStatus.open.value)
        .order_by(col(DoseAdjustment.id).desc())
    ).first()


def _same_result(row: DoseAdjustment, plan: TreatmentPlan, s: Suggestion) -> bool:
    return (
        row.plan_id == plan.id
        and row.action == s.action
        and row.proposed_dose_mg is not None and same_dose(row.proposed_dose_mg, s.dose_mg)
        and row.proposed_interval_days == s.interval_days
        and list(row.flags) == list(s.flags)
        and list(row.reasons) == [r.as_dict() for r in s.reasons]
        and row.protocol_hash == s.protocol_hash
    )


def _flush(session: Session, what: str = "This item") -> None:
    try:
        session.flush()
    except StaleDataError:
        raise ConflictError(f"{what} was changed by someone else just now; nothing was saved. "
                            "Reload to see the latest version.") from None


def run_for_patient(session: Session, actor: Actor | None, patient_id: int, as_of: date | None = None,
                    proto: protocol_mod.Protocol | None = None, check_access: bool = True) -> DoseAdjustment | None:
    """Re-run the engine; store a new open suggestion when the result differs from the open one.

    Returns the open suggestion in force (new or unchanged), or None when the patient has no
    active plan (an open suggestion for an older plan is then superseded).
    """
    if actor is not None and check_access:
        require_patient(session, actor, patient_id)
    # One writer at a time decides "same result or new suggestion". Take the audit chain's lock
    # (every write transaction takes it anyway, at its first audit event), not a lock of our own:
    # a second lock taken in the other order by a producer could deadlock on PostgreSQL.
    lock_for_append(session, audit._AUDIT_LOCK_KEY)
    result = evaluate(session, patient_id, as_of, proto)
    existing = _open_suggestion(session, patient_id)
    if result is None:
        if existing is not None:
            existing.status = AdjustmentStatus.superseded.value
            session.add(existing)
            _flush(session)
            audit.record(session, actor, "suggestion.supersede", "dose_adjustment", existing.id, patient_id,
                         detail="no_active_plan")
        return None
    plan, s = result
    if existing is not None and _same_result(existing, plan, s):
        return existing
    row = DoseAdjustment(
        patient_id=patient_id, kind=AdjustmentKind.suggestion.value, status=AdjustmentStatus.open.value,
        plan_id=plan.id, action=s.action, proposed_dose_mg=float(s.dose_mg), proposed_interval_days=s.interval_days,
        flags=list(s.flags), reasons=[r.as_dict() for r in s.reasons], facts=s.facts,
        protocol_name=s.protocol_name[:120], protocol_hash=s.protocol_hash, as_of=utcnow(),
        created_by_id=actor.id if actor else None,
    )
    session.add(row)
    if existing is not None:
        existing.status = AdjustmentStatus.superseded.value
        session.add(existing)
    _flush(session)
    audit.record(session, actor, "suggestion.create", "dose_adjustment", row.id, patient_id,
                 detail=f"action={s.action} flags={len(s.flags)} protocol={s.protocol_hash[:12]}"
                        + (f" supersedes={existing.id}" if existing is not None else ""))
    return row


# --- reading -----------------------------------------------------------------------------------------


def get_adjustment(session: Session, actor: Actor, adjustment_id: int) -> DoseAdjustment:
    row = session.get(DoseAdjustment, adjustment_id)
    if row is None:
        raise NotFound("No such suggestion or proposal.")
    require_patient(session, actor, row.patient_id)
    return row


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


# --- therapist: send, propose, withdraw -----------------------------------------------------------


def _check_version(row: DoseAdjustment, expected_version: int | None) -> None:
    if expected_version is not None and row.version != expected_version:
        raise ConflictError("This item was changed by someone else since you opened it; nothing was saved. "
                            "Reload to see the latest version.")


def send_to_prescriber(session: Session, actor: Actor, adjustment_id: int, expected_version: int | None = None,
                       note: str = "") -> DoseAdjustment:
    require_role(actor, Role.therapist.value)
    row = get_adjustment(session, actor, adjustment_id)
    _check_version(row, expected_version)
    if row.kind != AdjustmentKind.suggestion.value or row.status != AdjustmentStatus.open.value:
        raise ConflictError(f"This suggestion is already {row.status}; only an open suggestion can be sent.")
    row.status = AdjustmentStatus.pending.value
    row.sent_by_id, row.sent_at = actor.id, utcnow()
    row.therapist_note = (note or "").strip() or None
    session.add(row)
    _flush(session)
    audit.record(session, actor, "adjustment.send", "dose_adjustment", row.id, row.patient_id,
                 detail=f"action={row.action}")
    return row


def _proposal_action(plan: TreatmentPlan, dose: float, interval: int) -> str:
    if not same_dose(dose, plan.dose_mg):
        if interval != plan.interval_days:
            return "change"
        return "increase" if dose > plan.dose_mg else DECREASE
    if interval != plan.interval_days:
        return "space_out" if interval > plan.interval_days else "shorten_interval"
    return "continue"


def _parse_number(value, field_name: str, integer: bool, errors: dict):
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


def _create_proposal(session: Session, actor: Actor | None, patient_id: int, dose_mg, interval_days, reason: str,
                     source_note_id: int | None = None, field_prefix: str = "") -> DoseAdjustment:
    errors: dict[str, str] = {}
    f_dose, f_interval, f_reason = (f"{field_prefix}dose_mg", f"{field_prefix}interval_days", f"{field_prefix}reason")
    dose = _parse_number(dose_mg, f_dose, False, errors)
    interval = _parse_number(interval_days, f_interval, True, errors)
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
        raise ValidationError({f_dose: f"That is the current plan ({mg(plan.dose_mg)} every {plan.interval_days} "
                                       f"days); propose a different dose or interval."})
    now = utcnow()
    change = (f"{mg(plan.dose_mg)} every {plan.interval_days} days \u2192 {mg(new_dose)} every {new_interval} days")
    row = DoseAdjustment(
        patient_id=patient_id, kind=AdjustmentKind.proposal.value, status=AdjustmentStatus.pending.value,
        plan_id=plan.id, action=action, proposed_dose_mg=float(new_dose), proposed_interval_days=new_interval,
        flags=[], reasons=[{"code": "therapist_proposal", "text": f"Therapist's proposal: {change}."}],
        facts={"plan_version": plan.version_number, "plan_status": plan.status,
               "plan_dose_mg": plan.dose_mg, "plan_interval_days": plan.interval_days},
        as_of=now, created_by_id=actor.id if actor else None, created_at=now,
        therapist_note=reason.strip(), source_note_id=source_note_id,
        sent_by_id=actor.id if actor else None, sent_at=now,
    )
    session.add(row)
    _flush(session)
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
    _check_version(row, expected_version)
    if row.status != AdjustmentStatus.pending.value:
        raise ConflictError(f"This item is already {row.status}; only a pending item can be withdrawn.")
    if row.sent_by_id != actor.id:
        raise PermissionDenied("Only the therapist who sent it can withdraw this item.")
    row.status = AdjustmentStatus.withdrawn.value
    session.add(row)
    _flush(session)
    audit.record(session, actor, "adjustment.withdraw", "dose_adjustment", row.id, row.patient_id)
    return row


# --- prescriber: queue and decisions -------------------------------------------------------------


@dataclass
class QueueItem:
    adjustment: DoseAdjustment
    patient_id: int
    mrn: str
    patient_name: str
    hold_flags: list[str]
    safety_flags: list[str]
    urgency: int  # 0 hold, 1 decrease, 2 the rest
    waiting_since: datetime
    sent_by: str = ""
    plan: TreatmentPlan | None = None

    @property
    def urgency_label(self) -> str:
        return ("HOLD", "Decrease", "Routine")[self.urgency]


def _urgency(row: DoseAdjustment, plan: TreatmentPlan | None, patient_flags: list[str]) -> tuple[int, list[str]]:
    holds = [f for f in list(row.flags or []) + patient_flags if f in HOLD_FLAGS]
    holds = list(dict.fromkeys(holds))
    if holds or row.action == HOLD:
        return 0, holds
    lower = plan is not None and row.proposed_dose_mg is not None and row.proposed_dose_mg < plan.dose_mg - 1e-6
    if row.action == DECREASE or lower:
        return 1, holds
    return 2, holds


def review_queue(session: Session, actor: Actor) -> list[QueueItem]:
    """Pending items across the prescriber's patients: hold flags, then decreases, then the rest; oldest first."""
    from kapnotes.patients import safety_flags

    require_role(actor, Role.prescriber.value)
    rows = session.exec(
        select(DoseAdjustment, Patient)
        .join(Patient, Patient.id == DoseAdjustment.patient_id)
        .where(DoseAdjustment.status == AdjustmentStatus.pending.value,
               col(DoseAdjustment.patient_id).in_(visible_patient_ids(actor)))
    ).all()
    pids = sorted({p.id for _, p in rows})
    flags = safety_flags(session, pids) if pids else {}
    plans_by_patient = current_plans(session, pids)
    names = user_names(session, [a.sent_by_id for a, _ in rows])
    items = []
    for adj, patient in rows:
        plan = plans_by_patient.get(patient.id)
        urgency, holds = _urgency(adj, plan, flags.get(patient.id, []))
        items.append(QueueItem(adj, patient.id, patient.mrn, patient.full_name, holds, flags.get(patient.id, []),
                               urgency, adj.sent_at or adj.created_at, names.get(adj.sent_by_id, ""), plan))
    items.sort(key=lambda i: (i.urgency, i.waiting_since, i.adjustment.id))
    audit.record(session, actor, "review_queue.read", "dose_adjustment", None, None, detail=f"items={len(items)}",
                 coalesce=audit.READ_COALESCE)
    return items


def pending_count(session: Session, actor: Actor) -> int:
    require_role(actor, Role.prescriber.value)
    return session.exec(
        select(func.count()).select_from(DoseAdjustment)
        .where(DoseAdjustment.status == AdjustmentStatus.pending.value,
               col(DoseAdjustment.patient_id).in_(visible_patient_ids(actor)))
    ).one()


def current_plans(session: Session, patient_ids) -> dict[int, TreatmentPlan]:
    """The newest plan version of each patient, in one query."""
    if not patient_ids:
        return {}
    latest = (
        select(TreatmentPlan.patient_id, func.max(TreatmentPlan.version_number).label("v"))
        .where(col(TreatmentPlan.patient_id).in_(patient_ids))
        .group_by(TreatmentPlan.patient_id)
        .subquery()
    )
    rows = session.exec(
        select(TreatmentPlan).join(latest, (TreatmentPlan.patient_id == latest.c.patient_id)
                                   & (TreatmentPlan.version_number == latest.c.v))
    ).all()
    return {p.patient_id: p for p in rows}


@dataclass(frozen=True)
class ScorePoint:
    """One point of a GAD-7/PHQ-9 series, without the item answers."""

    instrument: str
    administered_on: date
    total: int


def queue_data(session: Session, actor: Actor, patient_ids, doses: int = 5):
    """For the review queue, for all its patients at once (one query per kind): the last doses
    and the GAD-7/PHQ-9 series of each. Returns {patient_id: (last doses, series)}."""
    require_role(actor, Role.prescriber.value)
    ids = sorted(set(patient_ids))
    if not ids:
        return {}
    allowed = set(session.exec(select(Patient.id).where(col(Patient.id).in_(ids),
                                                         col(Patient.id).in_(visible_patient_ids(actor)))).all())
    if allowed != set(ids):
        raise PermissionDenied()
    ranked = (
        select(DoseEntry.id, func.row_number().over(
            partition_by=DoseEntry.patient_id,
            order_by=(col(DoseEntry.taken_at).desc(), col(DoseEntry.id).desc())).label("rn"))
        .where(col(DoseEntry.patient_id).in_(ids), col(DoseEntry.voided_at).is_(None))
        .subquery()
    )
    out: dict[int, tuple[list, list]] = {pid: ([], []) for pid in ids}
    for d in session.exec(select(DoseEntry).join(ranked, ranked.c.id == DoseEntry.id).where(ranked.c.rn <= doses)
                          .order_by(col(DoseEntry.patient_id), col(DoseEntry.taken_at).desc())).all():
        out[d.patient_id][0].append(d)
    # the series as (instrument, date, total) rows: the item answers are not shown here
    for a in session.exec(select(Assessment.patient_id, Assessment.instrument, Assessment.administered_on,
                                 Assessment.total)
                          .where(col(Assessment.patient_id).in_(ids), col(Assessment.voided_at).is_(None))
                          .order_by(col(Assessment.patient_id), col(Assessment.administered_on),
                                    col(Assessment.id))).all():
        out[a.patient_id][1].append(ScorePoint(a.instrument, a.administered_on, a.total))
    return out


def recent_data(session: Session, actor: Actor, patient_id: int, doses: int = 5):
    """What the reviewer sees beside an item: the last doses and the GAD-7/PHQ-9 series."""
    require_patient(session, actor, patient_id)
    last = list(session.exec(
        select(DoseEntry).where(DoseEntry.patient_id == patient_id, col(DoseEntry.voided_at).is_(None))
        .order_by(col(DoseEntry.taken_at).desc()).limit(doses)
    ).all())
    series = list(session.exec(
        select(Assessment).where(Assessment.patient_id == patient_id, col(Assessment.voided_at).is_(None))
        .order_by(col(Assessment.administered_on), col(Assessment.id))
    ).all())
    return last, series


def _plan_input(plan: TreatmentPlan, dose: float, interval: int) -> PlanInput:
    return PlanInput(formulation=plan.formulation, dose_mg=dose, interval_days=interval,
                     minutes_in_mouth=plan.minutes_in_mouth, administration=plan.administration,
                     fasting_instructions=plan.fasting_instructions, instructions=plan.instructions)


def decide(session: Session, actor: Actor, adjustment_id: int, decision: str, rationale: str = "",
           dose_mg=None, interval_days=None, expected_version: int | None = None) -> DoseAdjustment:
    """Approve, modify (another dose and/or interval + rationale) or reject (rationale) an item.

    Approval of a plan-changing item, or a modification, appends the next plan version naming
    this prescriber and the item; approving a hold holds the plan. The adjustment row is
    written first, so of two prescribers deciding at once exactly one wins (the other's
    UPDATE finds a newer version: ``ConflictError``).
    """
    require_role(actor, Role.prescriber.value)
    if decision not in DECISIONS:
        raise ValidationError({"decision": f"Choose approve, modify or reject, not {decision!r}."})
    row = get_adjustment(session, actor, adjustment_id)
    require_patient(session, actor, row.patient_id, Role.prescriber.value)
    _check_version(row, expected_version)
    if row.status not in OPEN_STATES:
        who = user_names(session, [row.decided_by_id]).get(row.decided_by_id, "someone")
        raise ConflictError(f"This item was already {row.status} by {who}; your decision was not saved.")
    rationale = (rationale or "").strip()
    errors: dict[str, str] = {}
    plan = current_plan(session, row.patient_id)
    if plan is None:
        raise ValidationError({"plan": "The patient has no treatment plan to change."})
    new_dose = new_interval = None
    new_status = plan.status
    if decision == "reject":
        if not rationale:
            errors["rationale"] = "Give the reason for rejecting."
    elif decision == "modify":
        if not rationale:
            errors["rationale"] = "Give the reason for the modification."
        dose = _parse_number(dose_mg, "dose_mg", False, errors)
        interval = _parse_number(interval_days, "interval_days", True, errors)
        if dose is None and interval is None and "dose_mg" not in errors and "interval_days" not in errors:
            errors["dose_mg"] = "Give another dose or interval (or approve or reject as it is)."
        new_dose = dose if dose is not None else (row.proposed_dose_mg or plan.dose_mg)
        new_interval = interval if interval is not None else (row.proposed_interval_days or plan.interval_days)
        if not errors and plan.status == PlanStatus.active and same_dose(new_dose, plan.dose_mg) \
                and new_interval == plan.interval_days:
            errors["dose_mg"] = ("That is the current plan; reject the item with your rationale instead.")
        new_status = PlanStatus.active.value
    else:  # approve
        if row.plan_id is not None and row.plan_id != plan.id:
            raise ConflictError(f"The plan changed (now version {plan.version_number}) since this item was made; "
                                "modify it with explicit values or reject it.")
        if row.action == HOLD:
            new_status = PlanStatus.held.value
            new_dose, new_interval = plan.dose_mg, plan.interval_days
        elif row.action in PLAN_CHANGING_ACTIONS:
            # a value the item leaves out stays as the plan has it (services fill both; older
            # or imported rows may not, and must not approve into a silent no-op or a crash)
            new_dose = row.proposed_dose_mg if row.proposed_dose_mg is not None else plan.dose_mg
            new_interval = row.proposed_interval_days or plan.interval_days
            new_status = PlanStatus.active.value
    if errors:
        raise ValidationError(errors)
    if new_dose is not None:
        _plan_input(plan, new_dose, new_interval).validate()
    now = utcnow()
    # 1. the decision itself: the first write, so a concurrent decider blocks here and then loses
    row.status = {"approve": AdjustmentStatus.approved, "modify": AdjustmentStatus.modified,
                  "reject": AdjustmentStatus.rejected}[decision].value
    row.decided_by_id, row.decided_at = actor.id, now
    row.decision_rationale = rationale or None
    if new_dose is not None:
        row.decided_dose_mg, row.decided_interval_days = float(new_dose), int(new_interval)
    session.add(row)
    _flush(session)
    # 2. the plan version it produces (when it changes anything)
    changes_plan = new_dose is not None and (
        not same_dose(new_dose, plan.dose_mg) or new_interval != plan.interval_days or new_status != plan.status)
    if changes_plan:
        label = "suggestion" if row.kind == AdjustmentKind.suggestion.value else "proposal"
        text = rationale or f"Approved {label} #{row.id} ({row.action})."
        new_plan = plans.new_plan_version(session, actor, row.patient_id, _plan_input(plan, new_dose, new_interval),
                                          text, status=new_status, adjustment_id=row.id)
        row.resulting_plan_id = new_plan.id
        session.add(row)
        _flush(session)
    audit.record(session, actor, f"adjustment.{decision}", "dose_adjustment", row.id, row.patient_id,
                 detail=f"kind={row.kind} action={row.action}"
                        + (f" plan={row.resulting_plan_id}" if row.resulting_plan_id else ""))
    if changes_plan:
        run_for_patient(session, actor, row.patient_id)
    return row


def set_plan_status(session: Session, actor: Actor, patient_id: int, status: str, rationale: str) -> TreatmentPlan:
    """A prescriber holds, ends or resumes the current plan (a new plan version with that status)."""
    require_role(actor, Role.prescriber.value)
    require_patient(session, actor, patient_id, Role.prescriber.value)
    if status not in {s.value for s in PlanStatus}:
        raise ValidationError({"status": f"Choose active, held or ended, not {status!r}."})
    plan = current_plan(session, patient_id)
    if plan is None:
        raise ValidationError({"status": "The patient has no treatment plan yet."})
    if plan.status == status:
        raise ValidationError({"status": f"The plan is already {status}."})
    if plan.status == PlanStatus.ended and status != PlanStatus.ended:
        raise ValidationError({"status": "An ended plan cannot be resumed; set a new plan instead."})
    if not (rationale or "").strip():
        raise ValidationError({"rationale": f"Give the reason for setting the plan to {status}."})
    row = plans.new_plan_version(session, actor, patient_id, _plan_input(plan, plan.dose_mg, plan.interval_days),
                                 rationale, status=status)
    run_for_patient(session, actor, patient_id)
    return row


# --- events --------------------------------------------------------------------------------------


def _proposal_from_note(session: Session, actor: Actor | None, note_id: int, patient_id: int) -> None:
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


def handle(session: Session, event: str, actor: Actor | None, payload: dict[str, Any]) -> None:
    """Listener for ``kapnotes.events``: re-run the engine when its inputs change."""
    if event not in ("dose.changed", "assessment.changed", "note.signed"):
        return
    patient_id = payload.get("patient_id")
    if patient_id is None:
        return
    if event == "note.signed" and payload.get("note_type") == "integration" and payload.get("note_id"):
        _proposal_from_note(session, actor, int(payload["note_id"]), int(patient_id))
    try:
        # the producer already checked the actor's access to this patient
        run_for_patient(session, actor, int(patient_id), check_access=False)
    except protocol_mod.ProtocolError as exc:  # raised before anything is written
        # A broken clinic protocol file must not block documenting a dose; record it and move on.
        log.warning("suggestion engine skipped for patient %s: %s", patient_id, type(exc).__name__)
        audit.record(session, actor, "suggestion.skipped", "patient", patient_id, patient_id,
                     detail=type(exc).__name__)


def hold_flags(session: Session, patient_ids, as_of: date | None = None,
               proto: protocol_mod.Protocol | None = None) -> dict[int, list[str]]:
    """Hold flags from the dose log (BP at or above the hold threshold, serious adverse event)
    within the protocol's hold window up to today, for any number of patients in one query."""
    tz = get_settings().tz
    as_of = as_of or _today(tz)
    if proto is None:
        try:
            proto = protocol_mod.in_force(session)
        except KapError:
            proto = protocol_mod.load_default()
    start = datetime.combine(as_of - timedelta(days=proto.hold_window_days), time(), tz)
    end = datetime.combine(as_of + timedelta(days=1), time(), tz)
    high = (
        (col(DoseEntry.bp_systolic_pre) >= proto.hold_systolic) | (col(DoseEntry.bp_diastolic_pre) >= proto.hold_diastolic)
        | (col(DoseEntry.bp_systolic_post) >= proto.hold_systolic)
        | (col(DoseEntry.bp_diastolic_post) >= proto.hold_diastolic)
    )
    rows = session.exec(
        select(DoseEntry.patient_id, DoseEntry.bp_systolic_pre, DoseEntry.bp_diastolic_pre,
               DoseEntry.bp_systolic_post, DoseEntry.bp_diastolic_post, DoseEntry.adverse_events)
        .where(col(DoseEntry.patient_id).in_(patient_ids), col(DoseEntry.voided_at).is_(None),
               DoseEntry.taken_at >= start, DoseEntry.taken_at < end,
               high | (func.coalesce(DoseEntry.adverse_events, "") != ""))
    ).all()
    serious = set(proto.serious_adverse_events)
    out: dict[int, list[str]] = {}
    for pid, sp, dp, so, do, ae in rows:
        flags = out.setdefault(pid, [])
        if any(v is not None and v >= proto.hold_systolic for v in (sp, so)) or \
                any(v is not None and v >= proto.hold_diastolic for v in (dp, do)):
            if "hypertension_severe" not in flags:
                flags.append("hypertension_severe")
        if any(protocol_mod.normalise_tag(t) in serious for t in (ae or "").split(";") if t.strip()):
            if "serious_adverse_event" not in flags:
                flags.append("serious_adverse_event")
    return {pid: sorted(f, key=HOLD_FLAGS.index) for pid, f in out.items() if f}
