"""The audit trail: one hash-chained event per sign-in, record opened, change and export.

An event names who, when, what action, which record and which patient, and never the
clinical text itself. Each event's hash covers its fields and the previous event's
hash, so editing or deleting an event breaks the chain at that point;
``verify_chain`` finds the first break. Removing events from the very end, or rewriting
the whole chain with fresh hashes, leaves a valid chain: anchors (past heads kept outside
the database, ``verify-audit --anchor FILE``) detect that.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlmodel import Session, col, func, select

from kapnotes.actor import Actor
from kapnotes.db import lock_for_append, session_scope
from kapnotes.errors import PermissionDenied, ValidationError
from kapnotes.models import AuditEvent, Patient, Role
from kapnotes.timeutil import utcnow

GENESIS_HASH = "0" * 64
AUDIT_READERS = frozenset({Role.admin.value, Role.auditor.value})
_AUDIT_LOCK_KEY = 0x4B41_5001  # "KAP" audit chain
_DETAIL_MAX = 255


def _digest(prev_hash: str, ev) -> str:
    """``ev``: an AuditEvent or a row of the audit_events table."""
    payload = [
        prev_hash,
        ev.at.isoformat(),
        ev.actor_id,
        ev.actor_username,
        ev.action,
        ev.record_type,
        ev.record_id,
        ev.patient_id,
        ev.detail,
    ]
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def lock_chain(session: Session) -> None:
    """Take the audit-chain lock now (held to commit); ``record`` takes it too.

    Code that reads a row, then changes it and records that change, can take this lock
    before the read so that the read sees every earlier committed change.
    """
    lock_for_append(session, _AUDIT_LOCK_KEY)


READ_COALESCE = timedelta(minutes=10)


def record(
    session: Session,
    actor: Actor | None,
    action: str,
    record_type: str = "",
    record_id: object | None = None,
    patient_id: int | None = None,
    detail: str = "",
    actor_username: str | None = None,
    coalesce: timedelta | None = None,
) -> AuditEvent:
    """Append an event in the caller's transaction, so it commits with the change it records.

    ``detail`` is for non-clinical context only (counts, a status, a reason code).
    ``coalesce`` (reads only, e.g. ``READ_COALESCE``): when the newest event of the whole log
    is this very read by the same user (same action, record, patient and detail) and younger
    than ``coalesce``, it stands for this one and nothing is appended, so a list re-shown on
    every click is recorded once, not once per rerun. Anything in between (another read,
    a change, another user's event) makes the next read a new event.
    """
    lock_for_append(session, _AUDIT_LOCK_KEY)
    actor_id = actor.id if actor else None
    record_key = None if record_id is None else str(record_id)
    detail = detail[:_DETAIL_MAX]
    now = utcnow()
    if coalesce is None:
        last_hash = session.exec(select(AuditEvent.hash).order_by(col(AuditEvent.id).desc()).limit(1)).first()
    else:
        last = session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(1)).first()
        if (last is not None and last.actor_id == actor_id and last.action == action
                and last.record_type == record_type and last.record_id == record_key
                and last.patient_id == patient_id and last.detail == detail
                and timedelta(0) <= now - last.at < coalesce):
            return last
        last_hash = last.hash if last is not None else None
    ev = AuditEvent(
        at=now,
        actor_id=actor_id,
        actor_username=(actor.username if actor else (actor_username or "system"))[:64],
        action=action,
        record_type=record_type,
        record_id=record_key,
        patient_id=patient_id,
        detail=detail,
        prev_hash=last_hash or GENESIS_HASH,
        hash="",
    )
    ev.hash = _digest(ev.prev_hash, ev)
    session.add(ev)
    session.flush()
    return ev


@dataclass(frozen=True)
class ChainReport:
    count: int
    ok: bool
    head_hash: str
    first_bad_id: int | None = None
    problem: str = ""
    head_id: int | None = None  # the last event checked (intact chains: the newest event)


def verify_events(events: Iterable) -> ChainReport:
    """Check events (AuditEvent objects or rows, in id order) against the chain rules."""
    prev = GENESIS_HASH
    count = 0
    head_id = None
    for ev in events:
        count += 1
        if ev.prev_hash != prev:
            return ChainReport(count, False, prev, ev.id, "its link to the previous event is broken "
                               "(an earlier event was deleted or altered)", head_id)
        if _digest(ev.prev_hash, ev) != ev.hash:
            return ChainReport(count, False, prev, ev.id, "its content does not match its hash (it was altered)",
                               head_id)
        prev = ev.hash
        head_id = ev.id
    return ChainReport(count, True, prev, head_id=head_id)


# --- anchors: the head of the chain, kept outside the database --------------------------------


@dataclass(frozen=True)
class Anchor:
    """A past head of the chain (event id, its hash, how many events, when), kept elsewhere.

    The chain alone cannot show that events were cut from its end, or that someone with
    database access rewrote it and recomputed every hash. A head recorded outside the
    database can: the event it names must still be there with the same hash.
    """

    event_id: int
    hash: str
    count: int
    at: str

    def to_json(self) -> str:
        return json.dumps({"event_id": self.event_id, "hash": self.hash, "count": self.count, "at": self.at},
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Anchor:
        d = json.loads(line)
        if not (isinstance(d, dict) and isinstance(d.get("event_id"), int) and isinstance(d.get("hash"), str)
                and len(d["hash"]) == 64 and isinstance(d.get("count"), int) and isinstance(d.get("at"), str)):
            raise ValueError("not an audit anchor (event_id, hash, count, at)")
        return cls(d["event_id"], d["hash"], d["count"], d["at"])


def anchor_for(report: ChainReport) -> Anchor | None:
    """The anchor to keep for an intact chain (None for an empty or broken one)."""
    if not report.ok or report.head_id is None:
        return None
    return Anchor(report.head_id, report.head_hash, report.count, utcnow().isoformat(timespec="seconds"))


def check_anchors(session: Session, anchors: list[Anchor], report: ChainReport) -> list[str]:
    """Problems found by comparing kept anchors with the stored (and verified) chain: an
    anchored event that is gone (the log was cut short) or whose hash changed (the log was
    rewritten). Plain rows, as ``verify_chain`` reads them."""
    table = AuditEvent.__table__
    problems: list[str] = []
    ids = sorted({a.event_id for a in anchors})
    stored: dict[int, str] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        stored.update(session.execute(select(table.c.id, table.c.hash).where(table.c.id.in_(chunk))).all())
    for a in anchors:
        if a.event_id not in stored:
            head = f"the chain now ends at event {report.head_id}" if report.head_id else "the chain is empty"
            problems.append(f"event {a.event_id}, anchored at {a.at} ({a.count} events then), is gone: {head} "
                            "(events were removed from the end of the log)")
        elif stored[a.event_id] != a.hash:
            problems.append(f"event {a.event_id}, anchored at {a.at}, has another hash than the anchor "
                            "(the log was rewritten from that point or earlier)")
    return problems


def _stored_events(session: Session, batch: int) -> Iterator:
    table = AuditEvent.__table__
    last_id = 0
    while True:
        rows = session.execute(table.select().where(table.c.id > last_id).order_by(table.c.id).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id


def verify_chain(session: Session, batch: int = 5000) -> ChainReport:
    """Walk the stored chain in id order; report the first event whose hash or link is wrong.

    Reads plain rows, not ORM objects: events already loaded in ``session`` must not
    hide a change made in the database, and the caller's session is left untouched.
    """
    return verify_events(_stored_events(session, batch))


@dataclass(frozen=True)
class AuditFilter:
    username: str | None = None
    patient_id: int | None = None
    action: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    mrn: str | None = None  # what an admin knows a patient by; resolved here to the patient's id


def list_events(session: Session, actor: Actor, flt: AuditFilter, tz, limit: int = 500,
                offset: int = 0) -> list[AuditEvent]:
    """Admins and auditors read the audit log; dates are the clinic's calendar days; ``offset`` pages back."""
    if actor.role not in AUDIT_READERS:
        raise PermissionDenied("Only an administrator or an auditor can read the audit log.")
    q = select(AuditEvent)
    if flt.mrn and flt.mrn.strip():
        pid = session.exec(select(Patient.id).where(Patient.mrn == flt.mrn.strip())).first()
        if pid is None:
            raise ValidationError({"mrn": f"No patient has the MRN {flt.mrn.strip()!r}."})
        q = q.where(AuditEvent.patient_id == pid)
    if flt.username:
        q = q.where(AuditEvent.actor_username == flt.username)
    if flt.patient_id is not None:
        q = q.where(AuditEvent.patient_id == flt.patient_id)
    if flt.action:
        q = q.where(AuditEvent.action == flt.action)
    if flt.date_from:
        q = q.where(AuditEvent.at >= datetime.combine(flt.date_from, time(), tz))
    if flt.date_to:
        q = q.where(AuditEvent.at < datetime.combine(flt.date_to + timedelta(days=1), time(), tz))
    events = session.exec(q.order_by(col(AuditEvent.id).desc()).offset(max(0, offset)).limit(limit)).all()
    record(session, actor, "audit.read", "audit_events", detail=f"rows={len(events)}", coalesce=READ_COALESCE)
    return list(events)


def distinct_actions(session: Session) -> list[str]:
    """The actions present in the log, for the filter's choices.

    A loose index scan on ``ix_audit_events_action``: one index seek per distinct action
    instead of reading every event (``SELECT DISTINCT`` walks the whole table or index).
    """
    rows = session.execute(text(
        "WITH RECURSIVE a(action) AS ("
        " SELECT min(action) FROM audit_events"
        " UNION ALL"
        " SELECT (SELECT min(e.action) FROM audit_events e WHERE e.action > a.action) FROM a"
        " WHERE a.action IS NOT NULL)"
        " SELECT action FROM a WHERE action IS NOT NULL"
    )).all()
    return [r[0] for r in rows]


VERIFY_ACTION = "audit.verify"


@dataclass(frozen=True)
class Verification:
    """A recorded check of the whole chain (who ran it, when, what it found)."""

    at: datetime
    username: str
    detail: str

    @property
    def ok(self) -> bool:
        return self.detail.startswith("intact")


def verify_and_record(session: Session, actor: Actor) -> ChainReport:
    """An administrator checks the whole chain; the result itself goes into the log.

    Walking every event takes seconds in a large clinic, so the audit log page runs it on
    request and shows the last recorded result, instead of re-walking on every rerun.
    """
    if actor.role not in AUDIT_READERS:
        raise PermissionDenied("Only an administrator or an auditor can verify the audit log.")
    report = verify_chain(session)
    detail = (f"intact {report.count} events" if report.ok
              else f"broken at event {report.first_bad_id} ({report.count} events read)")
    record(session, actor, VERIFY_ACTION, "audit_events", detail=detail)
    return report


def last_verification(session: Session, actor: Actor) -> Verification | None:
    """The latest recorded chain check, read through the action index (no walk)."""
    if actor.role not in AUDIT_READERS:
        raise PermissionDenied("Only an administrator or an auditor can read the audit log.")
    row = session.exec(
        select(AuditEvent.at, AuditEvent.actor_username, AuditEvent.detail)
        .where(AuditEvent.action == VERIFY_ACTION)
        .order_by(col(AuditEvent.id).desc())
        .limit(1)
    ).first()
    return None if row is None else Verification(row[0], row[1], row[2])


def count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(AuditEvent)).one()


