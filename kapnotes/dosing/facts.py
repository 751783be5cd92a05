"""A patient's facts as the engine reads them, loaded from the database.

``engine_inputs`` turns the record (non-voided doses and scores, the current plan) into the
plain facts of ``rules``; ``evaluate`` runs the pure engine on them. ``facts_keys`` hashes the
same record state, so an item made on another state of the record is known to be stale.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta

from sqlmodel import Session, col, func, select

from kapnotes import doses as dose_log  # a module, not a name: kapnotes.doses imports this package
from kapnotes.config import get_settings
from kapnotes.dosing import protocol_settings
from kapnotes.dosing.plans import current_plan
from kapnotes.dosing.protocol import Protocol
from kapnotes.dosing.rules import SAFETY_RULE_CODES, AssessmentFacts, DoseFacts, PlanFacts, Suggestion, suggest
from kapnotes.models import Assessment, DoseEntry, Instrument, PlanStatus, TreatmentPlan
from kapnotes.query import not_voided
from kapnotes.timeutil import utcnow

PLAN_WINDOW_DAYS = 28
RECENT_DOSES = 3


def today_in(tz) -> date:
    """Today's date in the clinic's zone."""
    return utcnow().astimezone(tz).date()


def safety_window_days(proto: Protocol, interval_days: int) -> int:
    """DESIGN §3: the safety window is max(14, 2 × interval) days (14 being the protocol's hold window)."""
    fn = getattr(proto, "safety_window_days", None)
    if callable(fn):
        return int(fn(interval_days))
    return max(int(proto.hold_window_days), 2 * int(interval_days))


def engine_inputs(session: Session, patient_id: int, plan: TreatmentPlan, as_of: date, tz=None,
                  proto: Protocol | None = None):
    """The plan, doses and assessments the engine needs, as plain facts (non-voided rows only).

    Doses: every dose in the safety window (max(14, 2 × interval) days), in the plan window
    (28 days back, bounded by the plan's start) and since the plan took effect, plus the last
    3 doses whatever their age. The engine applies the exact windows.
    """
    tz = tz or get_settings().tz
    proto = proto or protocol_settings.in_force(session)
    end = datetime.combine(as_of + timedelta(days=1), time(), tz)
    eff_local = plan.effective_from.astimezone(tz)
    back = max(safety_window_days(proto, plan.interval_days), PLAN_WINDOW_DAYS)
    since = min(datetime.combine(eff_local.date(), time(), tz),
                datetime.combine(as_of - timedelta(days=back), time(), tz))
    base = select(DoseEntry).where(DoseEntry.patient_id == patient_id, not_voided(DoseEntry),
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
            .where(Assessment.patient_id == patient_id, not_voided(Assessment),
                   col(Assessment.instrument).in_([Instrument.gad7.value, Instrument.phq9.value]),
                   Assessment.administered_on <= as_of)
            .order_by(col(Assessment.administered_on), col(Assessment.id))
        ).all()
    ]
    facts = PlanFacts(plan.dose_mg, plan.interval_days, eff_local.date())
    return facts, doses, assessments


def evaluate(session: Session, patient_id: int, as_of: date | None = None,
             proto: Protocol | None = None) -> tuple[TreatmentPlan, Suggestion] | None:
    """Run the engine for a patient's active plan (no access check: callers do that)."""
    plan = current_plan(session, patient_id)
    if plan is None or plan.status != PlanStatus.active:
        return None
    tz = get_settings().tz
    as_of = as_of or today_in(tz)
    proto = proto or protocol_settings.in_force(session)
    facts, doses, assessments = engine_inputs(session, patient_id, plan, as_of, tz, proto)
    return plan, suggest(facts, doses, assessments, proto, as_of)


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


def facts_keys(session: Session, patient_ids,
               plans_by_patient: dict[int, TreatmentPlan] | None = None) -> dict[int, str]:
    """For each patient, a SHA-256 over the record state the engine reads: doses and assessments
    (counts, newest ids, summed row versions, voided counts) and the current plan version.

    Two aggregate queries for any number of patients (plus one for the plans when not given);
    any dose added, edited, voided or imported, any score added or voided, any new plan version
    changes it.
    """
    ids = sorted({int(p) for p in patient_ids})
    if not ids:
        return {}
    plans_by_patient = plans_by_patient if plans_by_patient is not None else current_plans(session, ids)
    doses = {pid: (n, mx, sv, nv) for pid, n, mx, sv, nv in session.exec(
        select(DoseEntry.patient_id, func.count(DoseEntry.id), func.max(DoseEntry.id),
               func.coalesce(func.sum(DoseEntry.version), 0), func.count(DoseEntry.voided_at))
        .where(col(DoseEntry.patient_id).in_(ids), dose_log.visible_filter())  # staged import rows: not facts yet
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


def current_safety_codes(session: Session, patient_id: int, plan: TreatmentPlan,
                         proto: Protocol | None = None) -> tuple[str, ...]:
    """The rules of 1–4 that fire for the patient now (the engine run on the current plan, any status)."""
    tz = get_settings().tz
    proto = proto or protocol_settings.in_force(session)
    as_of = today_in(tz)
    facts, doses, assessments = engine_inputs(session, patient_id, plan, as_of, tz, proto)
    s = suggest(facts, doses, assessments, proto, as_of)
    if s.checks:
        return tuple(s.safety_codes)
    return tuple(dict.fromkeys(f for f in s.flags if f in SAFETY_RULE_CODES))
