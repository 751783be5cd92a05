"""Whole-record verification (``verify-audit``) and sealing signatures made before MACs.

Each signed note and addendum is checked three ways: its content against its stored hash, that
hash against the one the audit chain recorded at signing, and its keyed signature (MAC). Reads
the database as it is; only sealing writes (each seal is an audit event carrying the hash).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class _Kind:
    """A kind of signed record: how its hash is recomputed and its MAC parts gathered."""

    word: str  # as problems name it, and its audit actions ("note.seal")
    record_type: str  # as the audit chain names it
    model: Any
    actual: Callable[[Any], str]
    mac_parts: Callable[[Any], Any]


NOTE = _Kind("note", "session_note", SessionNote, content_hash, notehash.note_mac_parts)
ADDENDUM = _Kind("addendum", "addendum", Addendum,
                 lambda a: addendum_hash(a.note_id, a.author_id, a.created_at, a.text), notehash.addendum_mac_parts)


def _problem(kind: _Kind, row, recorded: dict[tuple[str, str], str], mac_state: str) -> tuple[str, str | None]:
    """(the hash of the row as it is now, what is wrong with its signature or None)."""
    actual = kind.actual(row)
    return actual, _judge(kind.word, row.id, row.content_hash, actual, recorded.get((kind.record_type, str(row.id))),
                          mac_state)


def verify_signatures(session: Session, ring: notehash.KeyRing | None) -> SignatureReport:
    """Re-check every signed note and addendum against its MAC and the hash in the audit chain.

    Signatures from before MACs (none stored) are checked against their hash and the audit
    chain only, and counted as ``unsealed``. Reads the database as it is (no audit event).
    """
    recorded = _recorded_hashes(session)
    problems: list[str] = []
    counts = {NOTE.word: 0, ADDENDUM.word: 0}
    unsealed = 0
    for kind, where in ((NOTE, SessionNote.status == NoteStatus.signed.value), (ADDENDUM, sa_true())):
        for row in _stream(session, kind.model, where):
            counts[kind.word] += 1
            mac = notehash.check_mac(kind.mac_parts(row), row.signature_mac, row.signature_key_id, ring)
            unsealed += mac == "unsealed"
            bad = _problem(kind, row, recorded, mac)[1]
            if bad:
                problems.append(bad)
    return SignatureReport(counts[NOTE.word], counts[ADDENDUM.word], unsealed, tuple(problems))


def seal_legacy_signatures(session: Session, ring: notehash.KeyRing) -> tuple[int, list[str]]:
    """MAC the signatures made before MACs existed, after checking each against its stored hash
    and the hash the audit log recorded (when it recorded one). Each seal is an audit event
    carrying the hash, so from then on the chain vouches for it. Returns (sealed, refused)."""
    recorded = _recorded_hashes(session)
    sealed, refused = 0, []
    for kind, unsealed_rows in ((NOTE, _unsealed_notes), (ADDENDUM, _unsealed_addenda)):
        for row, patient_id, detail in unsealed_rows(session):
            actual, bad = _problem(kind, row, recorded, "")
            if bad:
                refused.append(bad)
                continue
            mac, key_id = notehash.make_mac(kind.mac_parts(row), ring)
            t = kind.model.__table__
            session.execute(t.update().where(t.c.id == row.id, t.c.signature_mac.is_(None))
                            .values(signature_mac=mac, signature_key_id=key_id))
            audit.record(session, None, f"{kind.word}.seal", kind.record_type, row.id, patient_id,
                         f"{detail}sha256={actual}", actor_username="system")
            sealed += 1
    return sealed, refused


def _unsealed_notes(session: Session) -> list[tuple[SessionNote, int, str]]:
    rows = session.exec(select(SessionNote).where(SessionNote.status == NoteStatus.signed.value,
                                                  col(SessionNote.signature_mac).is_(None))
                        .order_by(col(SessionNote.id))).all()
    return [(note, note.patient_id, "") for note in rows]


def _unsealed_addenda(session: Session) -> list[tuple[Addendum, int, str]]:
    rows = session.exec(select(Addendum, SessionNote.patient_id).join(SessionNote, SessionNote.id == Addendum.note_id)
                        .where(col(Addendum.signature_mac).is_(None)).order_by(col(Addendum.id))).all()
    return [(a, patient_id, f"note={a.note_id};") for a, patient_id in rows]