# --- automatic anchors: on every backup and hourly while the app runs ---------------------------

ANCHOR_FILE_ENV = "KAPNOTES_AUDIT_ANCHOR_FILE"


def anchor_path_from_env():
    """``KAPNOTES_AUDIT_ANCHOR_FILE`` as a Path, or None when unset."""
    raw = os.environ.get(ANCHOR_FILE_ENV, "").strip()
    return Path(raw) if raw else None


def write_anchor(session: Session, path) -> Anchor | None:
    """Verify the chain and append its head to the anchor file ``path`` (one JSON line).

    Nothing is written for an empty or broken chain (a broken one must be investigated, not
    anchored), or when the head is already the file's last line. Returns the anchor written.
    """
    path = Path(path)
    report = verify_chain(session)
    head = anchor_for(report)
    if head is None:
        return None
    if path.exists():
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if lines:
            try:
                last = Anchor.from_json(lines[-1])
            except ValueError:
                last = None
            if last is not None and last.event_id == head.event_id and last.hash == head.hash:
                return None
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(head.to_json() + "\n")
    return head


class AnchorThread:
    """A daemon thread writing an anchor every ``every_seconds`` until ``stop()``."""

    def __init__(self, engine, path, every_seconds: float) -> None:
        self.engine, self.path, self.every = engine, path, every_seconds
        self.written = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kapnotes-audit-anchor", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with session_scope(self.engine, write=False) as s:
                    if write_anchor(s, self.path) is not None:
                        self.written += 1
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - keep anchoring; a busy database is retried next time
                self.last_error = str(exc)
                logging.getLogger(__name__).warning("audit anchor not written: %s", exc)
            self._stop.wait(self.every)

    def start(self) -> AnchorThread:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()


