"""``seed_demo``: build a clinic in one transaction, from the people through every history to the audit chain."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine

from kapnotes import auth
from kapnotes.config import get_settings
from kapnotes.db import session_scope
from kapnotes.errors import ValidationError
from kapnotes.models import Patient, User
from kapnotes.seed.context import AuditRow, Clock, Ctx, Ids, SeedSummary
from kapnotes.seed.demo import DEMO_PASSWORD, DEMO_USERS
from kapnotes.seed.history import patient_history
from kapnotes.seed.people import build_people
from kapnotes.seed.writing import append_audit_chain, fix_sequences, stamp_service_rows
from kapnotes.timeutil import utcnow


def seed_demo(engine: Engine, patients: int = 8, years: float = 0.35, seed: int = 7,
              today: date | None = None) -> SeedSummary:
    """Seed a clinic of ``patients`` with ``years`` of history (see ``kapnotes.seed``)."""
    if patients < 1:
        raise ValidationError({"patients": "Seed at least one patient."})
    if not (0 < years <= 10):
        raise ValidationError({"years": "Years of history must be above 0 and at most 10."})
    today = today or utcnow().date()
    days = max(42, int(round(365 * years)))
    clinic_start = today - timedelta(days=days + 14)
    summary = SeedSummary()
    audit_rows: list[AuditRow] = []
    password_hash = auth.hash_password(DEMO_PASSWORD)  # one Argon2id hash for every seeded account

    with session_scope(engine) as session:
        taken = session.execute(select(User.username).where(User.username.in_([u[0] for u in DEMO_USERS]))).all()
        if taken:
            raise ValidationError({"username": f"The database already has the demo user {taken[0][0]!r}; "
                                               "seed an empty database."})
        if session.execute(select(Patient.id).where(Patient.mrn == "KAP-1001")).first():
            raise ValidationError({"mrn": "The database already has patient KAP-1001; seed an empty database."})
        ids = Ids(session)
        people = build_people(session, ids, patients, password_hash, clinic_start, audit_rows, summary)
        first_pid = ids.peek(Patient)
        ctx = Ctx(session, ids, people, seed, today, days, Clock(), audit_rows, summary, get_settings().tz)
        ctx.clock.install()
        try:
            for i in range(patients):
                patient_history(ctx, i)
        finally:
            ctx.clock.uninstall()
        stamp_service_rows(session, first_pid, summary)
        audit_rows.append((utcnow().replace(microsecond=0), None, "system", "demo.seed", "", None, None,
                           f"patients={patients} years={years:g} seed={seed}"))
        summary.audit_events = append_audit_chain(session, audit_rows)
        fix_sequences(session)
    return summary
