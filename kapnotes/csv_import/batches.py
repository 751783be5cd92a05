"""An import after the fact: list a patient's batches, undo a whole batch (voided, never deleted)."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import Session, col, select

from kapnotes import audit, events
from kapnotes.access import require_patient, require_record
from kapnotes.actor import Actor
from kapnotes.csv_import.staging import BATCH_COMPLETE, IMPORT_LOCK_BASE
from kapnotes.db import lock_for_append
from kapnotes.errors import ValidationError
from kapnotes.models import DoseEntry, ImportBatch, NoteStatus, SessionNote
from kapnotes.query import not_voided
from kapnotes.timeutil import utcnow


def list_batches(session: Session, actor: Actor, patient_id: int) -> list[ImportBatch]:
    require_patient(session, actor, patient_id)
    return list(session.exec(
        select(ImportBatch).where(ImportBatch.patient_id == patient_id).order_by(col(ImportBatch.id).desc())
    ).all())


def undo_batch(session: Session, actor: Actor, batch_id: int, reason: str = "Import undone") -> int:
    """Void every live entry of the batch at once; returns how many were voided."""
    batch = require_record(session, actor, ImportBatch, batch_id)
    if batch.undone_at is not None:
        raise ValidationError({"_": "This import was already undone."})
    if batch.status != BATCH_COMPLETE:
        raise ValidationError({"_": "This import is still being written; it can be undone once it has finished."})
    if not (reason or "").strip():
        raise ValidationError({"reason": "Give the reason for undoing this import."})
    lock_for_append(session, IMPORT_LOCK_BASE + batch.patient_id)
    used = session.exec(
        select(DoseEntry.id).join(SessionNote, SessionNote.id == DoseEntry.session_note_id)
        .where(DoseEntry.import_batch_id == batch_id, SessionNote.status == NoteStatus.signed.value)
        .limit(1)
    ).first()
    if used is not None:
        raise ValidationError({"_": "Some entries of this import are part of a signed session note; "
                                    "the import cannot be undone as a whole. Void the other entries one by one."})
    now = utcnow()
    voided = session.execute(
        update(DoseEntry)
        .where(DoseEntry.import_batch_id == batch_id, not_voided(DoseEntry))
        .values(voided_at=now, voided_by_id=actor.id, void_reason=reason.strip(), version=DoseEntry.version + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    batch.undone_at = now
    batch.undone_by_id = actor.id
    session.add(batch)
    session.flush()
    session.expire_all()
    audit.record(session, actor, "import.undo", "import_batch", batch_id, batch.patient_id, detail=f"voided={voided}")
    events.emit(session, "dose.changed", actor, patient_id=batch.patient_id, dose_id=None)
    return voided
