"""PDF exports: who may export what, the data gathered for a document, and the audit event.

- A note PDF: any signed note of a patient on the actor's care team; a draft only for
  its author (drafts stay with the author), watermarked DRAFT.
- A treatment summary: a patient and a date range; signed notes in the range, plus the
  actor's own drafts only when asked. Private process notes are never read here.
- Every export is one audit event (``export.note_pdf`` / ``export.summary_pdf``) with ids
  and counts only.
- ``actor`` None is the operator's command line (``as_operator=True`` must be said
  explicitly), audited as "system".

Gathering and rendering are separate steps (``prepare_*`` then ``render_*``) so a caller
can close its database transaction before the (slower) PDF build.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import asdict, replace
from datetime import date, datetime, time, timedelta

from sqlmodel import Session, col, func, select

from kapnotes import audit, vocab
from kapnotes.access import require_patient
from kapnotes.actor import Actor
from kapnotes.config import get_settings
from kapnotes.dosing import protocol_settings as protocol_mod
from kapnotes.errors import KapError, NotFound, PermissionDenied, ValidationError
from kapnotes.models import (
    Addendum,
    AdjustmentStatus,
    Assessment,
    DoseAdjustment,
    DoseEntry,
    NoteStatus,
    Patient,
    SessionNote,
    TreatmentPlan,
    User,
)
from kapnotes.notes import signature_state
from kapnotes.patients import care_team
from kapnotes.pdf import BUILD_LOCK
from kapnotes.pdf.model import (
    ACTIVE_SAFETY_CODES,
    AddendumRow,
    AdjustmentRow,
    AttentionRow,
    DocMeta,
    DoseRow,
    NoteData,
    PatientInfo,
    PlanRow,
    SafetyData,
    SafetyItem,
    ScoreRow,
    SummaryData,
    WeekRow,
    safety_words,
)
from kapnotes.timeutil import fmt_local, to_local, utcnow

OPERATOR_NAME = "KAPNotes operator (command line)"

# ReportLab is not thread-safe: one build at a time per process (Streamlit serves every
# user's session from threads of one process). The pdf package holds the same lock.
EXPORT_LOCK: threading.RLock = BUILD_LOCK


# --- access --------------------------------------------------------------------------


def _patient(session: Session, actor: Actor | None, patient_id: int, as_operator: bool) -> Patient:
    if actor is None:
        if not as_operator:
            raise PermissionDenied("Please sign in.")
        patient = session.get(Patient, patient_id)
        if patient is None:
            raise NotFound(f"No patient with id {patient_id}.")
        return patient
    return require_patient(session, actor, patient_id)


def _names(session: Session, ids) -> dict[int, str]:
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    rows = session.exec(select(User).where(col(User.id).in_(ids))).all()
    return {u.id: (f"{u.full_name}, {u.credentials}" if u.credentials else u.full_name) for u in rows}


def _meta(actor: Actor | None, generated_at: datetime | None) -> DocMeta:
    settings = get_settings()
    when = generated_at or utcnow()
    return DocMeta(settings.clinic_name, fmt_local(when, settings.tz), actor.display_name if actor else OPERATOR_NAME)


def _patient_info(p: Patient) -> PatientInfo:
    return PatientInfo(p.full_name, p.mrn, p.date_of_birth, p.diagnosis, p.status)


# --- rows ------------------------------------------------------------------------------


def _bp(sys_: int | None, dia: int | None) -> str:
    if sys_ is None and dia is None:
        return ""
    return f"{sys_ if sys_ is not None else '—'}/{dia if dia is not None else '—'}"


def _dose_row(d: DoseEntry, tz) -> DoseRow:
    local = to_local(d.taken_at, tz)
    return DoseRow(
        id=d.id, taken_at=local.strftime("%Y-%m-%d %H:%M"), taken_on=local.date(), dose_mg=d.dose_mg,
        formulation=d.formulation, administration=d.administration, context=d.context,
        anxiety_before=d.anxiety_before, anxiety_after=d.anxiety_after, dissociation=d.dissociation,
        nausea=d.nausea, vomited=bool(d.vomited), bp_pre=_bp(d.bp_systolic_pre, d.bp_diastolic_pre),
        bp_post=_bp(d.bp_systolic_post, d.bp_diastolic_post), heart_rate=d.heart_rate,
        adverse_events=d.adverse_events or "", notes=d.notes or "",
    )


def _score_row(a: Assessment) -> ScoreRow:
    return ScoreRow(a.id, a.instrument, a.administered_on, a.total, a.band, a.item9)


def _note_rows(session: Session, notes: list[SessionNote], tz) -> list[NoteData]:
    """NoteData for many notes with a fixed number of queries (no N+1)."""
    if not notes:
        return []
    ids = [n.id for n in notes]
    integrates = {n.integrates_dose_id for n in notes if n.integrates_dose_id}
    dose_q = select(DoseEntry).where(col(DoseEntry.voided_at).is_(None))
    if integrates:
        dose_q = dose_q.where((col(DoseEntry.session_note_id).in_(ids)) | (col(DoseEntry.id).in_(integrates)))
    else:
        dose_q = dose_q.where(col(DoseEntry.session_note_id).in_(ids))
    doses = session.exec(dose_q.order_by(DoseEntry.taken_at, DoseEntry.id)).all()
    scores = session.exec(
        select(Assessment).where(col(Assessment.session_note_id).in_(ids), col(Assessment.voided_at).is_(None))
        .order_by(Assessment.administered_on, Assessment.id)
    ).all()
    addenda = session.exec(
        select(Addendum).where(col(Addendum.note_id).in_(ids)).order_by(Addendum.signed_at, Addendum.id)
    ).all()
    names = _names(session, {n.author_id for n in notes} | {n.signed_by_id for n in notes}
                   | {a.author_id for a in addenda})
    out = []
    for n in notes:
        linked = tuple(_dose_row(d, tz) for d in doses if d.session_note_id == n.id or d.id == n.integrates_dose_id)
        signed = n.status == NoteStatus.signed
        out.append(NoteData(
            id=n.id, note_type=n.note_type, status=n.status, session_date=n.session_date,
            start_time=n.start_time, end_time=n.end_time, modality=n.modality,
            author=names.get(n.author_id, "—"), fields=dict(n.fields or {}), free_text=n.free_text,
            signed_by=names.get(n.signed_by_id) if signed else None,
            signed_at=fmt_local(n.signed_at, tz) if signed and n.signed_at else None,
            content_hash=n.content_hash if signed else None,
            # the keyed signature (MAC) as well as the hash: a rewritten note with a recomputed hash fails
            hash_verified=(signature_state(n) in ("ok", "unsealed")) if signed and n.content_hash else None,
            carried_over=n.carried_over_from_id is not None,
            doses=linked,
            scores=tuple(_score_row(a) for a in scores if a.session_note_id == n.id),
            addenda=tuple(AddendumRow(a.id, names.get(a.author_id, "—"), fmt_local(a.signed_at, tz), a.text,
                                      a.content_hash) for a in addenda if a.note_id == n.id),
        ))
    return out


# --- note PDF --------------------------------------------------------------------------


def prepare_note(session: Session, actor: Actor | None, note_id: int, *, generated_at: datetime | None = None,
                 as_operator: bool = False, record: bool = True) -> tuple[DocMeta, PatientInfo, NoteData]:
    """Check access, gather one note, and (``record``) audit the export."""
    note = session.get(SessionNote, note_id)
    if note is None:
        if actor is None:
            raise NotFound(f"No note with id {note_id}.")
        raise PermissionDenied()
    patient = _patient(session, actor, note.patient_id, as_operator)
    if note.status != NoteStatus.signed and actor is not None and note.author_id != actor.id:
        raise PermissionDenied("Drafts are visible to their author only.")
    tz = get_settings().tz
    data = _note_rows(session, [note], tz)[0]
    if record:
        audit.record(session, actor, "export.note_pdf", "session_note", note.id, patient.id,
                     detail=f"status={note.status};addenda={len(data.addenda)}")
    return _meta(actor, generated_at), _patient_info(patient), data


def render_note(meta: DocMeta, patient: PatientInfo, note: NoteData, invariant: bool = False) -> bytes:
    from kapnotes.pdf.note_pdf import build_note_pdf

    return build_note_pdf(meta, patient, note, invariant=invariant)


def note_pdf(session: Session, actor: Actor | None, note_id: int, *, generated_at: datetime | None = None,
             invariant: bool = False, as_operator: bool = False) -> bytes:
    meta, patient, note = prepare_note(session, actor, note_id, generated_at=generated_at, as_operator=as_operator)
    return render_note(meta, patient, note, invariant=invariant)


# --- treatment summary -----------------------------------------------------------------


def _bounds(d_from: date, d_to: date, tz) -> tuple[datetime, datetime]:
    return datetime.combine(d_from, time(), tz), datetime.combine(d_to + timedelta(days=1), time(), tz)


def record_span(session: Session, patient_id: int) -> tuple[date, date] | None:
    """The first and last clinic day with any dose, score, note or plan for the patient."""
    tz = get_settings().tz
    days: list[date] = []
    for lo, hi in (
        session.exec(select(func.min(DoseEntry.taken_at), func.max(DoseEntry.taken_at))
                     .where(DoseEntry.patient_id == patient_id, col(DoseEntry.voided_at).is_(None))).one(),
        session.exec(select(func.min(TreatmentPlan.effective_from), func.max(TreatmentPlan.effective_from))
                     .where(TreatmentPlan.patient_id == patient_id)).one(),
    ):
        days += [to_local(v, tz).date() for v in (lo, hi) if v is not None]
    for lo, hi in (
        session.exec(select(func.min(Assessment.administered_on), func.max(Assessment.administered_on))
                     .where(Assessment.patient_id == patient_id, col(Assessment.voided_at).is_(None))).one(),
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


def _reason_text(r) -> str:
    if isinstance(r, dict):
        return str(r.get("text") or r.get("code") or "")
    return str(r)


def _dose_interval(dose: float | None, interval: int | None) -> str:
    parts = []
    if dose is not None:
        parts.append(f"{dose:g} mg")
    if interval is not None:
        parts.append(vocab.every(interval))
    return " ".join(parts) or "—"


# --- the safety section: a handful of rows, whatever the length of the record ---------------

URGENT_ACTIONS = ("hold", "decrease", "review")
_ACTION_WORDS = {"hold": "Hold", "decrease": "Decrease", "review": "Review", "increase": "Increase",
                 "space_out": "Space out", "continue": "Continue", "insufficient_data": "Insufficient data",
                 "change": "Change", "shorten_interval": "Shorter interval"}


def _protocol(session: Session):
    try:
        return protocol_mod.in_force(session)
    except KapError:  # a broken clinic file: the summary still prints, against the defaults
        return protocol_mod.load_default()


def _meets(s: int | None, d: int | None, at_s: int, at_d: int) -> bool:
    return (s is not None and s >= at_s) or (d is not None and d >= at_d)


def bp_alerts(doses, proto) -> dict[int, str]:
    """Doses with a reading at or above the protocol's decrease (or hold) threshold, in words."""
    out: dict[int, str] = {}
    for d in doses:
        parts = []
        for when, s, di in (("before", d.bp_systolic_pre, d.bp_diastolic_pre),
                            ("after", d.bp_systolic_post, d.bp_diastolic_post)):
            if _meets(s, di, proto.hold_systolic, proto.hold_diastolic):
                parts.append(f"BP {_bp(s, di)} {when} the dose (hold level)")
            elif _meets(s, di, proto.decrease_systolic, proto.decrease_diastolic):
                parts.append(f"BP {_bp(s, di)} {when} the dose")
        if parts:
            out[d.id] = "; ".join(parts)
    return out


