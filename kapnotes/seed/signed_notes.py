"""The signed notes of an in-session dose: the dosing note, the integration note two days
later, and now and then an addendum, hashed as the notes service hashes them.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from kapnotes.models import Addendum, DoseEntry, SessionNote
from kapnotes.notes.hashing import content_hash, text_hash
from kapnotes.seed.context import Ctx, HashView, Ids, Story, utc_at
from kapnotes.seed_notes import demo_dosing_fields, demo_integration_fields

_ADDENDA = (
    "Correction: post-dose blood pressure was taken at the end of the session, not at peak.",
    "Client called the next day: slept well, no lingering dissociation.",
    "Addendum: partner confirmed safe ride home; discharge criteria were met.",
    "Clarification: homework agreed verbally; client will email the journal entry.",
)


_FREE_TEXT = (
    "Client arrived on time, settled quickly; experience unfolded gently.",
    "Client was initially tense; breathing practice helped before dosing.",
    "Steady session; client spoke little during the peak and journaled afterwards.",
    "Client described vivid imagery; processed it calmly with support.",
)


def session_notes(ctx: Ctx, p: Story, dose: dict) -> None:
    """The signed dosing note of an in-session dose and the integration note two days later."""
    rng, ids, t = p.rng, ctx.ids, p.therapist
    ddate = dose["taken_at"].astimezone(ctx.tz).date()
    dose_view = DoseEntry(**{k: v for k, v in dose.items() if k != "version"})
    dosing = _note_row(ids, p.pid, t.id, "dosing", ddate, "16:30", "19:00", "in_person",
                       demo_dosing_fields(rng, p.session_number, dose_view), rng.choice(_FREE_TEXT), None)
    dose["session_note_id"] = dosing["id"]
    idate = min(ctx.today, ddate + timedelta(days=2))
    integration = _note_row(ids, p.pid, t.id, "integration", idate, "10:00", "10:50", "telehealth",
                            demo_integration_fields(rng), "Integration session.", dose["id"])
    p.batch.dosing_notes.append(dosing)
    p.batch.integration_notes.append(integration)
    for note in (dosing, integration):
        ctx.audit_rows.append((note["signed_at"], t.id, t.username, "note.sign", "session_note", str(note["id"]),
                               p.pid, f"type={note['note_type']}"))
        ctx.summary.notes += 1
        if rng.random() < 0.08:
            text_ = rng.choice(_ADDENDA)
            at = note["signed_at"] + timedelta(days=1, hours=rng.randint(0, 6))
            add_id = ids.take(Addendum)
            p.batch.addenda.append(dict(id=add_id, note_id=note["id"], author_id=t.id, text=text_, created_at=at,
                                        signed_at=at, content_hash=addendum_hash(note["id"], t.id, text_, at)))
            ctx.audit_rows.append((at, t.id, t.username, "addendum.create", "addendum", str(add_id), p.pid,
                                   f"note={note['id']}"))
            ctx.summary.addenda += 1


def addendum_hash(note_id: int, author_id: int, text_: str, created_at: datetime) -> str:
    """The addendum content hash, as the notes service defines it (``kapnotes.notes.addendum_hash``)."""
    try:
        from kapnotes.notes import addendum_hash as notes_addendum_hash  # noqa: PLC0415
    except ImportError:  # the notes service not installed: the same formula
        return text_hash(str(note_id), str(author_id), created_at.isoformat(), text_)
    return notes_addendum_hash(note_id=note_id, author_id=author_id, created_at=created_at, text=text_)


def _note_row(ids: Ids, pid: int, author_id: int, note_type: str, session_date: date, start: str, end: str,
              modality: str, fields: dict, free_text: str, integrates_dose_id: int | None) -> dict:
    signed_at = utc_at(session_date, 21, 0)
    row = dict(id=ids.take(SessionNote), patient_id=pid, author_id=author_id, note_type=note_type, status="signed",
               session_date=session_date, start_time=start, end_time=end, modality=modality, fields=fields,
               free_text=free_text, carried_over_from_id=None, integrates_dose_id=integrates_dose_id,
               created_at=utc_at(session_date, 19, 30) if note_type == "dosing" else utc_at(session_date, 10, 55),
               updated_at=signed_at, updated_by_id=author_id, signed_at=signed_at, signed_by_id=author_id,
               content_hash=None, version=2)
    row["content_hash"] = content_hash(HashView(row))
    return row
