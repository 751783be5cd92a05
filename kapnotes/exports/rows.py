"""Database rows → the plain rows a document prints (``kapnotes.pdf.model``).

The PDF builders never see a database object: everything they print is converted here once,
in the clinic's time zone, so a note or a dose reads the same in every document.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from kapnotes import vocab
from kapnotes.actor import Actor
from kapnotes.config import get_settings
from kapnotes.models import Addendum, Assessment, DoseEntry, NoteStatus, Patient, SessionNote, User
from kapnotes.notes import signature_state
from kapnotes.pdf.model import AddendumRow, DocMeta, DoseRow, NoteData, PatientInfo, ScoreRow
from kapnotes.query import not_voided
from kapnotes.timeutil import fmt_local, to_local, utcnow

OPERATOR_NAME = "KAPNotes operator (command line)"


def user_names(session: Session, ids) -> dict[int, str]:
    """{user id: "name, credentials"} in one query."""
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    rows = session.exec(select(User).where(col(User.id).in_(ids))).all()
    return {u.id: (f"{u.full_name}, {u.credentials}" if u.credentials else u.full_name) for u in rows}


def doc_meta(actor: Actor | None, generated_at: datetime | None) -> DocMeta:
    settings = get_settings()
    when = generated_at or utcnow()
    return DocMeta(settings.clinic_name, fmt_local(when, settings.tz), actor.display_name if actor else OPERATOR_NAME)


def patient_info(p: Patient) -> PatientInfo:
    return PatientInfo(p.full_name, p.mrn, p.date_of_birth, p.diagnosis, p.status)


def bp_text(sys_: int | None, dia: int | None) -> str:
    if sys_ is None and dia is None:
        return ""
    return f"{sys_ if sys_ is not None else '—'}/{dia if dia is not None else '—'}"


def reason_text(r) -> str:
    """One reason of a suggestion in words (reasons are dicts with a code and a text, or strings)."""
    if isinstance(r, dict):
        return str(r.get("text") or r.get("code") or "")
    return str(r)


def dose_interval(dose: float | None, interval: int | None) -> str:
    parts = []
    if dose is not None:
        parts.append(f"{dose:g} mg")
    if interval is not None:
        parts.append(vocab.every(interval))
    return " ".join(parts) or "—"


def dose_row(d: DoseEntry, tz) -> DoseRow:
    local = to_local(d.taken_at, tz)
    return DoseRow(
        id=d.id, taken_at=local.strftime("%Y-%m-%d %H:%M"), taken_on=local.date(), dose_mg=d.dose_mg,
        formulation=d.formulation, administration=d.administration, context=d.context,
        anxiety_before=d.anxiety_before, anxiety_after=d.anxiety_after, dissociation=d.dissociation,
        nausea=d.nausea, vomited=bool(d.vomited), bp_pre=bp_text(d.bp_systolic_pre, d.bp_diastolic_pre),
        bp_post=bp_text(d.bp_systolic_post, d.bp_diastolic_post), heart_rate=d.heart_rate,
        adverse_events=d.adverse_events or "", notes=d.notes or "",
    )


def score_row(a: Assessment) -> ScoreRow:
    return ScoreRow(a.id, a.instrument, a.administered_on, a.total, a.band, a.item9)


def _linked_doses(session: Session, notes: list[SessionNote]) -> list[DoseEntry]:
    """The doses given in these sessions, and those an integration note integrates."""
    ids = [n.id for n in notes]
    integrates = {n.integrates_dose_id for n in notes if n.integrates_dose_id}
    linked = col(DoseEntry.session_note_id).in_(ids)
    if integrates:
        linked = linked | col(DoseEntry.id).in_(integrates)
    return list(session.exec(select(DoseEntry).where(not_voided(DoseEntry), linked)
                             .order_by(DoseEntry.taken_at, DoseEntry.id)).all())


def _note_data(n: SessionNote, names: dict[int, str], doses, scores, addenda, tz) -> NoteData:
    signed = n.status == NoteStatus.signed
    return NoteData(
        id=n.id, note_type=n.note_type, status=n.status, session_date=n.session_date,
        start_time=n.start_time, end_time=n.end_time, modality=n.modality,
        author=names.get(n.author_id, "—"), fields=dict(n.fields or {}), free_text=n.free_text,
        signed_by=names.get(n.signed_by_id) if signed else None,
        signed_at=fmt_local(n.signed_at, tz) if signed and n.signed_at else None,
        content_hash=n.content_hash if signed else None,
        # the keyed signature (MAC) as well as the hash: a rewritten note with a recomputed hash fails
        hash_verified=(signature_state(n) in ("ok", "unsealed")) if signed and n.content_hash else None,
        carried_over=n.carried_over_from_id is not None,
        doses=tuple(dose_row(d, tz) for d in doses if d.session_note_id == n.id or d.id == n.integrates_dose_id),
        scores=tuple(score_row(a) for a in scores if a.session_note_id == n.id),
        addenda=tuple(AddendumRow(a.id, names.get(a.author_id, "—"), fmt_local(a.signed_at, tz), a.text,
                                  a.content_hash) for a in addenda if a.note_id == n.id),
    )


def note_rows(session: Session, notes: list[SessionNote], tz) -> list[NoteData]:
    """NoteData for many notes with a fixed number of queries (no N+1)."""
    if not notes:
        return []
    ids = [n.id for n in notes]
    doses = _linked_doses(session, notes)
    scores = session.exec(
        select(Assessment).where(col(Assessment.session_note_id).in_(ids), not_voided(Assessment))
        .order_by(Assessment.administered_on, Assessment.id)
    ).all()
    addenda = session.exec(
        select(Addendum).where(col(Addendum.note_id).in_(ids)).order_by(Addendum.signed_at, Addendum.id)
    ).all()
    names = user_names(session, {n.author_id for n in notes} | {n.signed_by_id for n in notes}
                       | {a.author_id for a in addenda})
    return [_note_data(n, names, doses, scores, addenda, tz) for n in notes]
