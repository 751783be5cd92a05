"""The treatment summary: the period, the rows gathered for it, the audit event, the PDF.

Gathering (``gather_summary``, reads only) and rendering (``render_summary``) are separate so
a caller can close its database transaction before the slower PDF build; ``prepare_summary``
gathers and audits in the caller's transaction. Private process notes are never read here.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, replace
from datetime import date, datetime, time, timedelta

from sqlmodel import Session, func, select

from kapnotes import audit
from kapnotes.actor import Actor
from kapnotes.config import get_settings
from kapnotes.dosing import protocol_settings as protocol_mod
from kapnotes.errors import ValidationError
from kapnotes.exports.access import patient_for_export
from kapnotes.exports.rows import (
    doc_meta,
    dose_interval,
    dose_row,
    note_rows,
    patient_info,
    reason_text,
    score_row,
    user_names,
)
from kapnotes.exports.safety_section import gather_safety, plan_overrides
from kapnotes.exports.weeks import attention_reasons, bp_alerts, dose_week_rows
from kapnotes.models import (
    AdjustmentStatus,
    Assessment,
    DoseAdjustment,
    DoseEntry,
    NoteStatus,
    SessionNote,
    TreatmentPlan,
)
from kapnotes.patients import care_team
from kapnotes.pdf.model import AdjustmentRow, AttentionRow, DocMeta, PlanRow, ScoreRow, SummaryData
from kapnotes.query import not_voided, voided
from kapnotes.timeutil import fmt_local, to_local, utcnow

# --- the period ----------------------------------------------------------------------------------


def day_bounds(d_from: date, d_to: date, tz) -> tuple[datetime, datetime]:
    """The clinic days from ``d_from`` to ``d_to`` as a half-open span of moments."""
    return datetime.combine(d_from, time(), tz), datetime.combine(d_to + timedelta(days=1), time(), tz)


def record_span(session: Session, patient_id: int) -> tuple[date, date] | None:
    """The first and last clinic day with any dose, score, note or plan for the patient."""
    tz = get_settings().tz
    days: list[date] = []
    for lo, hi in (
        session.exec(select(func.min(DoseEntry.taken_at), func.max(DoseEntry.taken_at))
                     .where(DoseEntry.patient_id == patient_id, not_voided(DoseEntry))).one(),
        session.exec(select(func.min(TreatmentPlan.effective_from), func.max(TreatmentPlan.effective_from))
                     .where(TreatmentPlan.patient_id == patient_id)).one(),
    ):
        days += [to_local(v, tz).date() for v in (lo, hi) if v is not None]
    for lo, hi in (
        session.exec(select(func.min(Assessment.administered_on), func.max(Assessment.administered_on))
                     .where(Assessment.patient_id == patient_id, not_voided(Assessment))).one(),
        session.exec(select(func.min(SessionNote.session_date), func.max(SessionNote.session_date))
                     .where(SessionNote.patient_id == patient_id, SessionNote.status == NoteStatus.signed)).one(),
    ):
        days += [v for v in (lo, hi) if v is not None]
    return (min(days), max(days)) if days else None


def resolve_range(session: Session, patient_id: int, date_from: date | None, date_to: date | None) -> tuple[date, date]:
    """Default: the patient's whole record, first to last entry (today when there is none)."""
    if date_from is None or date_to is None:
        span = record_span(session, patient_id)
        today = to_local(utcnow(), get_settings().tz).date()
        first, last = span if span else (today, today)
        date_from = date_from or first
        date_to = date_to or max(last, date_from)
    if date_from > date_to:
        raise ValidationError({"date_from": f"The start date {date_from.isoformat()} is after the end date "
                                            f"{date_to.isoformat()}."})
    return date_from, date_to


# --- the rows of the period ------------------------------------------------------------------------


def _plans(session: Session, patient_id: int, end: datetime) -> list[TreatmentPlan]:
    return list(session.exec(
        select(TreatmentPlan).where(TreatmentPlan.patient_id == patient_id, TreatmentPlan.effective_from < end)
        .order_by(TreatmentPlan.version_number)
    ).all())


def _doses(session: Session, patient_id: int, start: datetime, end: datetime) -> tuple[list[DoseEntry], list]:
    """(the doses of the period, the times of the voided ones)."""
    in_period = (DoseEntry.patient_id == patient_id, DoseEntry.taken_at >= start, DoseEntry.taken_at < end)
    doses = session.exec(select(DoseEntry).where(not_voided(DoseEntry), *in_period)
                         .order_by(DoseEntry.taken_at, DoseEntry.id)).all()
    voided_times = session.exec(select(DoseEntry.taken_at).where(voided(DoseEntry), *in_period)).all()
    return list(doses), list(voided_times)