def _status_words(a: DoseAdjustment, names: dict[int, str], tz) -> str:
    who = names.get(a.decided_by_id, "") if a.decided_by_id else ""
    when = fmt_local(a.decided_at, tz, with_time=False) if a.decided_at else ""
    if a.status in (AdjustmentStatus.approved, AdjustmentStatus.modified, AdjustmentStatus.rejected):
        text = f"{a.status} by {who}, {when}"
        return text + (f": {a.decision_rationale}" if a.decision_rationale else "")
    return {"pending": "waiting for the prescriber", "open": "not yet sent to the prescriber",
            "superseded": "replaced by a newer evaluation", "withdrawn": "withdrawn"}.get(a.status, str(a.status))


def _reasons(a: DoseAdjustment) -> str:
    return " ".join(t for t in (_reason_text(r) for r in (a.reasons or [])) if t)


def _engine_holds(rows: list[DoseAdjustment], names, tz) -> list[SafetyItem]:
    """Engine holds in the period; a run of re-evaluations with the same flags is one line."""
    groups: list[list[DoseAdjustment]] = []
    for a in rows:
        if groups and list(groups[-1][-1].flags or []) == list(a.flags or []) \
                and groups[-1][-1].status == AdjustmentStatus.superseded:
            groups[-1].append(a)
        else:
            groups.append([a])
    out = []
    for g in groups:
        first, last = g[0], g[-1]
        when = fmt_local(first.created_at, tz, with_time=False)
        if len(g) > 1:
            when += f" to {fmt_local(last.created_at, tz, with_time=False)}"
        hold_codes = [f for f in (last.flags or []) if f in ACTIVE_SAFETY_CODES] or list(last.flags or [])
        out.append(SafetyItem(when, "Engine hold: " + "; ".join(safety_words(f) for f in hold_codes),
                              _reasons(last), _status_words(last, names, tz)))
    return out


