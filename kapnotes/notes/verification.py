"""Whole-record verification (``verify-audit``) and sealing signatures made before MACs.

Each signed note and addendum is checked three ways: its content against its stored hash, that
hash against the one the audit chain recorded at signing, and its keyed signature (MAC). Reads
the database as it is; only sealing writes (each seal is an audit event carrying the hash).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import true as sa_true
from sqlmodel import Session, col, select

from kapnotes import audit
from kapnotes.models import Addendum, AuditEvent, NoteStatus, SessionNote
from kapnotes.notes import hashing as notehash
from kapnotes.notes.hashing import content_hash
from kapnotes.notes.signing import addendum_hash

_SIGN_ACTIONS = {"note.sign": "session_note", "note.seal": "session_note",
                 "addendum.create": "addendum", "addendum.seal": "addendum"}


@dataclass(frozen=True)
class SignatureReport:
    notes: int = 0
    addenda: int = 0
    unsealed: int = 0  # signed before MACs: checked against the hash only
    problems: tuple[str, ...] = ()  # in note id order, then addendum id order; the first is named


def _recorded_hashes(session: Session) -> dict[tuple[str, str], str]:
    """(record type, record id) -> the sha256 the audit chain recorded when it was signed (or sealed)."""
    t = AuditEvent.__table__
    out: dict[tuple[str, str], str] = {}
    rows = session.execute(select(t.c.action, t.c.record_id, t.c.detail)
                           .where(t.c.action.in_(list(_SIGN_ACTIONS))).order_by(t.c.id))
    for action, record_id, detail in rows:
        for part in (detail or "").split(";"):
            if part.startswith("sha256="):
                out.setdefault((_SIGN_ACTIONS[action], record_id), part[7:])
    return out


def _stream(session: Session, model, where, batch: int = 2000):
    last = 0
    while True:
        rows = session.exec(select(model).where(where, col(model.id) > last).order_by(col(model.id))
                            .limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id
        session.expunge_all()


def _judge(kind: str, rid: int, stored: str | None, actual: str, recorded: str | None, mac_state: str) -> str | None:
    if stored != actual:
        return f"{kind} {rid}: its content no longer matches its stored hash (it was altered)"
    if recorded is not None and recorded != actual:
        return f"{kind} {rid}: its content differs from the hash the audit log recorded when it was signed"
    if mac_state == "bad":
        return f"{kind} {rid}: its keyed signature (MAC) does not match (the content and its hash were rewritten)"
    if mac_state == "no_key":
        return f"{kind} {rid}: it was signed with a key that is not in the signing key file"
    if mac_state == "ok" and recorded is None:
        return f"{kind} {rid}: the audit log holds no record of its signature's hash"
    return None


def verify_signatures(session: Session, ring: notehash.KeyRing | None) -> SignatureReport:
    """Re-check every signed note and addendum against its MAC and the hash in the audit chain.

    Signatures from before MACs (none stored) are checked against their hash and the audit
    chain only, and counted as ``unsealed``. Reads the database as it is (no audit event).
    """
    recorded = _recorded_hashes(session)
    problems: list[str] = []
    n_notes = n_add = unsealed = 0
    for note in _stream(session, SessionNote, SessionNote.status == NoteStatus.signed.value):
        n_notes += 1
        actual = content_hash(note)
        mac = notehash.check_mac(notehash.note_mac_parts(note), note.signature_mac, note.signature_key_id, ring)
        unsealed += mac == "unsealed"
        bad = _judge("note", note.id, note.content_hash, actual, recorded.get(("session_note", str(note.id))), mac)
        if bad:
            problems.append(bad)
    for a in _stream(session, Addendum, sa_true()):
        n_add += 1
        actual = addendum_hash(a.note_id, a.author_id, a.created_at, a.text)
        mac = notehash.check_mac(notehash.addendum_mac_parts(a), a.signature_mac, a.signature_key_id, ring)
        unsealed += mac == "unsealed"
        bad = _judge("addendum", a.id, a.content_hash, actual, recorded.get(("addendum", str(a.id))), mac)
        if bad:
            problems.append(bad)
    return SignatureReport(n_notes, n_add, unsealed, tuple(problems))


def seal_legacy_signatures(session: Session, ring: notehash.KeyRing) -> tuple[int, list[str]]:
    """MAC the signatures made before MACs existed, after checking each against its stored hash
    and the hash the audit log recorded (when it recorded one). Each seal is an audit event
    carrying the hash, so from then on the chain vouches for it. Returns (sealed, refused)."""
    recorded = _recorded_hashes(session)
    sealed, refused = 0, []
    notes_t, add_t = SessionNote.__table__, Addendum.__table__
    todo = list(session.exec(select(SessionNote).where(SessionNote.status == NoteStatus.signed.value,
                                                       col(SessionNote.signature_mac).is_(None))
                             .order_by(col(SessionNote.id))).all())
    for note in todo:
        actual = content_hash(note)
        bad = _judge("note", note.id, note.content_hash, actual, recorded.get(("session_note", str(note.id))), "")
        if bad:
            refused.append(bad)
            continue
        mac, key_id = notehash.make_mac(notehash.note_mac_parts(note), ring)
        session.execute(notes_t.update().where(notes_t.c.id == note.id, notes_t.c.signature_mac.is_(None))
                        .values(signature_mac=mac, signature_key_id=key_id))
        audit.record(session, None, "note.seal", "session_note", note.id, note.patient_id,
                     f"sha256={actual}", actor_username="system")
        sealed += 1
    adds = session.exec(select(Addendum, SessionNote.patient_id).join(SessionNote, SessionNote.id == Addendum.note_id)
                        .where(col(Addendum.signature_mac).is_(None)).order_by(col(Addendum.id))).all()
    for a, patient_id in adds:
        actual = addendum_hash(a.note_id, a.author_id, a.created_at, a.text)
        bad = _judge("addendum", a.id, a.content_hash, actual, recorded.get(("addendum", str(a.id))), "")
        if bad:
            refused.append(bad)
            continue
        mac, key_id = notehash.make_mac(notehash.addendum_mac_parts(a), ring)
        session.execute(add_t.update().where(add_t.c.id == a.id, add_t.c.signature_mac.is_(None))
                        .values(signature_mac=mac, signature_key_id=key_id))
        audit.record(session, None, "addendum.seal", "addendum", a.id, patient_id,
                     f"note={a.note_id};sha256={actual}", actor_username="system")
        sealed += 1
    return sealed, refused
