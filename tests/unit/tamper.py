"""Tampering as the schema's owner would: lift the guard triggers, change rows, put them back."""

from __future__ import annotations

from sqlalchemy import text

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