def _scores(session: Session, patient_id: int, date_from: date, date_to: date) -> list[Assessment]:
    return list(session.exec(
        select(Assessment).where(Assessment.patient_id == patient_id, not_voided(Assessment),
                                 Assessment.administered_on >= date_from, Assessment.administered_on <= date_to)
        .order_by(Assessment.administered_on, Assessment.id)
    ).all())


def _baseline(session: Session, patient_id: int) -> dict[str, ScoreRow]:
    """The earliest GAD-7 and PHQ-9 on record (response is measured against them)."""
    baseline: dict[str, ScoreRow] = {}
    for instrument in ("GAD-7", "PHQ-9"):
        first = session.exec(
            select(Assessment).where(Assessment.patient_id == patient_id, Assessment.instrument == instrument,
                                     not_voided(Assessment))
            .order_by(Assessment.administered_on, Assessment.id).limit(1)
        ).first()
        if first is not None:
            baseline[instrument] = score_row(first)
    return baseline


def _adjustments(session: Session, patient_id: int, start: datetime, end: datetime) -> list[DoseAdjustment]:
    return list(session.exec(
        select(DoseAdjustment).where(DoseAdjustment.patient_id == patient_id,
                                     DoseAdjustment.status != AdjustmentStatus.superseded,
                                     DoseAdjustment.created_at >= start, DoseAdjustment.created_at < end)
        .order_by(DoseAdjustment.created_at, DoseAdjustment.id)
    ).all())


def _notes(session: Session, actor: Actor | None, patient_id: int, date_from: date, date_to: date,
           include_drafts: bool) -> list[SessionNote]:
    """Signed notes of the period; the actor's own drafts too when asked (drafts stay with their author)."""
    note_q = select(SessionNote).where(SessionNote.patient_id == patient_id, SessionNote.session_date >= date_from,
                                       SessionNote.session_date <= date_to)
    if include_drafts:
        draft_ok = SessionNote.status == NoteStatus.draft
        if actor is not None:
            draft_ok = draft_ok & (SessionNote.author_id == actor.id)
        note_q = note_q.where((SessionNote.status == NoteStatus.signed) | draft_ok)
    else:
        note_q = note_q.where(SessionNote.status == NoteStatus.signed)
    return list(session.exec(note_q.order_by(SessionNote.session_date, SessionNote.start_time, SessionNote.id)).all())


def _plan_rows(session: Session, patient_id: int, plans: list[TreatmentPlan], names, tz) -> list[PlanRow]:
    newest = session.exec(select(func.max(TreatmentPlan.version_number))
                          .where(TreatmentPlan.patient_id == patient_id)).one() or 0
    overrides = plan_overrides(session, plans)
    return [
        PlanRow(
            version=p.version_number, effective_from=p.effective_from,
            effective=fmt_local(p.effective_from, tz, with_time=False), dose_mg=p.dose_mg,
            formulation=p.formulation, interval_days=p.interval_days, administration=p.administration,
            minutes_in_mouth=p.minutes_in_mouth, status=p.status, approved_by=names.get(p.approved_by_id, "—"),
            approved_at=fmt_local(p.created_at, tz), rationale=p.rationale or "",
            superseded=p.version_number < newest, override=overrides.get(p.adjustment_id, ""),
        )
        for p in plans
    ]


def _adjustment_row(a: DoseAdjustment, names, tz) -> AdjustmentRow:
    decided = a.decided_dose_mg is not None or a.decided_interval_days is not None
    protocol = ""
    if a.protocol_name:
        protocol = f"{a.protocol_name} ({a.protocol_hash[:12]})" if a.protocol_hash else a.protocol_name
    return AdjustmentRow(
        id=a.id, created=fmt_local(a.created_at, tz, with_time=False), kind=a.kind, action=a.action,
        status=a.status, proposed=dose_interval(a.proposed_dose_mg, a.proposed_interval_days),
        reasons=tuple(t for t in (reason_text(r) for r in (a.reasons or [])) if t),
        flags=tuple(str(f) for f in (a.flags or [])), therapist_note=a.therapist_note or "",
        decided_by=names.get(a.decided_by_id, "") if a.decided_by_id else "",
        decided_at=fmt_local(a.decided_at, tz) if a.decided_at else "",
        decision=dose_interval(a.decided_dose_mg, a.decided_interval_days) if decided else "",
        rationale=a.decision_rationale or "", protocol=protocol,
    )


def _bp_thresholds(proto) -> str:
    return (f"{proto.decrease_systolic}/{proto.decrease_diastolic} (decrease) and "
            f"{proto.hold_systolic}/{proto.hold_diastolic} (hold)")


# --- the summary -----------------------------------------------------------------------------------


