"""One session note as a PDF: any signed note of a patient on the actor's care team, a draft
only for its author (watermarked DRAFT); every export is one ``export.note_pdf`` audit event."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from kapnotes import audit
from kapnotes.actor import Actor
from kapnotes.config import get_settings
from kapnotes.errors import NotFound, PermissionDenied
from kapnotes.exports.access import patient_for_export
from kapnotes.exports.rows import doc_meta, note_rows, patient_info
from kapnotes.models import NoteStatus, SessionNote
from kapnotes.pdf.model import DocMeta, NoteData, PatientInfo


def prepare_note(session: Session, actor: Actor | None, note_id: int, *, generated_at: datetime | None = None,
                 as_operator: bool = False, record: bool = True) -> tuple[DocMeta, PatientInfo, NoteData]:
    """Check access, gather one note, and (``record``) audit the export."""
    note = session.get(SessionNote, note_id)
    if note is None:
        if actor is None:
            raise NotFound(f"No note with id {note_id}.")
        raise PermissionDenied()
    patient = patient_for_export(session, actor, note.patient_id, as_operator)
    if note.status != NoteStatus.signed and actor is not None and note.author_id != actor.id:
        raise PermissionDenied("Drafts are visible to their author only.")
    data = note_rows(session, [note], get_settings().tz)[0]
    if record:
        audit.record(session, actor, "export.note_pdf", "session_note", note.id, patient.id,
                     detail=f"status={note.status};addenda={len(data.addenda)}")
    return doc_meta(actor, generated_at), patient_info(patient), data


def render_note(meta: DocMeta, patient: PatientInfo, note: NoteData, invariant: bool = False) -> bytes:
    from kapnotes.pdf.note_pdf import build_note_pdf  # ReportLab only when a PDF is built

    return build_note_pdf(meta, patient, note, invariant=invariant)


def note_pdf(session: Session, actor: Actor | None, note_id: int, *, generated_at: datetime | None = None,
             invariant: bool = False, as_operator: bool = False) -> bytes:
    meta, patient, note = prepare_note(session, actor, note_id, generated_at=generated_at, as_operator=as_operator)
    return render_note(meta, patient, note, invariant=invariant)