def _held_plan_versions(plans, start: datetime, end: datetime, names, tz) -> list[SafetyItem]:
    out = []
    for i, p in enumerate(plans):
        nxt = plans[i + 1].effective_from if i + 1 < len(plans) else None
        in_period = p.effective_from < end and (nxt is None or nxt > start)
        if p.status == "held" and in_period:
            out.append(SafetyItem(fmt_local(p.effective_from, tz, with_time=False),
                                  f"Plan version {p.version_number} held", p.rationale or "",
                                  names.get(p.approved_by_id, "")))
    return out


def _override_item(a: DoseAdjustment, names, tz) -> SafetyItem:
    rules = "; ".join(safety_words(r) for r in (a.override_rules or [])) or "a safety rule"
    change = _dose_interval(a.decided_dose_mg, a.decided_interval_days)
    what = f"{_ACTION_WORDS.get(a.action, a.action)} to {change}, overriding: {rules}"
    return SafetyItem(fmt_local(a.decided_at, tz), what, f"Override rationale: {a.override_rationale}",
                      names.get(a.decided_by_id, "—"))


def _active_flags(session: Session, patient_id: int, live: list[DoseAdjustment]) -> list[str]:
    """The flags the app shows on every page, plus those of the engine's live suggestions
    (overuse, dose above plan), each with the engine's own sentence when it has one."""
    from kapnotes.patients import safety_flags

    codes = list(safety_flags(session, [patient_id]).get(patient_id, []))
    texts: dict[str, str] = {}
    for a in live:  # newest first
        codes += [f for f in (a.flags or []) if f in ACTIVE_SAFETY_CODES]
        for r in a.reasons or []:
            if isinstance(r, dict) and r.get("code"):
                texts.setdefault(r["code"], str(r.get("text") or ""))
    ordered = [c for c in ACTIVE_SAFETY_CODES if c in codes]
    return [safety_words(c) + (f": {texts[c]}" if texts.get(c) else "") for c in ordered]