def gather_summary(session: Session, actor: Actor | None, patient_id: int, date_from: date | None = None,
                   date_to: date | None = None, *, include_drafts: bool = False, generated_at: datetime | None = None,
                   as_operator: bool = False, full_dose_log: bool = False, full_notes: bool = False) -> SummaryData:
    """Everything the summary prints. Reads only: no audit (see ``prepare_summary``).

    Home doses are summed by week unless ``full_dose_log``; in-session doses and doses with a
    safety-relevant finding are always listed one by one (``attention``). Notes print as one
    table row each unless ``full_notes`` (the data gathered is the same either way)."""
    patient = patient_for_export(session, actor, patient_id, as_operator)
    tz = get_settings().tz
    date_from, date_to = resolve_range(session, patient_id, date_from, date_to)
    start, end = day_bounds(date_from, date_to, tz)

    plans = _plans(session, patient_id, end)
    doses, voided_times = _doses(session, patient_id, start, end)
    scores = _scores(session, patient_id, date_from, date_to)
    baseline = _baseline(session, patient_id)
    adjustments = _adjustments(session, patient_id, start, end)
    notes = _notes(session, actor, patient_id, date_from, date_to, include_drafts)

    names = user_names(session, {p.approved_by_id for p in plans} | {a.decided_by_id for a in adjustments})
    plan_rows = _plan_rows(session, patient_id, plans, names, tz)
    proto = protocol_mod.in_force_or_default(session)
    alerts = bp_alerts(doses, proto)
    dose_rows = {d.id: dose_row(d, tz) for d in doses}
    attention = [AttentionRow(dose_rows[d.id], reasons) for d in doses
                 if (reasons := attention_reasons(d, alerts, plans, proto))]
    return SummaryData(
        meta=doc_meta(actor, generated_at), patient=patient_info(patient), date_from=date_from, date_to=date_to,
        care_team=[f"{name} ({role})" for name, role in care_team(session, patient.care_team_id)],
        plans=plan_rows, scores=[score_row(a) for a in scores], baseline=baseline,
        doses=list(dose_rows.values()), adjustments=[_adjustment_row(a, names, tz) for a in adjustments],
        notes=note_rows(session, notes, tz),
        include_drafts=include_drafts, safety=gather_safety(session, patient_id, plans, start, end, tz),
        bp_alerts=alerts, bp_thresholds=_bp_thresholds(proto), bp_hold=(proto.hold_systolic, proto.hold_diastolic),
        serious_events=tuple(proto.serious_adverse_events),
        full_dose_log=full_dose_log, full_notes=full_notes, attention=attention, voided=len(voided_times),
        weeks=dose_week_rows(doses, voided_times, plans, date_from, date_to, tz) if doses or voided_times else [],
    )


def record_summary_export(session: Session, actor: Actor | None, patient_id: int, data: SummaryData) -> None:
    drafts = sum(1 for n in data.notes if n.status != NoteStatus.signed)
    audit.record(
        session, actor, "export.summary_pdf", "patient", patient_id, patient_id,
        detail=(f"from={data.date_from.isoformat()};to={data.date_to.isoformat()};notes={len(data.notes)};"
                f"drafts={drafts};doses={len(data.doses)};scores={len(data.scores)}"),
    )


def prepare_summary(session: Session, actor: Actor | None, patient_id: int, date_from: date | None = None,
                    date_to: date | None = None, *, include_drafts: bool = False,
                    generated_at: datetime | None = None, as_operator: bool = False,
                    full_dose_log: bool = False, full_notes: bool = False) -> SummaryData:
    """Gather the summary and audit the export, in the caller's transaction."""
    data = gather_summary(session, actor, patient_id, date_from, date_to, include_drafts=include_drafts,
                          generated_at=generated_at, as_operator=as_operator, full_dose_log=full_dose_log,
                          full_notes=full_notes)
    record_summary_export(session, actor, patient_id, data)
    return data


def render_summary(data: SummaryData, invariant: bool = False) -> bytes:
    from kapnotes.pdf.summary_pdf import build_summary_pdf  # ReportLab only when a PDF is built

    return build_summary_pdf(data, invariant=invariant)


def summary_pdf(session: Session, actor: Actor | None, patient_id: int, date_from: date | None = None,
                date_to: date | None = None, *, include_drafts: bool = False, generated_at: datetime | None = None,
                invariant: bool = False, as_operator: bool = False, full_dose_log: bool = False,
                full_notes: bool = False) -> bytes:
    data = prepare_summary(session, actor, patient_id, date_from, date_to, include_drafts=include_drafts,
                           generated_at=generated_at, as_operator=as_operator, full_dose_log=full_dose_log,
                           full_notes=full_notes)
    return render_summary(data, invariant=invariant)


def fingerprint(data: SummaryData) -> str:
    """A digest of what the summary prints, less who generated it and when (for resumable bulk export)."""
    content = asdict(replace(data, meta=DocMeta(data.meta.clinic_name, "", "")))
    return hashlib.sha256(repr(content).encode("utf-8")).hexdigest()
