"""Private process notes (HIPAA 45 CFR 164.501 "psychotherapy notes").

A separate space per therapist per patient: entries visible to their author alone
(not to the prescriber, not to other therapists on the team, not to admins), never
part of an export, and audited only as ``process_note.read`` / ``process_note.write``
with ids and counts — never their text. Entries can be edited by their author
(optimistic locking: a stale edit raises ``ConflictError``), never deleted.
"""

from __future__ import annotations

from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, col, select

from kapnotes import audit
from kapnotes.access import require_patient, require_role
from kapnotes.actor import Actor
from kapnotes.errors import ConflictError, PermissionDenied, ValidationError
from kapnotes.models import ProcessNote, Role
from kapnotes.timeutil import utcnow

TEXT_MAX = 50_000


def _validate(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValidationError({"text": "Write something before saving."})
    if "\x00" in text:
        raise ValidationError({"text": "The text contains a NUL character, which cannot be stored."})
    if len(text) > TEXT_MAX:
        raise ValidationError({"text": f"Too long ({len(text):,} characters; at most {TEXT_MAX:,})."})
    return text


def _require_author_side(session: Session, actor: Actor, patient_id: int) -> None:
    require_role(actor, Role.therapist.value)
    require_patient(session, actor, patient_id, Role.therapist.value)


def add(session: Session, actor: Actor, patient_id: int, text: str) -> ProcessNote:
    _require_author_side(session, actor, patient_id)
    row = ProcessNote(patient_id=patient_id, author_id=actor.id, text=_validate(text))
    session.add(row)
    session.flush()
    audit.record(session, actor, "process_note.write", "process_note", row.id, patient_id)
    return row


def list_mine(session: Session, actor: Actor, patient_id: int) -> list[ProcessNote]:
    """The actor's own process notes for this patient, newest first."""
    _require_author_side(session, actor, patient_id)
    rows = list(session.exec(
        select(ProcessNote).where(ProcessNote.patient_id == patient_id, ProcessNote.author_id == actor.id)
        .order_by(col(ProcessNote.created_at).desc(), col(ProcessNote.id).desc())
    ).all())
    audit.record(session, actor, "process_note.read", "process_note", None, patient_id, f"count={len(rows)}",
                 coalesce=audit.READ_COALESCE)
    return rows


def _own(session: Session, actor: Actor, note_id: int) -> ProcessNote:
    require_role(actor, Role.therapist.value)
    row = session.get(ProcessNote, note_id, with_for_update=True, populate_existing=True)
    if row is None or row.author_id != actor.id:
        raise PermissionDenied()
    require_patient(session, actor, row.patient_id, Role.therapist.value)
    return row


def get(session: Session, actor: Actor, note_id: int) -> ProcessNote:
    row = _own(session, actor, note_id)
    audit.record(session, actor, "process_note.read", "process_note", row.id, row.patient_id)
    return row


def update(session: Session, actor: Actor, note_id: int, expected_version: int, text: str) -> ProcessNote:
    row = _own(session, actor, note_id)
    if row.version != expected_version:
        raise ConflictError(
            f"This process note was changed elsewhere (version {row.version}; you edited version "
            f"{expected_version}). Nothing was overwritten.", theirs=row.text)
    row.text = _validate(text)
    row.updated_at = utcnow()
    try:
        session.flush()
    except StaleDataError:
        raise ConflictError("This process note was changed elsewhere. Nothing was overwritten.") from None
    audit.record(session, actor, "process_note.write", "process_note", row.id, row.patient_id)
    return row