def gather_safety(session: Session, patient_id: int, plans, start: datetime, end: datetime, tz) -> SafetyData:
    """Active flags today, holds and safety overrides in the period, urgent items still waiting.

    Reads a handful of rows (one query for the adjustments it needs), never the dose log."""
    adj = session.exec(
        select(DoseAdjustment).where(
            DoseAdjustment.patient_id == patient_id,
            ((DoseAdjustment.kind == "suggestion") & (DoseAdjustment.action == "hold")
             & (DoseAdjustment.created_at >= start) & (DoseAdjustment.created_at < end))
            | (col(DoseAdjustment.override_rationale).is_not(None) & (DoseAdjustment.decided_at >= start)
               & (DoseAdjustment.decided_at < end))
            | ((DoseAdjustment.status == AdjustmentStatus.pending)
               & (col(DoseAdjustment.urgent).is_(True) | col(DoseAdjustment.action).in_(URGENT_ACTIONS))))
        .order_by(DoseAdjustment.id)
    ).all()
    live = session.exec(
        select(DoseAdjustment).where(DoseAdjustment.patient_id == patient_id, DoseAdjustment.kind == "suggestion",
                                     col(DoseAdjustment.status).in_((AdjustmentStatus.open, AdjustmentStatus.pending)))
        .order_by(col(DoseAdjustment.id).desc()).limit(5)
    ).all()
    names = _names(session, {a.decided_by_id for a in adj} | {p.approved_by_id for p in plans})
    in_period = lambda t: t is not None and start <= t < end  # noqa: E731
    holds = _engine_holds([a for a in adj if a.kind == "suggestion" and a.action == "hold"
                           and in_period(a.created_at)], names, tz)
    holds += _held_plan_versions(list(plans), start, end, names, tz)
    overrides = [_override_item(a, names, tz) for a in adj
                 if a.override_rationale and in_period(a.decided_at)]
    waiting = [SafetyItem(fmt_local(a.created_at, tz, with_time=False),
                          f"{_ACTION_WORDS.get(a.action, a.action)}: "
                          f"{_dose_interval(a.proposed_dose_mg, a.proposed_interval_days)}",
                          _reasons(a), "waiting for the prescriber")
               for a in adj if a.status == AdjustmentStatus.pending
               and (a.urgent or a.action in URGENT_ACTIONS)]
    today = to_local(utcnow(), tz).date()
    return SafetyData(as_of=today.isoformat(), active=_active_flags(session, patient_id, list(live)),
                      holds=sorted(holds, key=lambda h: h.when), overrides=overrides, waiting=waiting)


