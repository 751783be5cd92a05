"""Dose adjustments: engine suggestions, therapist proposals and the prescriber's review.

Lifecycle of a ``DoseAdjustment`` (DESIGN §3, "the loop around the rules"):
- the engine re-runs whenever a patient's facts change (a dose added, edited, voided or
  imported, a score added or voided, a signed note, every new plan version); a different
  result supersedes the patient's open and pending engine suggestions (kept, marked
  superseded); the same result keeps the row in force;
- a new ``hold``, ``decrease`` or ``review`` goes to the prescriber's queue at once, urgent,
  sent by nobody ("sent automatically by the rules engine"); ``increase`` and ``space_out``
  stay open until a therapist sends them or a prescriber takes them to review; ``continue``
  and ``insufficient_data`` only inform;
- a therapist's ``proposal`` goes straight to the queue;
- every item records the record's ``facts_key``: when the record or the plan changed since,
  the item is stale, says what changed, and cannot be approved as it stands;
- the prescriber approves, modifies or rejects, always with a rationale; a change toward
  more drug while a rule of 1–4 fires, or off the protocol's steps, intervals or above its
  ceiling, needs an explicit override with its own rationale; nothing exceeds the hard
  maximum. A decision that changes the plan appends the next plan version naming the
  prescriber and the item.

Only a prescriber can change a plan (``decide``, ``set_plan_status``, and
``plans.new_plan_version`` itself check it). Two prescribers deciding the same item at
once: ``DoseAdjustment.version`` (optimistic locking) lets exactly one win; the other
gets ``ConflictError``. Every change and every cross-patient read is audited, with ids
and codes only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy.orm import aliased
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, col, func, select

from kapnotes import audit, vocab
from kapnotes.access import require_patient, require_role, visible_patient_ids
from kapnotes.actor import Actor
from kapnotes.config import get_settings
from kapnotes.db import lock_for_append
from kapnotes.doses import visible_filter
from kapnotes.dosing import plans
from kapnotes.dosing import protocol as protocol_mod
from kapnotes.dosing.plans import PlanInput, current_plan
from kapnotes.dosing.rules import (
    CONTINUE,
    DECREASE,
    HOLD,
    HOLD_FLAGS,
    INCREASE,
    INSUFFICIENT,
    REVIEW,
    SAFETY_RULE_CODES,
    SPACE_OUT,
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
from kapnotes.timeutil import utcnow

log = logging.getLogger(__name__)

DECISIONS = ("approve", "modify", "reject")
OPEN_STATES = (AdjustmentStatus.open.value, AdjustmentStatus.pending.value)
DECIDED_STATES = (AdjustmentStatus.approved.value, AdjustmentStatus.modified.value, AdjustmentStatus.rejected.value)
PLAN_CHANGING_ACTIONS = ("increase", "decrease", "space_out", "shorten_interval", "change", HOLD)


# --- running the engine on the database ---------------------------------------------------------


def _today(tz) -> date:
    return utcnow().astimezone(tz).date()


def safety_window_days(proto: protocol_mod.Protocol, interval_days: int) -> int:
    """DESIGN §3: the safety window is max(14, 2 × interval) days (14 being the protocol's hold window)."""
    fn = getattr(proto, "safety_window_days", None)
    if callable(fn):
        return int(fn(interval_days))
    return max(int(proto.hold_window_days), 2 * int(interval_days))


PLAN_WINDOW_DAYS = 28
RECENT_DOSES = 3


def engine_inputs(session: Session, patient_id: int, plan: TreatmentPlan, as_of: date, tz=None,
                  proto: protocol_mod.Protocol | None = None):
    """The plan, doses and assessments the engine needs, as plain facts (non-voided rows only).

    Doses: every dose in the safety window (max(14, 2 × interval) days), in the plan window
    (28 days back, bounded by the plan's start) and since the plan took effect, plus the last
    3 doses whatever their age. The engine applies the exact windows.
    """
    tz = tz or get_settings().tz
    proto = proto or protocol_mod.in_force(session)
    end = datetime.combine(as_of + timedelta(days=1), time(), tz)
    eff_local = plan.effective_from.astimezone(tz)
    back = max(safety_window_days(proto, plan.interval_days), PLAN_WINDOW_DAYS)
    since = min(datetime.combine(eff_local.date(), time(), tz),
                datetime.combine(as_of - timedelta(days=back), time(), tz))
    base = select(DoseEntry).where(DoseEntry.patient_id == patient_id, col(DoseEntry.voided_at).is_(None),
                                   DoseEntry.taken_at < end)
    rows = {d.id: d for d in session.exec(base.where(DoseEntry.taken_at >= since)).all()}
    # the recent doses count whatever their age (the decrease rules and the gate read them)
    recent = max(RECENT_DOSES, int(getattr(proto, "decrease_last_doses", RECENT_DOSES)))
    for d in session.exec(base.order_by(col(DoseEntry.taken_at).desc(), col(DoseEntry.id).desc())
                          .limit(recent)).all():
        rows.setdefault(d.id, d)
    doses = [
        DoseFacts(
            taken_at=d.taken_at.astimezone(tz), dose_mg=d.dose_mg, vomited=bool(d.vomited), nausea=d.nausea,
            dissociation=d.dissociation,
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
    facts, doses, assessments = engine_inputs(session, patient_id, plan, as_of, tz, proto)
    return plan, suggest(facts, doses, assessments, proto, as_of)


# --- what the record looked like: the facts key and staleness ----------------------------------------


def facts_keys(session: Session, patient_ids,
               plans_by_patient: dict[int, TreatmentPlan] | None = None) -> dict[int, str]:
    """For each patient, a SHA-256 over the record state the engine reads: doses and assessments
    (counts, newest ids, summed row versions, voided counts) and the current plan version.

    Two aggregate queries for any number of patients (plus one for the plans when not given);
    any dose added, edited, voided or imported, any score added or voided, any new plan version
    changes it.
    """
    import hashlib

    ids = sorted({int(p) for p in patient_ids})
    if not ids:
        return {}
    plans_by_patient = plans_by_patient if plans_by_patient is not None else current_plans(session, ids)
    doses = {pid: (n, mx, sv, nv) for pid, n, mx, sv, nv in session.exec(
        select(DoseEntry.patient_id, func.count(DoseEntry.id), func.max(DoseEntry.id),
               func.coalesce(func.sum(DoseEntry.version), 0), func.count(DoseEntry.voided_at))
        .where(col(DoseEntry.patient_id).in_(ids), visible_filter())  # an import's staged rows are not facts yet
        .group_by(DoseEntry.patient_id)).all()}
    scores = {pid: (n, mx, nv) for pid, n, mx, nv in session.exec(
        select(Assessment.patient_id, func.count(Assessment.id), func.max(Assessment.id),
               func.count(Assessment.voided_at))
        .where(col(Assessment.patient_id).in_(ids)).group_by(Assessment.patient_id)).all()}
    out = {}
    for pid in ids:
        plan = plans_by_patient.get(pid)
        parts = ("v1", pid, doses.get(pid, (0, None, 0, 0)), scores.get(pid, (0, None, 0)),
                 (plan.id, plan.version_number, plan.status) if plan is not None else None)
        out[pid] = hashlib.sha256(repr(parts).encode()).hexdigest()
    return out


def facts_key(session: Session, patient_id: int, plan: TreatmentPlan | None = None) -> str:
    """The patient's facts key now (see ``facts_keys``)."""
    return facts_keys(session, [patient_id], {patient_id: plan} if plan is not None else None)[patient_id]


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
        DoseEntry.patient_id == row.patient_id, DoseEntry.voided_at > since, visible_filter())).one()
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


def _open_engine_rows(session: Session, patient_id: int) -> list[DoseAdjustment]:
    """The patient's engine suggestions still in play (open or pending), newest first."""
    return list(session.exec(
        select(DoseAdjustment)
        .where(DoseAdjustment.patient_id == patient_id, DoseAdjustment.kind == AdjustmentKind.suggestion.value,
               col(DoseAdjustment.status).in_(OPEN_STATES))
        .order_by(col(DoseAdjustment.id).desc())
    ).all())


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


URGENT_ACTIONS = (HOLD, DECREASE, REVIEW)  # reach the prescriber's queue at once, nobody forwarding them
SENDABLE_ACTIONS = (INCREASE, SPACE_OUT)  # wait for a therapist or prescriber to send them
INFORMATIONAL_ACTIONS = (CONTINUE, INSUFFICIENT)  # nothing to decide: never sent
AUTO_SENT = "sent automatically by the rules engine"


def _supersede(session: Session, actor: Actor | None, rows, patient_id: int, by: int | None, why: str) -> None:
    for old in rows:
        was = old.status
        old.status = AdjustmentStatus.superseded.value
        session.add(old)
        _flush(session)
        audit.record(session, actor, "suggestion.supersede", "dose_adjustment", old.id, patient_id,
                     detail=f"was={was} action={old.action}" + (f" by={by}" if by else f" {why}"))


def run_for_patient(session: Session, actor: Actor | None, patient_id: int, as_of: date | None = None,
                    proto: protocol_mod.Protocol | None = None, check_access: bool = True) -> DoseAdjustment | None:
    """Re-run the engine for a patient whose facts changed (DESIGN §3, the loop around the rules).

    The same result keeps the suggestion in force (its facts key and checks brought up to date);
    a different one supersedes every open or pending engine suggestion of the patient (kept,
    marked superseded, so it leaves the queue). A new hold, decrease or review goes to the
    prescriber's queue at once, urgent, sent by nobody. Returns the suggestion in force, or
    None when the patient has no active plan (older suggestions are then superseded).
    """
    if actor is not None and check_access:
        require_patient(session, actor, patient_id)
    # One writer at a time decides "same result or new suggestion". Take the audit chain's lock
    # (every write transaction takes it anyway, at its first audit event), not a lock of our own:
    # a second lock taken in the other order by a producer could deadlock on PostgreSQL.
    lock_for_append(session, audit._AUDIT_LOCK_KEY)
    result = evaluate(session, patient_id, as_of, proto)
    existing = _open_engine_rows(session, patient_id)
    if result is None:
        _supersede(session, actor, existing, patient_id, None, "no_active_plan")
        return None
    plan, s = result
    key = facts_key(session, patient_id, plan)
    checks = [c.as_dict() for c in s.checks]
    if existing and _same_result(existing[0], plan, s):
        keep = existing[0]
        if keep.facts_key != key or list(keep.checks or []) != checks:
            # same action, values, flags and reasons: the item stays, re-dated to this evaluation so that
            # its checks, facts and as_of describe the record as it is now (and it is not stale)
            keep.facts_key, keep.checks, keep.facts, keep.as_of = key, checks, s.facts, utcnow()
            session.add(keep)
            _flush(session)
        _supersede(session, actor, existing[1:], patient_id, keep.id, "")
        return keep
    now = utcnow()
    urgent = s.action in URGENT_ACTIONS
    row = DoseAdjustment(
        patient_id=patient_id, kind=AdjustmentKind.suggestion.value,
        status=(AdjustmentStatus.pending if urgent else AdjustmentStatus.open).value,
        plan_id=plan.id, action=s.action, proposed_dose_mg=float(s.dose_mg), proposed_interval_days=s.interval_days,
        flags=list(s.flags), reasons=[r.as_dict() for r in s.reasons], facts=s.facts, checks=checks,
        protocol_name=s.protocol_name[:120], protocol_hash=s.protocol_hash, as_of=now,
        created_by_id=actor.id if actor else None, created_at=now, facts_key=key,
        urgent=urgent, sent_at=now if urgent else None, sent_by_id=None,
    )
    session.add(row)
    _flush(session)
    _supersede(session, actor, existing, patient_id, row.id, "")
    audit.record(session, actor, "suggestion.create", "dose_adjustment", row.id, patient_id,
                 detail=f"action={s.action} flags={len(s.flags)} protocol={s.protocol_hash[:12]}"
                        + (" urgent=1" if urgent else "")
                        + (f" supersedes={','.join(str(e.id) for e in existing)}" if existing else ""))
    if urgent:
        from kapnotes import notify

        notify.urgent_item_created(session, patient_id)
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
    _flush(session)
    audit.record(session, actor, "adjustment.send", "dose_adjustment", row.id, row.patient_id,
                 detail=f"action={row.action} role={actor.role}")
    return row


def send_to_prescriber(session: Session, actor: Actor, adjustment_id: int, expected_version: int | None = None,
                       note: str = "") -> DoseAdjustment:
    """A therapist sends an open increase or space-out suggestion to the prescriber's queue."""
    require_role(actor, Role.therapist.value)
    row = get_adjustment(session, actor, adjustment_id)
    _check_version(row, expected_version)
    return _send(session, actor, row, note)


def take_to_review(session: Session, actor: Actor, adjustment_id: int,
                   expected_version: int | None = None) -> DoseAdjustment:
    """A prescriber puts an open increase or space-out suggestion in their own queue."""
    require_role(actor, Role.prescriber.value)
    row = get_adjustment(session, actor, adjustment_id)
    require_patient(session, actor, row.patient_id, Role.prescriber.value)
    _check_version(row, expected_version)
    return _send(session, actor, row)


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
    stale: bool = False  # the plan or the record changed since the item was made

    @property
    def urgent(self) -> bool:
        """Marked urgent by the engine (hold, decrease, review), or the patient has a hold flag."""
        return bool(self.adjustment.urgent) or self.urgency == 0

    @property
    def urgency_label(self) -> str:
        kind = ("HOLD", "Decrease", "")[self.urgency]
        if self.urgent:
            return f"Urgent · {kind}" if kind else "Urgent"
        return kind or "Routine"

    @property
    def sent_by_text(self) -> str:
        return self.sent_by or (AUTO_SENT if self.adjustment.kind == AdjustmentKind.suggestion.value else "")


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
    """Pending items across the prescriber's patients: urgent first, then decreases, then the rest; oldest first."""
    from kapnotes.patients import safety_flags

    require_role(actor, Role.prescriber.value)
    sender = aliased(User)
    rows = session.exec(  # the sender's name joined in: auto-sent items have none, and no extra query either way
        select(DoseAdjustment, Patient, sender.full_name, sender.credentials)
        .join(Patient, Patient.id == DoseAdjustment.patient_id)
        .outerjoin(sender, sender.id == DoseAdjustment.sent_by_id)
        .where(DoseAdjustment.status == AdjustmentStatus.pending.value,
               col(DoseAdjustment.patient_id).in_(visible_patient_ids(actor)))
    ).all()
    pids = sorted({p.id for _, p, _, _ in rows})
    flags = safety_flags(session, pids) if pids else {}
    plans_by_patient = current_plans(session, pids)
    keys = facts_keys(session, pids, plans_by_patient)
    items = []
    for adj, patient, sender_name, sender_credentials in rows:
        plan = plans_by_patient.get(patient.id)
        urgency, holds = _urgency(adj, plan, flags.get(patient.id, []))
        sent_by = (f"{sender_name}, {sender_credentials}" if sender_credentials else sender_name) if sender_name else ""
        items.append(QueueItem(adj, patient.id, patient.mrn, patient.full_name, holds, flags.get(patient.id, []),
                               urgency, adj.sent_at or adj.created_at, sent_by, plan,
                               is_stale(adj, plan, keys.get(patient.id))))
    # urgent first (engine holds, decreases and reviews, and any hold flag), then by kind, oldest first
    items.sort(key=lambda i: (not i.urgent, i.urgency, i.waiting_since, i.adjustment.id))
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


# Rule labels live in kapnotes.vocab; re-exported here so callers keep working.
RULE_LABELS = vocab.RULE_LABELS
CHECK_STATUS_LABELS = vocab.CHECK_STATUS_LABELS
rule_label = vocab.rule_label


@dataclass(frozen=True)
class DecisionRequirements:
    """What a decision needs before it can be saved, for the page to show before submit."""

    override_rules: tuple[str, ...] = ()
    conditions: tuple[str, ...] = ()  # the same, in plain words
    stale: str | None = None
    dose_mg: float | None = None
    interval_days: int | None = None

    @property
    def override_needed(self) -> bool:
        return bool(self.override_rules)

    def message(self) -> str:
        return ("This decision needs an explicit override with its own rationale: "
                + "; ".join(self.conditions) + ".")


def current_safety_codes(session: Session, patient_id: int, plan: TreatmentPlan,
                         proto: protocol_mod.Protocol | None = None) -> tuple[str, ...]:
    """The rules of 1–4 that fire for the patient now (the engine run on the current plan, any status)."""
    tz = get_settings().tz
    proto = proto or protocol_mod.in_force(session)
    as_of = _today(tz)
    facts, doses, assessments = engine_inputs(session, patient_id, plan, as_of, tz, proto)
    s = suggest(facts, doses, assessments, proto, as_of)
    if s.checks:
        return tuple(s.safety_codes)
    return tuple(dict.fromkeys(f for f in s.flags if f in SAFETY_RULE_CODES))


def _override_conditions(session: Session, row: DoseAdjustment, plan: TreatmentPlan, new_dose: float,
                         new_interval: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The conditions under which this change needs an override: toward more drug while a rule of
    1–4 fires; a dose off the protocol's steps or above its ceiling; an interval off its intervals."""
    proto = protocol_mod.in_force(session)
    codes: list[str] = []
    texts: list[str] = []
    dose_changed = not same_dose(new_dose, plan.dose_mg)
    more = (new_dose > plan.dose_mg and dose_changed) or new_interval < plan.interval_days
    if more:
        fired = current_safety_codes(session, row.patient_id, plan, proto)
        if fired:
            codes.extend(fired)
            texts.append("it moves toward more drug while safety rules fire for this patient ("
                         + ", ".join(rule_label(c) for c in fired) + ")")
    if dose_changed and not any(same_dose(new_dose, step) for step in proto.steps_mg):
        codes.append("off_steps")
        texts.append(f"{mg(new_dose)} is not one of the protocol's steps ("
                     + ", ".join(mg(x) for x in proto.steps_mg) + ")")
    if new_interval != plan.interval_days and new_interval not in proto.intervals_days:
        codes.append("off_intervals")
        texts.append(f"{every_days(new_interval)} is not one of the protocol's intervals ("
                     + ", ".join(str(x) for x in proto.intervals_days) + " days)")
    if new_dose > proto.ceiling_mg and not same_dose(new_dose, proto.ceiling_mg) and (dose_changed or more):
        codes.append("above_ceiling")
        texts.append(f"{mg(new_dose)} is above the protocol's ceiling of {mg(proto.ceiling_mg)}")
    return tuple(codes), tuple(texts)


def every_days(days: int) -> str:
    return "every day" if days == 1 else f"every {days} days"


def _decision_target(row: DoseAdjustment, plan: TreatmentPlan, decision: str, dose_mg, interval_days,
                     errors: dict[str, str]):
    """The plan values (dose, interval, status) a decision leads to; (None, None, status) when none."""
    new_dose = new_interval = None
    new_status = plan.status
    if decision == "modify":
        dose = _parse_number(dose_mg, "dose_mg", False, errors)
        interval = _parse_number(interval_days, "interval_days", True, errors)
        if dose is None and interval is None and "dose_mg" not in errors and "interval_days" not in errors:
            errors["dose_mg"] = "Give another dose or interval (or approve or reject as it is)."
        new_dose = dose if dose is not None else (row.proposed_dose_mg or plan.dose_mg)
        new_interval = interval if interval is not None else (row.proposed_interval_days or plan.interval_days)
        if not errors and plan.status == PlanStatus.active and same_dose(new_dose, plan.dose_mg) \
                and new_interval == plan.interval_days:
            errors["dose_mg"] = "That is the current plan; reject the item with your rationale instead."
        new_status = PlanStatus.active.value
    elif decision == "approve":
        if row.action == HOLD:
            new_status = PlanStatus.held.value
            new_dose, new_interval = plan.dose_mg, plan.interval_days
        elif row.action in PLAN_CHANGING_ACTIONS:
            # a value the item leaves out stays as the plan has it (services fill both; older
            # or imported rows may not, and must not approve into a silent no-op or a crash)
            new_dose = row.proposed_dose_mg if row.proposed_dose_mg is not None else plan.dose_mg
            new_interval = row.proposed_interval_days or plan.interval_days
            new_status = PlanStatus.active.value
    return new_dose, new_interval, new_status


def decision_requirements(session: Session, actor: Actor, adjustment_id: int, decision: str | None,
                          dose_mg=None, interval_days=None) -> DecisionRequirements:
    """Before submit: whether this decision needs an override and why, and whether the item is stale."""
    require_role(actor, Role.prescriber.value)
    row = get_adjustment(session, actor, adjustment_id)
    require_patient(session, actor, row.patient_id, Role.prescriber.value)
    plan = current_plan(session, row.patient_id)
    if plan is None:
        return DecisionRequirements()
    stale = stale_reason(session, row, plan)
    if decision not in ("approve", "modify"):
        return DecisionRequirements(stale=stale)
    errors: dict[str, str] = {}
    new_dose, new_interval, _ = _decision_target(row, plan, decision, dose_mg, interval_days, errors)
    if new_dose is None or "dose_mg" in errors or "interval_days" in errors:
        return DecisionRequirements(stale=stale)
    codes, texts = _override_conditions(session, row, plan, float(new_dose), int(new_interval))
    return DecisionRequirements(codes, texts, stale, float(new_dose), int(new_interval))


def decide(session: Session, actor: Actor, adjustment_id: int, decision: str | None, rationale: str = "",
           dose_mg=None, interval_days=None, expected_version: int | None = None, override: bool = False,
           override_rationale: str = "") -> DoseAdjustment:
    """Approve, modify (another dose and/or interval) or reject an item; a rationale always.

    No decision is assumed: ``decision`` must be given. A stale item (the plan or the record
    changed since it was made) cannot be approved as it stands. A change toward more drug while
    a rule of 1–4 fires, or to a dose off the protocol's steps or above its ceiling, or an
    interval off its intervals, needs ``override`` and its own rationale, recorded on the item,
    in the plan version and (codes only) in the audit. Nothing crosses the hard maximum.

    Approval of a plan-changing item, or a modification, appends the next plan version naming
    this prescriber and the item; approving a hold holds the plan. The adjustment row is
    written first, so of two prescribers deciding at once exactly one wins (the other's
    UPDATE finds a newer version: ``ConflictError``).
    """
    require_role(actor, Role.prescriber.value)
    if decision not in DECISIONS:
        raise ValidationError({"decision": "Choose a decision: approve, modify or reject."
                                           + (f" ({decision!r} is not one.)" if decision else "")})
    row = get_adjustment(session, actor, adjustment_id)
    require_patient(session, actor, row.patient_id, Role.prescriber.value)
    _check_version(row, expected_version)
    if row.status == AdjustmentStatus.superseded.value:
        raise ConflictError("This item was superseded by a newer evaluation of the rules; your decision was not "
                            "saved. Decide on the newer item.")
    if row.status not in OPEN_STATES:
        who = user_names(session, [row.decided_by_id]).get(row.decided_by_id, "someone")
        raise ConflictError(f"This item was already {row.status} by {who}; your decision was not saved.")
    rationale = (rationale or "").strip()
    override_rationale = (override_rationale or "").strip()
    errors: dict[str, str] = {}
    plan = current_plan(session, row.patient_id)
    if plan is None:
        raise ValidationError({"plan": "The patient has no treatment plan to change."})
    if not rationale:
        errors["rationale"] = {"approve": "Give the rationale for approving.",
                               "modify": "Give the reason for the modification.",
                               "reject": "Give the reason for rejecting."}[decision]
    new_dose, new_interval, new_status = _decision_target(row, plan, decision, dose_mg, interval_days, errors)
    if decision == "approve":
        stale = stale_reason(session, row, plan)
        if stale:
            raise ConflictError(f"{stale} It cannot be approved as it stands; modify it with explicit values "
                                "or reject it.")
    if new_dose is not None and "dose_mg" not in errors and "interval_days" not in errors:
        try:
            _plan_input(plan, new_dose, new_interval).validate()  # the hard maximum, for every path
        except ValidationError as exc:
            errors.update(exc.errors)
    codes: tuple[str, ...] = ()
    if new_dose is not None and "dose_mg" not in errors and "interval_days" not in errors:
        codes, texts = _override_conditions(session, row, plan, float(new_dose), int(new_interval))
        if codes and not (override and override_rationale):
            need = DecisionRequirements(codes, texts).message()
            errors["override_rationale"] = (
                need + (" Give the rationale for the override." if override
                        else " Tick \u201cOverride the safety check\u201d and give its rationale."))
    if errors:
        raise ValidationError(errors)
    now = utcnow()
    # 1. the decision itself: the first write, so a concurrent decider blocks here and then loses
    row.status = {"approve": AdjustmentStatus.approved, "modify": AdjustmentStatus.modified,
                  "reject": AdjustmentStatus.rejected}[decision].value
    row.decided_by_id, row.decided_at = actor.id, now
    row.decision_rationale = rationale
    if codes:
        row.override_rules, row.override_rationale = list(codes), override_rationale
    if new_dose is not None:
        row.decided_dose_mg, row.decided_interval_days = float(new_dose), int(new_interval)
    session.add(row)
    _flush(session)
    # 2. the plan version it produces (when it changes anything)
    changes_plan = new_dose is not None and (
        not same_dose(new_dose, plan.dose_mg) or new_interval != plan.interval_days or new_status != plan.status)
    if changes_plan:
        text = rationale
        if codes:
            text += f"\nOverride ({', '.join(rule_label(c) for c in codes)}): {override_rationale}"
        new_plan = plans.new_plan_version(session, actor, row.patient_id, _plan_input(plan, new_dose, new_interval),
                                          text, status=new_status, adjustment_id=row.id)
        row.resulting_plan_id = new_plan.id
        session.add(row)
        _flush(session)
    audit.record(session, actor, f"adjustment.{decision}", "dose_adjustment", row.id, row.patient_id,
                 detail=(f"kind={row.kind} action={row.action}"
                         + (f" plan={row.resulting_plan_id}" if row.resulting_plan_id else "")
                         + (f" override=1 rules={','.join(codes)}" if codes else ""))[:255])
    if changes_plan:
        run_for_patient(session, actor, row.patient_id)  # every new plan version re-evaluates
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
    within each patient's safety window up to today (max(14, 2 × their plan's interval)), for
    any number of patients (``patient_ids`` may be a subquery) in two queries."""
    tz = get_settings().tz
    as_of = as_of or _today(tz)
    if proto is None:
        try:
            proto = protocol_mod.in_force(session)
        except KapError:
            proto = protocol_mod.load_default()
    # each patient's own safety window: max(14, 2 × the interval of their current plan)
    latest = (
        select(TreatmentPlan.patient_id, func.max(TreatmentPlan.version_number).label("v"))
        .where(col(TreatmentPlan.patient_id).in_(patient_ids)).group_by(TreatmentPlan.patient_id).subquery()
    )
    intervals = dict(session.exec(
        select(TreatmentPlan.patient_id, TreatmentPlan.interval_days)
        .join(latest, (TreatmentPlan.patient_id == latest.c.patient_id)
              & (TreatmentPlan.version_number == latest.c.v))).all())
    default_days = int(proto.hold_window_days)
    window = {pid: safety_window_days(proto, iv) for pid, iv in intervals.items()}
    widest = max([default_days, *window.values()])
    start = datetime.combine(as_of - timedelta(days=widest), time(), tz)
    end = datetime.combine(as_of + timedelta(days=1), time(), tz)
    high = (
        (col(DoseEntry.bp_systolic_pre) >= proto.hold_systolic)
        | (col(DoseEntry.bp_diastolic_pre) >= proto.hold_diastolic)
        | (col(DoseEntry.bp_systolic_post) >= proto.hold_systolic)
        | (col(DoseEntry.bp_diastolic_post) >= proto.hold_diastolic)
    )
    found = session.exec(
        select(DoseEntry.patient_id, DoseEntry.taken_at, DoseEntry.bp_systolic_pre, DoseEntry.bp_diastolic_pre,
               DoseEntry.bp_systolic_post, DoseEntry.bp_diastolic_post, DoseEntry.adverse_events)
        .where(col(DoseEntry.patient_id).in_(patient_ids), col(DoseEntry.voided_at).is_(None),
               DoseEntry.taken_at >= start, DoseEntry.taken_at < end,
               high | (func.coalesce(DoseEntry.adverse_events, "") != ""))
    ).all()
    rows = [(pid, sp, dp, so, do, ae) for pid, taken, sp, dp, so, do, ae in found
            if taken.astimezone(tz).date() >= as_of - timedelta(days=window.get(pid, default_days))]
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
