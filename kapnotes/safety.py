"""The safety flags that follow a patient everywhere (lists, dashboard, queue, exports).

Three sources, read in a fixed number of queries for any number of patients: the latest
PHQ-9 answering item 9 (``suicidality``), the protocol's hold flags from the dose log (BP at or
above the hold threshold, a serious adverse event) within each patient's safety window, and
the holds of an open or pending engine suggestion that no single row shows (overuse, a dose
above the plan). Its own module so that patients and the review queue both read it without
importing each other.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlmodel import Session, col, func, select

from kapnotes.config import get_settings
from kapnotes.dosing import protocol_settings
from kapnotes.dosing.facts import safety_window_days, today_in
from kapnotes.dosing.protocol import Protocol, normalise_tag
from kapnotes.dosing.rules import HOLD_FLAGS
from kapnotes.models import (
    AdjustmentKind,
    AdjustmentStatus,
    Assessment,
    DoseAdjustment,
    DoseEntry,
    Instrument,
    TreatmentPlan,
)
from kapnotes.query import not_voided

ENGINE_ONLY_HOLDS = ("overuse", "dose_above_plan")


def safety_flags(session: Session, patient_ids) -> dict[int, list[str]]:
    """Flags that must follow a patient everywhere: the latest PHQ-9 with item 9 > 0, and the
    protocol's hold flags from the dose log (BP at or above the hold threshold, a serious
    adverse event) within its hold window, and the holds of the patient's open or pending engine
    suggestion that no single row shows (overuse, a dose above the plan).

    Three queries for any number of patients (``patient_ids`` may be a subquery). A PHQ-9
    that does not answer item 9 neither raises nor clears the flag.
    """
    ranked = (
        select(
            Assessment.patient_id,
            Assessment.item9,
            func.row_number()
            .over(partition_by=Assessment.patient_id,
                  order_by=(col(Assessment.administered_on).desc(), col(Assessment.id).desc()))
            .label("rn"),
        )
        .where(
            Assessment.instrument == Instrument.phq9.value,
            not_voided(Assessment),
            col(Assessment.item9).is_not(None),
            col(Assessment.patient_id).in_(patient_ids),
        )
        .subquery()
    )
    flags: dict[int, list[str]] = {}
    for pid, item9 in session.exec(select(ranked.c.patient_id, ranked.c.item9).where(ranked.c.rn == 1)).all():
        if item9:
            flags.setdefault(pid, []).append("suicidality")
    for pid, holds in hold_flags(session, patient_ids).items():
        flags.setdefault(pid, []).extend(holds)
    # the engine's holds that only the engine can see (a pattern, not one row): overuse, a dose above the plan
    for pid, row_flags in session.exec(
        select(DoseAdjustment.patient_id, DoseAdjustment.flags)
        .where(DoseAdjustment.kind == AdjustmentKind.suggestion.value, DoseAdjustment.action == "hold",
               col(DoseAdjustment.status).in_([AdjustmentStatus.open.value, AdjustmentStatus.pending.value]),
               col(DoseAdjustment.patient_id).in_(patient_ids))
    ).all():
        for flag in row_flags or []:
            if flag in ENGINE_ONLY_HOLDS and flag not in flags.get(pid, []):
                flags.setdefault(pid, []).append(flag)
    return flags


def flag_texts(proto: Protocol) -> dict[str, str]:
    """The banner's words for each safety flag, with the thresholds and windows of the protocol in
    force: a clinic that changed them must not read the defaults."""
    window = (f"the safety window: the last {proto.hold_window_days} days, or {proto.safety_interval_multiple} "
              "dosing intervals if longer")
    plan_window = f"the last {proto.plan_window_days} days (since the plan began, if later)"
    margin = f" (with a margin of {proto.overuse_margin})" if proto.overuse_margin else ""
    return {
        "suicidality": "SAFETY FLAG — latest PHQ-9 item 9 (thoughts of self-harm) is above 0. "
                       "Follow up before any dosing; dose increases are on hold.",
        "hypertension_severe": f"SAFETY FLAG — blood pressure at or above {proto.hold_systolic}/"
                               f"{proto.hold_diastolic} in {window}. Increases on hold.",
        "serious_adverse_event": f"SAFETY FLAG — a serious adverse event in {window}. Increases on hold.",
        "overuse": f"SAFETY FLAG — more doses taken than the plan allows{margin} in {plan_window}. "
                   "Increases on hold.",
        "dose_above_plan": f"SAFETY FLAG — a dose above the plan's dose was taken in {plan_window}. "
                           "Increases on hold.",
    }


def hold_flags(session: Session, patient_ids, as_of: date | None = None,
               proto: Protocol | None = None) -> dict[int, list[str]]:
    """Hold flags from the dose log (BP at or above the hold threshold, serious adverse event)
    within each patient's safety window up to today (max(14, 2 × their plan's interval)), for
    any number of patients (``patient_ids`` may be a subquery) in two queries."""
    tz = get_settings().tz
    as_of = as_of or today_in(tz)
    proto = proto or protocol_settings.in_force_or_default(session)
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
        .where(col(DoseEntry.patient_id).in_(patient_ids), not_voided(DoseEntry),
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
        if any(normalise_tag(t) in serious for t in (ae or "").split(";") if t.strip()):
            if "serious_adverse_event" not in flags:
                flags.append("serious_adverse_event")
    return {pid: sorted(f, key=HOLD_FLAGS.index) for pid, f in out.items() if f}