def _plan_overrides(session: Session, plans) -> dict[int, str]:
    """{adjustment id: the override in words} for the decisions that produced plan versions."""
    ids = [p.adjustment_id for p in plans if p.adjustment_id]
    if not ids:
        return {}
    rows = session.exec(select(DoseAdjustment.id, DoseAdjustment.override_rules, DoseAdjustment.override_rationale)
                        .where(col(DoseAdjustment.id).in_(ids), col(DoseAdjustment.override_rationale).is_not(None))
                        ).all()
    return {i: ("Safety override (" + "; ".join(safety_words(r) for r in (rules or [])) + f"): {why}")
            for i, rules, why in rows}



# --- the dose log by week, and the doses that need attention (issue 17 item 4) -----------------

def _plan_at(plans, moment: datetime):
    """The plan version in force at a moment: the newest one effective by then."""
    current = None
    for p in plans:  # ordered by version
        if p.effective_from <= moment:
            current = p
    return current


def _mg(x: float) -> str:
    return f"{x:g} mg"


def _bp_key(s: int | None, d: int | None) -> tuple[int, int]:
    return (s if s is not None else -1, d if d is not None else -1)


def dose_week_rows(doses, voided_times, plans, date_from: date, date_to: date, tz) -> list[WeekRow]:
    """Monday-to-Sunday weeks (clinic days) from the week of ``date_from`` to that of ``date_to``.

    ``taken`` counts every dose not voided (home and in session); ``planned`` counts, for each
    day of the week inside the period, 1 / interval of the plan in force that day when it is
    active (so 7 for a daily plan, 1 for a weekly one), rounded."""
    first = date_from - timedelta(days=date_from.weekday())
    by_week: dict[date, list] = {}
    for d in doses:
        day = to_local(d.taken_at, tz).date()
        by_week.setdefault(day - timedelta(days=day.weekday()), []).append(d)
    voided: dict[date, int] = {}
    for t in voided_times:
        day = to_local(t, tz).date()
        monday = day - timedelta(days=day.weekday())
        voided[monday] = voided.get(monday, 0) + 1
    out = []
    monday = first
    while monday <= date_to:
        ds = by_week.get(monday, [])
        planned = 0.0
        for k in range(7):
            day = monday + timedelta(days=k)
            if date_from <= day <= date_to:
                plan = _plan_at(plans, datetime.combine(day + timedelta(days=1), time(), tz))
                if plan is not None and plan.status == "active" and plan.interval_days:
                    planned += 1 / plan.interval_days
        mg: dict[float, int] = {}
        for d in ds:
            mg[d.dose_mg] = mg.get(d.dose_mg, 0) + 1
        before = [d.anxiety_before for d in ds if d.anxiety_before is not None]
        after = [d.anxiety_after for d in ds if d.anxiety_after is not None]
        anxiety = "—"
        if before or after:
            mean = lambda xs: f"{sum(xs) / len(xs):.1f}" if xs else "—"  # noqa: E731
            anxiety = f"{mean(before)} → {mean(after)}"
        readings = [(s_, d_) for d in ds for s_, d_ in ((d.bp_systolic_pre, d.bp_diastolic_pre),
                                                        (d.bp_systolic_post, d.bp_diastolic_post))
                    if s_ is not None or d_ is not None]
        tags: dict[str, int] = {}
        for d in ds:
            for t in (d.adverse_events or "").split(";"):
                if t.strip():
                    word = t.strip().replace("_", " ")
                    tags[word] = tags.get(word, 0) + 1
        iso = monday.isocalendar()
        sunday = monday + timedelta(days=6)
        out.append(WeekRow(
            start=monday, label=f"{iso.year}-W{iso.week:02d}, {monday:%d %b} – {sunday:%d %b}",
            taken=len(ds), planned=round(planned),
            doses=", ".join(f"{_mg(k)} ×{v}" for k, v in sorted(mg.items())) or "—", anxiety=anxiety,
            dissociation_max=max((d.dissociation for d in ds if d.dissociation is not None), default=None),
            nausea_max=max((d.nausea for d in ds if d.nausea is not None), default=None),
            vomited=sum(1 for d in ds if d.vomited),
            bp_max=_bp(*max(readings, key=lambda r: _bp_key(*r))) if readings else "",
            adverse="; ".join(f"{k} ×{v}" if v > 1 else k for k, v in tags.items()),
            voided=voided.get(monday, 0),
        ))
        monday += timedelta(days=7)
    return out


