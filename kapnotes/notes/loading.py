"""Who may read or change a note: every note module loads one through ``load``.

Drafts are their author's alone; signed notes are read by every therapist and prescriber on
the patient's care team; only the author writes (and a write locks the row).
"""

from __future__ import annotations

from sqlmodel import Session

from kapnotes import audit
from kapnotes.access import require_patient, require_role
from kapnotes.actor import Actor
from kapnotes.errors import PermissionDenied
from kapnotes.models import NoteStatus, Role, SessionNote


def load(session: Session, actor: Actor, note_id: int, for_write: bool = False) -> SessionNote:
    """The note, if the actor may read it (``for_write``: may change it; the row is locked)."""
    if for_write:
        require_role(actor, Role.therapist.value)
        note = session.get(SessionNote, note_id, with_for_update=True, populate_existing=True)
    else:
        require_role(actor, Role.therapist.value, Role.prescriber.value)
        note = session.get(SessionNote, note_id)
    if note is None:
        raise PermissionDenied()
    require_patient(session, actor, note.patient_id)
    if note.status != NoteStatus.signed and note.author_id != actor.id:
        raise PermissionDenied()  # drafts are the author's alone
    if for_write and note.author_id != actor.id:
        raise PermissionDenied("Only the author can change this note.")
    return note


def get_note(session: Session, actor: Actor, note_id: int, audited: bool = True) -> SessionNote:
    """A note the actor may read (signed notes of their patients; their own drafts)."""
    note = load(session, actor, note_id)
    if audited:
        audit.record(session, actor, "note.read", "session_note", note.id, note.patient_id, f"status={note.status}")
    return note
