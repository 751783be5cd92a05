"""Drafts: start one, save it (optimistic locking), discard it.

A draft carries ``version``. A save (or a sign, which saves first) names the version it was
based on; a stale one raises :class:`DraftConflict` carrying both versions, and nothing is
written. The same holds when the row changed between loading and flushing (``StaleDataError``).
A draft is its author's alone and is not yet part of the record, so discarding deletes it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, col, select

from kapnotes import audit
from kapnotes.access import require_patient, require_role
from kapnotes.actor import Actor
from kapnotes.dosing.plans import active_plan
from kapnotes.errors import ValidationError
from kapnotes.models import Assessment, Modality, NoteStatus, NoteType, Role, SessionNote
from kapnotes.notes import clock
from kapnotes.notes.content import CONTENT_KEYS, UNSET, DraftConflict, SignedNoteError, merged, snapshot
from kapnotes.notes.dose_link import latest_dose, release_doses, sync_dose
from kapnotes.notes.loading import load
from kapnotes.notes.templates import CARRY_OVER_KEYS, Template, is_blank, template
from kapnotes.notes.validation import apply_plan_check, check


def last_signed_note(session: Session, actor: Actor, patient_id: int, note_type: str) -> SessionNote | None:
    """The patient's latest signed note of this type (what "Load last note" starts from)."""
    require_patient(session, actor, patient_id)
    return session.exec(
        select(SessionNote)
        .where(SessionNote.patient_id == patient_id, SessionNote.note_type == str(note_type),
               SessionNote.status == NoteStatus.signed)
        .order_by(col(SessionNote.session_date).desc(), col(SessionNote.id).desc())
        .limit(1)
    ).first()


def _defaults(session: Session, patient_id: int, note_type: str, today: date, now_hhmm: str) -> dict:
    """A new draft's starting values: the active plan's dose and the session count (dosing), or the
    latest dose to integrate (integration)."""
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if note_type == NoteType.dosing:
        plan = active_plan(session, patient_id)
        if plan is not None:
            fields.update(dose_mg=float(plan.dose_mg), formulation=plan.formulation,
                          minutes_in_mouth=int(plan.minutes_in_mouth), administration=plan.administration)
        done = session.exec(
            select(func.count()).select_from(SessionNote).where(
                SessionNote.patient_id == patient_id, SessionNote.note_type == NoteType.dosing.value,
                SessionNote.status == NoteStatus.signed)
        ).one()
        fields["session_number"] = int(done) + 1
        fields["time_taken"] = now_hhmm
    elif note_type == NoteType.integration:
        dose = latest_dose(session, patient_id, today)
        if dose is not None:
            extra["integrates_dose_id"] = dose.id
    return {"fields": fields, **extra}


def _carried_over(session: Session, actor: Actor, patient_id: int, tpl: Template) -> tuple[dict, int]:
    """Intention, homework and plan from the previous signed note of the type, and its id."""
    last = last_signed_note(session, actor, patient_id, tpl.note_type)
    if last is None:
        raise ValidationError({"carry_over": f"There is no earlier signed {tpl.title.lower()} note to carry over."})
    fields = {key: last.fields[key] for key in CARRY_OVER_KEYS
              if key in tpl.names and not is_blank((last.fields or {}).get(key))}
    return fields, last.id


def create_draft(
    session: Session,
    actor: Actor,
    patient_id: int,
    note_type: str,
    *,
    carry_over: bool = False,
    session_date: date | None | Any = UNSET,
    start_time: str | None | Any = UNSET,
    end_time: str | None = None,
    modality: str = Modality.in_person.value,
    fields: dict | None = None,
    free_text: str | None = None,
    integrates_dose_id: int | None | Any = UNSET,
) -> SessionNote:
    """Start a draft, defaulted from the active plan and the clock (and, with ``carry_over``,
    from the patient's previous signed note of the same type). A session date left out starts
    as today; one given as None (an unreadable input) is refused, never replaced by today."""
    require_role(actor, Role.therapist.value)
    require_patient(session, actor, patient_id, Role.therapist.value)
    tpl = template(note_type)
    now_local = clock.local_now()
    today = now_local.date()
    if session_date is UNSET:
        session_date = today
    defaults = _defaults(session, patient_id, tpl.note_type, session_date if isinstance(session_date, date) else today,
                         now_local.strftime("%H:%M"))
    merged_fields = dict(defaults["fields"])
    carried_from = None
    if carry_over:
        carried, carried_from = _carried_over(session, actor, patient_id, tpl)
        merged_fields.update(carried)
    merged_fields.update(fields or {})
    note = SessionNote(patient_id=patient_id, author_id=actor.id, note_type=tpl.note_type, session_date=today,
                       status=NoteStatus.draft.value, carried_over_from_id=carried_from, updated_by_id=actor.id)
    content = {
        "session_date": session_date,
        "start_time": now_local.strftime("%H:%M") if start_time is UNSET else start_time,
        "end_time": end_time,
        "modality": modality,
        "fields": merged_fields,
        "free_text": free_text,
        "integrates_dose_id": defaults.get("integrates_dose_id") if integrates_dose_id is UNSET else integrates_dose_id,
    }
    clean, errors = check(session, note, content, for_sign=False)
    if errors:
        raise ValidationError(errors)
    apply_content(session, note, clean)
    session.add(note)
    session.flush()
    audit.record(session, actor, "note.create", "session_note", note.id, patient_id,
                 f"type={note.note_type} carried_over={carried_from or ''}")
    return note


