"""Who may export a patient's record, and which notes and patients there are to export.

One access rule for every export (PDFs, FHIR, the dose CSV): a signed-in clinician reaches
only the patients of their care team; ``actor`` None is the operator's command line and must
say so (``as_operator=True``).
"""

from __future__ import annotations

import hashlib
import re
from datetime import date

from sqlmodel import Session, col, func, select

from kapnotes.access import require_patient
from kapnotes.actor import Actor
from kapnotes.errors import NotFound, PermissionDenied, ValidationError
from kapnotes.models import DoseEntry, NoteStatus, Patient, SessionNote


def patient_for_export(session: Session, actor: Actor | None, patient_id: int, as_operator: bool) -> Patient:
    """The patient, when this actor (or the operator, said explicitly) may export the record."""
    if actor is None:
        if not as_operator:
            raise PermissionDenied("Please sign in.")
        patient = session.get(Patient, patient_id)
        if patient is None:
            raise NotFound(f"No patient with id {patient_id}.")
        return patient
    return require_patient(session, actor, patient_id)


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


def file_stem(mrn: str) -> str:
    """A safe, unique file name for an MRN (a hash suffix when characters had to be replaced)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", mrn).strip("._") or "patient"
    if safe != mrn:
        safe = f"{safe}-{hashlib.sha256(mrn.encode('utf-8')).hexdigest()[:8]}"
    return f"summary-{safe}"