def start_anchor_thread(engine, path, every_seconds: float = 3600) -> AnchorThread:
    """Anchor the chain now and then every ``every_seconds`` (the server calls this at start-up
    when ``KAPNOTES_AUDIT_ANCHOR_FILE`` is set, and ``stop()`` at shutdown)."""
    return AnchorThread(engine, path, every_seconds).start()


# --- what an administrator sees of an event's detail ------------------------------------------

# Detail keys whose values are counts, ids, sizes or system states: never a clinical fact.
_PLAIN_KEYS = frozenset({
    "rows", "count", "items", "columns", "imported", "duplicates", "invalid", "voided", "staged_rows_removed",
    "engine", "bytes", "role", "team", "user", "note", "version", "terms", "hits", "addenda", "sha256",
    "default", "from", "to",
})
# Actions about accounts, the log itself and the system: their free-text details are not clinical.
_PLAIN_ACTIONS = ("auth.", "audit.", "backup.", "user.", "team.", "session.", "admin.")
REDACTED = "…"


def redact_detail(action: str, record_type: str, detail: str) -> str:
    """An event's detail as an administrator may see it: counts, ids and system states stay;
    anything that could be a clinical fact (``flag=suicidality``, ``instrument=PHQ-9``,
    ``action=hold``, a note type, a plan status) becomes ``…``. The stored detail is unchanged
    (the chain covers it); the ``auditor`` role reads it in full."""
    if not detail or action.startswith(_PLAIN_ACTIONS):
        return detail
    out = []
    for token in detail.replace(";", " ").split():
        key, eq, _ = token.partition("=")
        if eq and (key in _PLAIN_KEYS or (key == "status" and record_type == "session_note")):
            out.append(token)
        elif eq:
            out.append(f"{key}={REDACTED}")
        elif not out or out[-1] != REDACTED:
            out.append(REDACTED)
    return " ".join(out)


def shown_detail(actor: Actor, ev) -> str:
    """The detail ``actor`` may read: in full for an auditor, redacted for anyone else."""
    if actor.role == Role.auditor:
        return ev.detail
    return redact_detail(ev.action, ev.record_type or "", ev.detail or "")
