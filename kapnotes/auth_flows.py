"""Sign-ins between two requests, in the database: a right password whose second factor (or new
password, or enrolment) is still to come, and single sign-on flows between the redirect to the
provider and its answer (state, nonce, PKCE verifier, where to go next).

Any app process may serve the next request (issue 19), so none of this stays in one process's
memory. The browser holds a random id in an HttpOnly cookie; the row is keyed by its SHA-256,
so a copy of the database cannot finish someone's sign-in. Every row has an expiry; expired
rows are never returned and are pruned when new flows start.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Session, select

from kapnotes.auth import token_hash
from kapnotes.models import AuthFlow
from kapnotes.timeutil import utcnow

MAX_ID_LENGTH = 200  # a longer cookie is no id of ours


def put(session: Session, kind: str, data: dict, seconds: int, now: datetime | None = None) -> str:
    """Store a new flow; returns the raw id for the browser's cookie."""
    now = now or utcnow()
    session.exec(delete(AuthFlow).where(AuthFlow.expires_at < now))
    raw = secrets.token_urlsafe(32)
    session.add(AuthFlow(key_hash=token_hash(raw), kind=kind, data=dict(data),
                         expires_at=now + timedelta(seconds=seconds)))
    session.flush()
    return raw


def _row(session: Session, kind: str, raw: str | None, now: datetime | None, lock: bool) -> AuthFlow | None:
    if not raw or len(raw) > MAX_ID_LENGTH:
        return None
    stmt = select(AuthFlow).where(AuthFlow.key_hash == token_hash(raw), AuthFlow.kind == kind)
    if lock:
        stmt = stmt.with_for_update()
    row = session.exec(stmt.execution_options(populate_existing=True)).first()
    if row is None or row.expires_at <= (now or utcnow()):
        return None
    return row


def get(session: Session, kind: str, raw: str | None, now: datetime | None = None) -> dict | None:
    """The flow's data (locked on PostgreSQL until the unit of work ends), or None if unknown or expired."""
    row = _row(session, kind, raw, now, lock=True)
    return dict(row.data) if row is not None else None


def save(session: Session, kind: str, raw: str | None, data: dict) -> None:
    """Write back a changed flow (its expiry stays)."""
    row = _row(session, kind, raw, None, lock=True)
    if row is not None:
        row.data = dict(data)
        session.add(row)
        session.flush()


def take(session: Session, kind: str, raw: str | None, now: datetime | None = None) -> dict | None:
    """Each flow is used once: return its data and delete it; a second take (any process) gets None."""
    if not raw or len(raw) > MAX_ID_LENGTH:
        return None
    row = _row(session, kind, raw, now, lock=True)
    result = session.exec(delete(AuthFlow).where(AuthFlow.key_hash == token_hash(raw), AuthFlow.kind == kind))
    if row is None or result.rowcount != 1:
        return None
    return dict(row.data)


def drop(session: Session, kind: str, raw: str | None) -> None:
    if raw and len(raw) <= MAX_ID_LENGTH:
        session.exec(delete(AuthFlow).where(AuthFlow.key_hash == token_hash(raw), AuthFlow.kind == kind))
