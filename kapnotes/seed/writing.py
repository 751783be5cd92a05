"""Writing the replay's rows: bulk inserts in foreign-key order, the services' rows back-dated,
the audit chain appended exactly as ``kapnotes.audit`` chains it, PostgreSQL sequences moved on.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select, text, update

from kapnotes import audit
from kapnotes.db import lock_for_append
from kapnotes.models import (
    Addendum,
    Assessment,
    AuditEvent,
    CareTeam,
    DoseAdjustment,
    DoseEntry,
    Patient,
    SessionNote,
    TreatmentPlan,
    User,
)
from kapnotes.seed.context import AuditRow, Batch, Ctx, HashView, SeedSummary, Story


def flush(ctx: Ctx, p: Story) -> None:
    """Write what happened since the last review, so the engine sees it."""
    insert_batch(ctx.session, p.batch)
    p.batch = Batch()


def insert_batch(session, b: Batch) -> None:
    """Insert what one patient recorded since the last review, in foreign-key order."""
    for model, rows in (
        (SessionNote, b.dosing_notes),
        (DoseEntry, b.doses),
        (SessionNote, b.integration_notes),
        (Addendum, b.addenda),
        (Assessment, b.assessments),
    ):
        if rows:
            session.execute(insert(model.__table__), rows)


def stamp_service_rows(session, first_pid: int, summary: SeedSummary) -> None:
    """Rows the services wrote take their creation time from the column default (the real
    clock): give them the historical moment they were made at, and count them."""
    adj, plan = DoseAdjustment.__table__, TreatmentPlan.__table__
    session.execute(update(adj).where(adj.c.patient_id >= first_pid).values(created_at=adj.c.as_of))
    session.execute(update(plan).where(plan.c.patient_id >= first_pid).values(created_at=plan.c.effective_from))
    summary.adjustments = session.execute(
        select(func.count()).select_from(adj).where(adj.c.patient_id >= first_pid)).scalar()
    summary.plan_versions = session.execute(
        select(func.count()).select_from(plan).where(plan.c.patient_id >= first_pid)).scalar()


def append_audit_chain(session, rows: list[AuditRow]) -> int:
    """Append the history's events in time order, chained exactly as ``audit.record`` does."""
    lock_for_append(session, audit._AUDIT_LOCK_KEY)  # noqa: SLF001 - same chain, same lock
    t = AuditEvent.__table__
    prev = session.execute(select(t.c.hash).order_by(t.c.id.desc()).limit(1)).scalar() or audit.GENESIS_HASH
    next_id = (session.execute(select(func.max(t.c.id))).scalar() or 0) + 1
    ordered = sorted(enumerate(rows), key=lambda r: (r[1][0], r[0]))
    out: list[dict[str, Any]] = []
    for _, (at, actor_id, username, action, record_type, record_id, patient_id, detail) in ordered:
        row = dict(id=next_id, at=at, actor_id=actor_id, actor_username=username[:64], action=action,
                   record_type=record_type, record_id=record_id, patient_id=patient_id, detail=detail[:255],
                   prev_hash=prev, hash="")
        row["hash"] = digest = audit._digest(prev, HashView(row))  # noqa: SLF001 - the one chain definition
        out.append(row)
        prev = digest
        next_id += 1
        if len(out) >= 20000:
            session.execute(insert(t), out)
            out = []
    if out:
        session.execute(insert(t), out)
    return len(ordered)


def fix_sequences(session) -> None:
    """PostgreSQL: move each id sequence past the explicit ids written above."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for model in (User, CareTeam, Patient, DoseEntry, Assessment, SessionNote, Addendum, AuditEvent):
        name = model.__tablename__
        session.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"
        ))
