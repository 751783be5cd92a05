"""Signing a note, and addenda: how the record becomes fixed, and how it is corrected.

``sign`` checks the required fields, records signer, time and the content hash
(:func:`kapnotes.notes.hashing.content_hash`) with a keyed MAC, and emits ``"note.signed"``. A
signed note is never changed again (``SignedNoteError`` here; a database trigger for any other
path). Corrections are addenda: any clinician on the care team (therapist or prescriber) may add
one to a signed note; each is dated, names its author and carries its own hash and MAC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from kapnotes import audit, events
from kapnotes.actor import Actor
from kapnotes.errors import ValidationError
from kapnotes.models import Addendum, NoteStatus, Role, SessionNote, User
from kapnotes.notes import clock
from kapnotes.notes import hashing as notehash
from kapnotes.notes.content import CONTENT_KEYS
from kapnotes.notes.dose_link import sync_dose
from kapnotes.notes.drafts import apply_content, checked_change, flush_version
from kapnotes.notes.hashing import content_hash, text_hash
from kapnotes.notes.loading import load
from kapnotes.notes.validation import clean_text

ADDENDUM_MAX = 20_000


def sign(session: Session, actor: Actor, note_id: int, expected_version: int, **changes: Any) -> SessionNote:
    """Sign a draft (saving ``changes`` first, in the same transaction).

    Required fields must be filled; records signer, time and content hash; emits
    ``"note.signed"``. Anything wrong -> an error and nothing written.
    """
    unknown = set(changes) - set(CONTENT_KEYS)
    if unknown:
        raise ValidationError({k: "Unknown note attribute." for k in unknown})
    note, clean, mine = checked_change(session, actor, note_id, expected_version, changes, for_sign=True,
                                       signed_message="This note is already signed.")
    apply_content(session, note, clean)
    sync_dose(session, actor, note)
    now = clock.utcnow()
    note.status = NoteStatus.signed.value
    note.signed_at = now
    note.signed_by_id = actor.id
    note.updated_at = now
    note.updated_by_id = actor.id
    note.content_hash = content_hash(note)
    note.signature_mac, note.signature_key_id = notehash.make_mac(notehash.note_mac_parts(note))
    flush_version(session, note, expected_version, mine)
    # the hash (never the text) goes into the chain, so the database's own copy cannot vouch alone
    audit.record(session, actor, "note.sign", "session_note", note.id, note.patient_id,
                 f"type={note.note_type};sha256={note.content_hash}")
    events.emit(session, "note.signed", actor, patient_id=note.patient_id, note_id=note.id, note_type=note.note_type)
    return note


def signature_state(note: SessionNote, ring: notehash.KeyRing | None = None) -> str:
    """``"ok"`` (content, hash and MAC agree), ``"unsealed"`` (signed before MACs and its hash
    matches; hash only), ``"no_key"`` (its key is missing from the key file) or ``"bad"``."""
    if note.status != NoteStatus.signed or note.content_hash != content_hash(note):
        return "bad"
    if ring is None and note.signature_mac:
        try:
            ring = notehash.keyring(create=False)
        except notehash.SigningKeyError:
            return "no_key"
    return notehash.check_mac(notehash.note_mac_parts(note), note.signature_mac, note.signature_key_id, ring)


def verify(note: SessionNote) -> bool:
    """True when a signed note's content matches its hash AND the MAC made at signing
    under the signing key (a rewrite with a recomputed hash fails the MAC)."""
    return signature_state(note) == "ok"


# --- addenda ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddendumRow:
    id: int
    note_id: int
    author_id: int
    author_name: str
    text: str
    created_at: datetime
    content_hash: str
    verified: bool
    state: str = "ok"  # see ``signature_state``


def addendum_hash(note_id: int, author_id: int, created_at: datetime, text: str) -> str:
    return text_hash(str(note_id), str(author_id), created_at.isoformat(), text)


def can_add_addendum(actor: Actor, note: SessionNote) -> bool:
    return note.status == NoteStatus.signed and actor.role in (Role.therapist.value, Role.prescriber.value)


def add_addendum(session: Session, actor: Actor, note_id: int, text: str) -> Addendum:
    """Append a dated, signed addendum to a signed note (any clinician on the care team)."""
    note = load(session, actor, note_id)
    if note.status != NoteStatus.signed:
        raise ValidationError({"addendum": "Addenda are for signed notes; edit the draft instead."})
    errors: dict[str, str] = {}
    text = clean_text(text, "addendum", "Addendum", ADDENDUM_MAX, errors) or ""
    if not errors and not text.strip():
        errors["addendum"] = "Write the addendum text."
    if errors:
        raise ValidationError(errors)
    now = clock.utcnow()
    row = Addendum(note_id=note.id, author_id=actor.id, text=text, created_at=now, signed_at=now,
                   content_hash=addendum_hash(note.id, actor.id, now, text))
    row.signature_mac, row.signature_key_id = notehash.make_mac(notehash.addendum_mac_parts(row))
    session.add(row)
    session.flush()
    audit.record(session, actor, "addendum.create", "addendum", row.id, note.patient_id,
                 f"note={note.id};sha256={row.content_hash}")
    return row


def _ring_or_none() -> notehash.KeyRing | None:
    try:
        return notehash.keyring(create=False)
    except notehash.SigningKeyError:
        return None


def addendum_state(a: Addendum, ring: notehash.KeyRing | None) -> str:
    """Like ``signature_state``, for an addendum."""
    if a.content_hash != addendum_hash(a.note_id, a.author_id, a.created_at, a.text):
        return "bad"
    return notehash.check_mac(notehash.addendum_mac_parts(a), a.signature_mac, a.signature_key_id, ring)


def list_addenda(session: Session, actor: Actor, note_id: int) -> list[AddendumRow]:
    """A signed note's addenda, oldest first, each with its signature checked."""
    note = load(session, actor, note_id)
    rows = session.exec(
        select(Addendum, User.full_name, User.credentials).join(User, User.id == Addendum.author_id)
        .where(Addendum.note_id == note.id).order_by(col(Addendum.created_at), col(Addendum.id))
    ).all()
    out = []
    ring = _ring_or_none()
    for a, name, cred in rows:
        state = addendum_state(a, ring)
        out.append(AddendumRow(a.id, a.note_id, a.author_id, f"{name}, {cred}" if cred else name, a.text,
                               a.created_at, a.content_hash, state == "ok", state))
    if out:
        audit.record(session, actor, "addendum.read", "session_note", note.id, note.patient_id, f"count={len(out)}")
    return out