def checked_change(session: Session, actor: Actor, note_id: int, expected_version: int, changes: dict, *,
                   for_sign: bool, signed_message: str | None = None) -> tuple[SessionNote, dict, dict]:
    """Load the author's draft for writing and check ``changes`` against it.

    Returns (note, clean content, the caller's content). Signed -> :class:`SignedNoteError`;
    stale ``expected_version`` -> :class:`DraftConflict`; bad input -> ``ValidationError``.
    """
    note = load(session, actor, note_id, for_write=True)
    if note.status == NoteStatus.signed:
        raise SignedNoteError() if signed_message is None else SignedNoteError(signed_message)
    mine = merged(note, changes)
    if note.version != expected_version:
        raise DraftConflict(note.id, expected_version, note.version, mine, snapshot(note))
    clean, errors = check(session, note, mine, for_sign=for_sign)
    if errors:
        raise ValidationError(errors)
    return note, clean, mine


def apply_content(session: Session, note: SessionNote, clean: dict) -> None:
    """Checked content onto the note; dosing fields note whether the dose differs from the plan."""
    for key in CONTENT_KEYS:
        if key != "fields":
            setattr(note, key, clean[key])
    note.fields = apply_plan_check(session, note, clean["fields"])


def flush_version(session: Session, note: SessionNote, expected_version: int, mine: dict) -> None:
    """Write, unless the row changed since it was read (then a conflict, and nothing written)."""
    try:
        session.flush()
    except StaleDataError:
        raise DraftConflict(note.id, expected_version, None, mine, None) from None


def save_draft(
    session: Session,
    actor: Actor,
    note_id: int,
    expected_version: int,
    *,
    session_date: date | Any = UNSET,
    start_time: str | None | Any = UNSET,
    end_time: str | None | Any = UNSET,
    modality: str | Any = UNSET,
    fields: dict | Any = UNSET,
    free_text: str | None | Any = UNSET,
    integrates_dose_id: int | None | Any = UNSET,
) -> SessionNote:
    """Save a draft's content (arguments left out stay as they are; ``fields`` replaces the whole dict).

    Stale ``expected_version`` -> :class:`DraftConflict`; bad input -> ``ValidationError``;
    signed note -> :class:`SignedNoteError`. In each case nothing is written.
    """
    changes = dict(session_date=session_date, start_time=start_time, end_time=end_time, modality=modality,
                   fields=fields, free_text=free_text, integrates_dose_id=integrates_dose_id)
    note, clean, mine = checked_change(session, actor, note_id, expected_version, changes, for_sign=False)
    apply_content(session, note, clean)
    note.updated_at = clock.utcnow()
    note.updated_by_id = actor.id
    flush_version(session, note, expected_version, mine)
    sync_dose(session, actor, note)
    audit.record(session, actor, "note.save", "session_note", note.id, note.patient_id, f"version={note.version}")
    return note


def discard_draft(session: Session, actor: Actor, note_id: int, expected_version: int) -> None:
    """Delete one's own draft (drafts are not yet part of the record); a dose it created is voided."""
    note = load(session, actor, note_id, for_write=True)
    if note.status == NoteStatus.signed:
        raise SignedNoteError("A signed note cannot be discarded. Add an addendum instead.")
    if note.version != expected_version:
        raise DraftConflict(note.id, expected_version, note.version, None, snapshot(note))
    release_doses(session, actor, note)
    for a in session.exec(select(Assessment).where(Assessment.session_note_id == note.id)).all():
        a.session_note_id = None
    session.flush()
    audit.record(session, actor, "note.discard", "session_note", note.id, note.patient_id)
    session.delete(note)
    session.flush()