def attention_reasons(d, alerts: dict[int, str], plans, proto) -> tuple[str, ...]:
    """Why a dose is printed on its own line (in words); empty when it can be summed into its week."""
    reasons = []
    if d.context == "in_session":
        reasons.append("In session")
    plan = _plan_at(plans, d.taken_at)
    if plan is not None and d.dose_mg > plan.dose_mg:
        reasons.append(f"Dose above the plan ({_mg(d.dose_mg)}; plan {_mg(plan.dose_mg)})")
    tags = [t.strip().replace("_", " ") for t in (d.adverse_events or "").split(";") if t.strip()]
    if tags:
        reasons.append("Adverse event: " + "; ".join(tags))
    if d.id in alerts:
        reasons.append(alerts[d.id])
    if d.vomited:
        reasons.append("Vomited")
    if d.nausea is not None and d.nausea >= proto.severe_nausea:
        reasons.append(f"Severe nausea ({d.nausea} of 3)")
    return tuple(reasons)


def gather_summary(session: Session, actor: Actor | None, patient_id: int, date_from: date | None = None,
                   date_to: date | None = None, *, include_drafts: bool = False, generated_at: datetime | None = None,
                   as_operator: bool = False, full_dose_log: bool = False, full_notes: bool = False) -> SummaryData:
    """Everything the summary prints. Reads only: no audit (see ``prepare_summary``).

    Home doses are summed by week unless ``full_dose_log``; in-session doses and doses with a
    safety-relevant finding are always listed one by one (``attention``). Notes print as one
    table row each unless ``full_notes`` (the data gathered is the same either way)."""
    patient = _patient(session, actor, patient_id, as_operator)
    tz = get_settings().tz
    date_from, date_to = resolve_range(session, patient_id, date_from, date_to)
    start, end = _bounds(date_from, date_to, tz)

    plans = session.exec(
        select(TreatmentPlan).where(TreatmentPlan.patient_id == patient_id, TreatmentPlan.effective_from < end)
        .order_by(TreatmentPlan.version_number)
    ).all()
    doses = session.exec(
        select(DoseEntry).where(DoseEntry.patient_id == patient_id, col(DoseEntry.voided_at).is_(None),
                                DoseEntry.taken_at >= start, DoseEntry.taken_at < end)
        .order_by(DoseEntry.taken_at, DoseEntry.id)
    ).all()
    voided_times = session.exec(
        select(DoseEntry.taken_at).where(DoseEntry.patient_id == patient_id, col(DoseEntry.voided_at).is_not(None),
                                         DoseEntry.taken_at >= start, DoseEntry.taken_at < end)
    ).all()
    scores = session.exec(
        select(Assessment).where(Assessment.patient_id == patient_id, col(Assessment.voided_at).is_(None),
                                 Assessment.administered_on >= date_from, Assessment.administered_on <= date_to)
        .order_by(Assessment.administered_on, Assessment.id)
    ).all()
    baseline: dict[str, ScoreRow] = {}
    for instrument in ("GAD-7", "PHQ-9"):
        first = session.exec(
            select(Assessment).where(Assessment.patient_id == patient_id, Assessment.instrument == instrument,
                                     col(Assessment.voided_at).is_(None))
            .order_by(Assessment.administered_on, Assessment.id).limit(1)
        ).first()
        if first is not None:
            baseline[instrument] = _score_row(first)
    adjustments = session.exec(
        select(DoseAdjustment).where(DoseAdjustment.patient_id == patient_id,
                                     DoseAdjustment.status != AdjustmentStatus.superseded,
                                     DoseAdjustment.created_at >= start, DoseAdjustment.created_at < end)
        .order_by(DoseAdjustment.created_at, DoseAdjustment.id)
    ).all()
    note_q = select(SessionNote).where(SessionNote.patient_id == patient_id, SessionNote.session_date >= date_from,
                                       SessionNote.session_date <= date_to)
    if include_drafts:
        draft_ok = SessionNote.status == NoteStatus.draft
        if actor is not None:  # drafts stay with their author
            draft_ok = draft_ok & (SessionNote.author_id == actor.id)
        note_q = note_q.where((SessionNote.status == NoteStatus.signed) | draft_ok)
    else:
        note_q = note_q.where(SessionNote.status == NoteStatus.signed)
    notes = session.exec(note_q.order_by(SessionNote.session_date, SessionNote.start_time, SessionNote.id)).all()

    names = _names(session, {p.approved_by_id for p in plans} | {a.decided_by_id for a in adjustments})
    newest = session.exec(select(func.max(TreatmentPlan.version_number))
                          .where(TreatmentPlan.patient_id == patient_id)).one() or 0
    overrides = _plan_overrides(session, plans)
    proto = _protocol(session)
    plan_rows = [
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
    adj_rows = [
        AdjustmentRow(
            id=a.id, created=fmt_local(a.created_at, tz, with_time=False), kind=a.kind, action=a.action,
            status=a.status, proposed=_dose_interval(a.proposed_dose_mg, a.proposed_interval_days),
            reasons=tuple(t for t in (_reason_text(r) for r in (a.reasons or [])) if t),
            flags=tuple(str(f) for f in (a.flags or [])), therapist_note=a.therapist_note or "",
            decided_by=names.get(a.decided_by_id, "") if a.decided_by_id else "",
            decided_at=fmt_local(a.decided_at, tz) if a.decided_at else "",
            decision=_dose_interval(a.decided_dose_mg, a.decided_interval_days)
            if (a.decided_dose_mg is not None or a.decided_interval_days is not None) else "",
            rationale=a.decision_rationale or "",
            protocol=(f"{a.protocol_name} ({a.protocol_hash[:12]})" if a.protocol_hash else a.protocol_name)
            if a.protocol_name else "",
        )
        for a in adjustments
    ]
    alerts = bp_alerts(doses, proto)
    dose_rows = {d.id: _dose_row(d, tz) for d in doses}
    attention = []
    for d in doses:
        reasons = attention_reasons(d, alerts, plans, proto)
        if reasons:
            attention.append(AttentionRow(dose_rows[d.id], reasons))
    return SummaryData(
        meta=_meta(actor, generated_at), patient=_patient_info(patient), date_from=date_from, date_to=date_to,
        care_team=[f"{name} ({role})" for name, role in care_team(session, patient.care_team_id)],
        plans=plan_rows, scores=[_score_row(a) for a in scores], baseline=baseline,
        doses=list(dose_rows.values()), adjustments=adj_rows, notes=_note_rows(session, list(notes), tz),
        include_drafts=include_drafts, safety=gather_safety(session, patient_id, plans, start, end, tz),
        bp_alerts=alerts,
        bp_thresholds=(f"{proto.decrease_systolic}/{proto.decrease_diastolic} (decrease) and "
                       f"{proto.hold_systolic}/{proto.hold_diastolic} (hold)"),
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
    from kapnotes.pdf.summary_pdf import build_summary_pdf

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


def patient_id_for_mrn(session: Session, mrn: str) -> int:
    pid = session.exec(select(Patient.id).where(Patient.mrn == mrn.strip())).first()
    if pid is None:
        raise ValidationError({"patient": f"No patient with MRN {mrn!r}."})
    return pid


def all_patient_ids(session: Session) -> list[tuple[int, str]]:
    return [(pid, mrn) for pid, mrn in session.exec(select(Patient.id, Patient.mrn).order_by(Patient.mrn)).all()]


def patient_export_weights(session: Session) -> dict[int, int]:
    """A rough cost of each patient's summary: dose entries plus ten per session note (a note
    renders as several paragraphs). Used only to hand bulk-export workers the heaviest first."""
    weights: dict[int, int] = {}
    for pid, n in session.exec(select(DoseEntry.patient_id, func.count()).group_by(DoseEntry.patient_id)).all():
        weights[pid] = weights.get(pid, 0) + int(n)
    for pid, n in session.exec(select(SessionNote.patient_id, func.count()).group_by(SessionNote.patient_id)).all():
        weights[pid] = weights.get(pid, 0) + 10 * int(n)
    return weights


def exportable_notes(session: Session, actor: Actor, patient_id: int, include_drafts: bool = False,
                     limit: int = 500) -> list[tuple[int, str, date, str]]:
    """(id, note type, session date, status) of the notes this actor may export, newest first:
    the patient's signed notes, and the actor's own drafts when asked."""
    require_patient(session, actor, patient_id)
    ok = SessionNote.status == NoteStatus.signed
    if include_drafts:
        ok = ok | ((SessionNote.status == NoteStatus.draft) & (SessionNote.author_id == actor.id))
    rows = session.exec(
        select(SessionNote.id, SessionNote.note_type, SessionNote.session_date, SessionNote.status)
        .where(SessionNote.patient_id == patient_id, ok)
        .order_by(col(SessionNote.session_date).desc(), col(SessionNote.id).desc()).limit(limit)
    ).all()
    return [(i, t, d, s) for i, t, d, s in rows]


def file_stem(mrn: str) -> str:
    """A safe, unique file name for an MRN (a hash suffix when characters had to be replaced)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", mrn).strip("._") or "patient"
    if safe != mrn:
        safe = f"{safe}-{hashlib.sha256(mrn.encode('utf-8')).hexdigest()[:8]}"
    return f"summary-{safe}"
