"""Tampering as the schema's owner would: lift the guard triggers, change rows, put them back."""

from __future__ import annotations

from sqlalchemy import text

from kapnotes import audit
from kapnotes.models import AuditEvent

GUARDED = ("audit_events", "session_notes", "addenda")


def unguarded(session, sql: str, tables: tuple[str, ...] = GUARDED, **params) -> None:
    """Run ``sql`` with the triggers of ``tables`` lifted (as an owner can), then commit."""
    if session.get_bind().dialect.name == "sqlite":
        triggers = session.execute(text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN "
            f"({', '.join(repr(t) for t in tables)})")).all()
        for name, _ in triggers:
            session.execute(text(f"DROP TRIGGER {name}"))
        session.execute(text(sql), params)
        for _, create in triggers:
            session.execute(text(create))
    else:
        for t in tables:
            session.execute(text(f"ALTER TABLE {t} DISABLE TRIGGER USER"))
        session.execute(text(sql), params)
        for t in tables:
            session.execute(text(f"ALTER TABLE {t} ENABLE TRIGGER USER"))
    session.commit()


def rehash_audit_chain(session) -> None:
    """A forger with database access: rewrite the audit chain with fresh, self-consistent hashes."""
    rows = session.execute(AuditEvent.__table__.select().order_by(AuditEvent.__table__.c.id)).all()
    prev = audit.GENESIS_HASH
    for row in rows:
        digest = audit._digest(prev, row)
        unguarded(session, "UPDATE audit_events SET prev_hash = :p, hash = :h WHERE id = :id", p=prev, h=digest,
                  id=row.id)
        prev = digest
