"""PostgreSQL: the app's runtime role can run the app and nothing more.

Migrations run as the owner (here the test server's superuser); ``grant-runtime-role``
gives a separate role data rights only. That role cannot disable the signed-note guard,
alter or empty the audit table, or change an audit event, while signing a note and
recording audit events work.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError
from sqlmodel import select

from kapnotes import audit, notes
from kapnotes.db import make_engine, session_scope
from kapnotes.models import AuditEvent, SessionNote
from kapnotes.timeutil import utcnow
from tests.factories import make_clinic

ROOT = Path(__file__).resolve().parents[2]
TODAY = utcnow().date() - timedelta(days=1)
INTEGRATION = {"client_account": "Gentle.", "risk_check": "Denies.", "plan": "Continue."}


@pytest.fixture(scope="module")
def runtime_role(pg_session_engine):
    """A fresh password-less role granted by the CLI (``grant-runtime-role``), once per module: the
    grants are on the tables, so they outlive each test's emptying of them."""
    from tests.conftest import PG_URL

    role = f"kap_rt_{secrets.token_hex(4)}"
    with pg_session_engine.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
    try:
        env = {**os.environ, "KAPNOTES_DATABASE_URL": PG_URL}
        done = subprocess.run([sys.executable, "-m", "kapnotes", "grant-runtime-role", role], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        yield make_url(PG_URL).set(username=role, password=None).render_as_string(hide_password=False)
    finally:
        with pg_session_engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))


@pytest.fixture
def runtime(pg_session_engine, runtime_role, tmp_path, monkeypatch):
    """(owner engine, runtime engine, clinic): the small clinic on an emptied database."""
    from tests.conftest import truncate_all

    monkeypatch.setenv("KAPNOTES_SIGNING_KEY_FILE", str(tmp_path / "signing.key"))
    truncate_all(pg_session_engine)
    clinic = make_clinic(pg_session_engine)
    rt = make_engine(runtime_role)
    try:
        yield pg_session_engine, rt, clinic
    finally:
        rt.dispose()


@pytest.mark.parametrize("sql", [
    "ALTER TABLE session_notes DISABLE TRIGGER ALL",
    "ALTER TABLE session_notes DISABLE TRIGGER trg_signed_note_guard",
    "DROP TRIGGER trg_signed_note_guard ON session_notes",
    "ALTER TABLE audit_events DISABLE TRIGGER ALL",
    "ALTER TABLE audit_events ADD COLUMN note text",
    "UPDATE audit_events SET detail = 'forged'",
    "DELETE FROM audit_events",
    "TRUNCATE audit_events",
    "CREATE TABLE shadow (id int)",
    "CREATE OR REPLACE FUNCTION kap_refuse_audit_change() RETURNS trigger AS $$ BEGIN RETURN NEW; END $$ "
    "LANGUAGE plpgsql",
])
def test_runtime_role_cannot_change_the_schema_or_the_audit_log(runtime, sql):
    _, rt, _ = runtime
    with pytest.raises(DatabaseError, match="must be owner|permission denied"), rt.begin() as conn:
        conn.execute(text(sql))


def test_runtime_role_runs_the_app_but_cannot_rewrite_a_signed_note(runtime):
    owner, rt, clinic = runtime
    with session_scope(rt) as s:
        note = notes.create_draft(s, clinic.tina, clinic.a1, "integration", session_date=TODAY)
        nid, version = note.id, note.version
    with session_scope(rt) as s:
        notes.sign(s, clinic.tina, nid, version, fields=INTEGRATION, free_text="Felt calm.")
        audit.record(s, clinic.tina, "patient.open", "patient", clinic.a1, clinic.a1)
    with session_scope(rt) as s:
        assert notes.verify(s.get(SessionNote, nid))
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "note.sign")).one()
        assert audit.verify_chain(s).ok
    with pytest.raises(DatabaseError, match="signed notes are immutable"), rt.begin() as conn:
        conn.execute(text("UPDATE session_notes SET free_text = 'x', content_hash = :h WHERE id = :id"),
                     {"h": "0" * 64, "id": nid})
    with owner.connect() as conn:
        assert conn.execute(text("SELECT free_text FROM session_notes WHERE id = :id"), {"id": nid}).scalar() \
            == "Felt calm."


def test_the_owner_is_refused_as_runtime_role(pg_session_engine):
    from kapnotes.db import grant_runtime_role

    with pg_session_engine.connect() as conn:
        owner = conn.execute(text("SELECT tableowner FROM pg_tables WHERE tablename = 'audit_events'")).scalar()
    with pytest.raises(ValueError, match="different role from the owner"):
        grant_runtime_role(pg_session_engine, owner)
