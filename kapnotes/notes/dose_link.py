"""The dose-log entry behind a note: a dosing note's own entry, an integration note's dose.

A dosing note creates or links exactly one dose-log entry (``context = in_session``,
``source = session``) and keeps it in step while the note is a draft: the log never holds two
entries for one session, never a dose at an invented or future time, and a dose cleared from the
draft (or a discarded draft) voids its entry rather than deleting it.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, col, select

from kapnotes import audit, events
from kapnotes.access import require_patient
from kapnotes.actor import Actor
from kapnotes.config import get_settings
from kapnotes.dosing.plans import active_plan
from kapnotes.errors import ConflictError
from kapnotes.models import DoseContext, DoseEntry, DoseSource, NoteType, SessionNote
from kapnotes.notes import clock
from kapnotes.query import not_voided

_DOSE_SYNC = ("taken_at", "dose_mg", "formulation", "administration", "dissociation", "nausea", "vomited",
              "bp_systolic_pre", "bp_diastolic_pre", "bp_systolic_post", "bp_diastolic_post", "heart_rate",
              "adverse_events", "notes", "plan_id")


def linked_dose(session: Session, note_id: int) -> DoseEntry | None:
    """The active dose-log entry a dosing note created or linked."""
    return session.exec(
        select(DoseEntry).where(DoseEntry.session_note_id == note_id, not_voided(DoseEntry))
        .order_by(col(DoseEntry.id)).limit(1)
    ).first()


def latest_dose(session: Session, patient_id: int, on_or_before: date | None = None) -> DoseEntry | None:
    """The patient's latest non-voided dose (in-session first), for an integration note's link."""
    q = select(DoseEntry).where(DoseEntry.patient_id == patient_id, not_voided(DoseEntry))
    if on_or_before is not None:
        end = datetime.combine(on_or_before + timedelta(days=1), time(), get_settings().tz)
        q = q.where(DoseEntry.taken_at < end)
    for context in (DoseContext.in_session.value, None):
        qq = q if context is None else q.where(DoseEntry.context == context)
        dose = session.exec(qq.order_by(col(DoseEntry.taken_at).desc()).limit(1)).first()
        if dose is not None:
            return dose
    return None


def dose_choices(session: Session, actor: Actor, patient_id: int, limit: int = 30) -> list[tuple[int, str]]:
    """Recent non-voided doses of the patient as (id, label), newest first, for linking a note."""
    require_patient(session, actor, patient_id)
    tz = get_settings().tz
    rows = session.exec(
        select(DoseEntry).where(DoseEntry.patient_id == patient_id, not_voided(DoseEntry))
        .order_by(col(DoseEntry.taken_at).desc()).limit(limit)
    ).all()
    return [(d.id, f"{d.taken_at.astimezone(tz):%Y-%m-%d %H:%M} · {d.dose_mg:g} mg {d.formulation} · "
                   f"{d.context.replace('_', ' ')}") for d in rows]


def _dose_values(session: Session, note: SessionNote) -> dict | None:
    f = note.fields or {}
    if f.get("dose_mg") is None:
        return None
    plan = active_plan(session, note.patient_id)
    tz = get_settings().tz
    hhmm = f.get("time_taken") or note.start_time  # never an invented time: sync_dose waits for one
    taken = datetime.combine(note.session_date, time.fromisoformat(hhmm), tz)
    booster = f.get("booster_mg")
    return {
        "taken_at": taken,
        "dose_mg": float(f["dose_mg"]),
        "formulation": f.get("formulation") or (plan.formulation if plan else "other"),
        "administration": f.get("administration"),
        "dissociation": f.get("dissociation"),
        "nausea": f.get("nausea"),
        "vomited": bool(f.get("vomited")),
        "bp_systolic_pre": f.get("bp_systolic_pre"),
        "bp_diastolic_pre": f.get("bp_diastolic_pre"),
        "bp_systolic_post": f.get("bp_systolic_post"),
        "bp_diastolic_post": f.get("bp_diastolic_post"),
        "heart_rate": f.get("heart_rate_pre"),
        "adverse_events": ";".join(f.get("adverse_events") or []),
        "notes": (f"Booster {booster:g} mg" + (f" at {f['booster_time']}" if f.get("booster_time") else "")
                  ) if booster else None,
        "plan_id": plan.id if plan else None,
    }


def sync_dose(session: Session, actor: Actor, note: SessionNote) -> DoseEntry | None:
    """Create, link, update (or void) the one dose-log entry of a dosing note."""
    if note.note_type != NoteType.dosing:
        return None
    f = note.fields or {}
    hhmm = f.get("time_taken") or note.start_time
    if f.get("dose_mg") is not None and (not hhmm or clock.in_future(note.session_date, hhmm)):
        return linked_dose(session, note.id)  # no (past) time known yet: the log waits rather than invent one
    values = _dose_values(session, note)
    entry = linked_dose(session, note.id)
    if values is None:
        if entry is not None:  # the dose was cleared from the draft
            _void(session, actor, note, entry, "Dose removed from the session note draft.")
            audit.record(session, actor, "dose.void", "dose_entry", entry.id, note.patient_id, f"note={note.id}")
            _changed(session, actor, note, entry)
        return None
    if entry is not None:
        return _update(session, actor, note, entry, values, "dose.update")
    entry = _same_session_dose(session, note)
    if entry is not None:  # a dose already logged for this session: link it, never a second one
        entry.session_note_id = note.id
        return _update(session, actor, note, entry, values, "dose.link")
    entry = DoseEntry(patient_id=note.patient_id, context=DoseContext.in_session.value,
                      source=DoseSource.session.value, session_note_id=note.id, entered_by_id=note.author_id,
                      **values)
    session.add(entry)
    _flush_dose(session)
    audit.record(session, actor, "dose.create", "dose_entry", entry.id, note.patient_id, f"note={note.id}")
    _changed(session, actor, note, entry)
    return entry


def _same_session_dose(session: Session, note: SessionNote) -> DoseEntry | None:
    """An in-session dose of the patient on the note's day that no note claims yet."""
    day_start = datetime.combine(note.session_date, time(), get_settings().tz)
    return session.exec(
        select(DoseEntry).where(
            DoseEntry.patient_id == note.patient_id, DoseEntry.context == DoseContext.in_session.value,
            col(DoseEntry.session_note_id).is_(None), not_voided(DoseEntry),
            DoseEntry.taken_at >= day_start, DoseEntry.taken_at < day_start + timedelta(days=1),
        ).order_by(col(DoseEntry.taken_at)).limit(1)
    ).first()


