"""Finding and reading notes: a patient's timeline, one's drafts, search, and the note viewer.

Every list and read is audited with ids and counts only, never note text (nor the search words).
Signed notes are listed for the whole care team; drafts only for their author.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from kapnotes import audit
from kapnotes.access import require_patient, require_role, visible_patient_ids
from kapnotes.actor import Actor
from kapnotes.errors import ValidationError
from kapnotes.models import Addendum, DoseEntry, NoteStatus, NoteType, Patient, Role, SessionNote, User
from kapnotes.notes.dose_link import linked_dose
from kapnotes.notes.loading import get_note
from kapnotes.notes.signing import AddendumRow, list_addenda, signature_state
from kapnotes.notes.templates import template
from kapnotes.notes.validation import warnings_for

SEARCH_LIMIT = 100


@dataclass(frozen=True)
class NoteRow:
    id: int
    patient_id: int
    note_type: str
    session_date: date
    status: str
    author_id: int
    author_name: str
    updated_at: datetime
    signed_at: datetime | None
    addenda: int = 0
    carried_over: bool = False
    mrn: str = ""
    patient_name: str = ""


def _author_name(name: str, cred: str) -> str:
    return f"{name}, {cred}" if cred else name


def timeline(session: Session, actor: Actor, patient_id: int, note_types=None, statuses=None,
             limit: int = 500) -> list[NoteRow]:
    """The patient's notes, newest first: signed notes, plus the actor's own drafts."""
    require_patient(session, actor, patient_id)
    # counted per listed note through ix_addenda_note_id (a GROUP BY would read every addendum)
    addenda = (select(func.count()).select_from(Addendum).where(Addendum.note_id == SessionNote.id)
               .correlate(SessionNote).scalar_subquery())
    q = (
        select(SessionNote.id, SessionNote.patient_id, SessionNote.note_type, SessionNote.session_date,
               SessionNote.status, SessionNote.author_id, User.full_name, User.credentials, SessionNote.updated_at,
               SessionNote.signed_at, addenda, SessionNote.carried_over_from_id)
        .join(User, User.id == SessionNote.author_id)
        .where(SessionNote.patient_id == patient_id)
        .where((SessionNote.status == NoteStatus.signed.value) | (SessionNote.author_id == actor.id))
    )
    if note_types:
        q = q.where(col(SessionNote.note_type).in_([str(t) for t in note_types]))
    if statuses:
        q = q.where(col(SessionNote.status).in_([str(s) for s in statuses]))
    q = q.order_by(col(SessionNote.session_date).desc(), col(SessionNote.id).desc()).limit(limit)
    rows = [NoteRow(r[0], r[1], r[2], r[3], r[4], r[5], _author_name(r[6], r[7]), r[8], r[9], r[10] or 0,
                    r[11] is not None) for r in session.exec(q).all()]
    audit.record(session, actor, "note.list", "patient", patient_id, patient_id, f"rows={len(rows)}",
                 coalesce=audit.READ_COALESCE)
    return rows


def my_drafts(session: Session, actor: Actor) -> list[NoteRow]:
    """The actor's drafts across their patients, most recently saved first."""
    require_role(actor, Role.therapist.value)
    q = (
        select(SessionNote.id, SessionNote.patient_id, SessionNote.note_type, SessionNote.session_date,
               SessionNote.status, SessionNote.author_id, SessionNote.updated_at, SessionNote.carried_over_from_id,
               Patient.mrn, Patient.full_name)
        .join(Patient, Patient.id == SessionNote.patient_id)
        .where(SessionNote.author_id == actor.id, SessionNote.status == NoteStatus.draft.value)
        .where(col(SessionNote.patient_id).in_(visible_patient_ids(actor)))
        .order_by(col(SessionNote.updated_at).desc())
    )
    rows = [NoteRow(r[0], r[1], r[2], r[3], r[4], r[5], actor.display_name, r[6], None, 0, r[7] is not None,
                    r[8], r[9]) for r in session.exec(q).all()]
    audit.record(session, actor, "note.drafts", "session_note", None, None, f"rows={len(rows)}",
                 coalesce=audit.READ_COALESCE)
    return rows


# --- search ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchHit:
    note_id: int
    patient_id: int
    mrn: str
    patient_name: str
    note_type: str
    session_date: date
    snippet: str


def _haystack(note_type: str, fields: dict, free_text: str | None) -> str:
    tpl = template(note_type)
    parts = []
    for spec in tpl.fields:
        v = (fields or {}).get(spec.name)
        if isinstance(v, str):
            parts.append(v)
        elif isinstance(v, list):
            parts.append(" ".join(map(str, v)))
    if free_text:
        parts.append(free_text)
    return "\n".join(parts)


def _snippet(text: str, term: str, width: int = 80) -> str:
    pos = text.casefold().find(term)
    if pos < 0:
        return text[: 2 * width]
    start = max(0, pos - width)
    end = min(len(text), pos + len(term) + width)
    return ("…" if start else "") + text[start:end].replace("\n", " ") + ("…" if end < len(text) else "")


def search(session: Session, actor: Actor, query: str, patient_id: int | None = None,
           limit: int = SEARCH_LIMIT) -> list[SearchHit]:
    """Full-text search over the signed notes of the actor's patients (all words must appear).

    Case-insensitive, Unicode-aware (``casefold``). The query text is never audited.
    """
    require_role(actor, Role.therapist.value, Role.prescriber.value)
    terms = [t.casefold() for t in (query or "").split() if t.strip()]
    if not terms:
        raise ValidationError({"query": "Enter a word to search for."})
    q = (
        select(SessionNote.id, SessionNote.patient_id, SessionNote.note_type, SessionNote.session_date,
               SessionNote.fields, SessionNote.free_text, Patient.mrn, Patient.full_name)
        .join(Patient, Patient.id == SessionNote.patient_id)
        .where(SessionNote.status == NoteStatus.signed.value)
        .where(col(SessionNote.patient_id).in_(visible_patient_ids(actor)))
        .order_by(col(SessionNote.session_date).desc(), col(SessionNote.id).desc())
    )
    if patient_id is not None:
        require_patient(session, actor, patient_id)
        q = q.where(SessionNote.patient_id == patient_id)
    hits: list[SearchHit] = []
    for nid, pid, ntype, sdate, fields, free_text, mrn, pname in session.exec(q).all():
        text = _haystack(ntype, fields, free_text)
        folded = text.casefold()
        if all(t in folded for t in terms):
            hits.append(SearchHit(nid, pid, mrn, pname, ntype, sdate, _snippet(text, terms[0])))
            if len(hits) >= limit:
                break
    audit.record(session, actor, "note.search", "session_note", None, patient_id,
                 f"terms={len(terms)} hits={len(hits)}")
    return hits


# --- the note viewer -----------------------------------------------------------------------------


@dataclass
class NoteView:
    """Everything the note viewer shows (built by :func:`view_note`)."""

    note: SessionNote
    author_name: str
    signer_name: str | None
    addenda: list[AddendumRow] = field(default_factory=list)
    carried_over_from: SessionNote | None = None
    linked_dose: DoseEntry | None = None
    hash_ok: bool | None = None  # the keyed signature (MAC) and the hash both match
    signature_state: str | None = None  # see ``signature_state``; None for drafts
    warnings: dict[str, str] = field(default_factory=dict)


def _user_name(session: Session, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    u = session.get(User, user_id)
    return _author_name(u.full_name, u.credentials) if u else None


def view_note(session: Session, actor: Actor, note_id: int) -> NoteView:
    """A note with its author, signer, signature check, addenda, linked dose and warnings (audited read)."""
    note = get_note(session, actor, note_id)
    state = signature_state(note) if note.status == NoteStatus.signed else None
    carried = session.get(SessionNote, note.carried_over_from_id) if note.carried_over_from_id else None
    dose = linked_dose(session, note.id) if note.note_type == NoteType.dosing else (
        session.get(DoseEntry, note.integrates_dose_id) if note.integrates_dose_id else None)
    return NoteView(
        note=note,
        author_name=_user_name(session, note.author_id) or "",
        signer_name=_user_name(session, note.signed_by_id),
        addenda=list_addenda(session, actor, note.id) if note.status == NoteStatus.signed else [],
        carried_over_from=carried,
        linked_dose=dose,
        hash_ok=(state == "ok") if state is not None else None,
        signature_state=state,
        warnings=warnings_for(note),
    )