def _update(session: Session, actor: Actor, note: SessionNote, entry: DoseEntry, values: dict,
            action: str) -> DoseEntry:
    """Bring the entry in step with the note; audited (``action``) only when something changed."""
    changed = action == "dose.link"
    for key in _DOSE_SYNC:
        if getattr(entry, key) != values[key]:
            setattr(entry, key, values[key])
            changed = True
    if changed:
        _flush_dose(session)
        audit.record(session, actor, action, "dose_entry", entry.id, note.patient_id, f"note={note.id}")
        _changed(session, actor, note, entry)
    return entry


def release_doses(session: Session, actor: Actor, note: SessionNote) -> None:
    """A draft is discarded: the dose it created is voided (kept for the record) and unlinked."""
    for dose in session.exec(select(DoseEntry).where(DoseEntry.session_note_id == note.id)).all():
        if dose.voided_at is None:
            _void(session, actor, note, dose, "Session note draft discarded.")
            _changed(session, actor, note, dose)
        dose.session_note_id = None


def _void(session: Session, actor: Actor, note: SessionNote, entry: DoseEntry, reason: str) -> None:
    entry.voided_at = clock.utcnow()
    entry.voided_by_id = actor.id
    entry.void_reason = reason
    _flush_dose(session)


def _changed(session: Session, actor: Actor, note: SessionNote, entry: DoseEntry) -> None:
    events.emit(session, "dose.changed", actor, patient_id=note.patient_id, dose_id=entry.id)


def _flush_dose(session: Session) -> None:
    try:
        session.flush()
    except StaleDataError:
        raise ConflictError("The dose-log entry of this note was changed elsewhere; reload and try again.") from None
