"""Database-level guards: a signed note and its addenda cannot be changed or deleted.

The service layer refuses these changes first; the triggers make sure no other path
(an ad-hoc script, a future bug) can. On SQLite, ``batch_alter_table`` recreates a
table and drops its triggers: a migration that batch-alters ``session_notes``, ``addenda``
or ``audit_events`` must call :func:`install_current` again.

Migration 0112 adds: audit events are append-only (UPDATE and DELETE refused; the chain
never updates a row), and the one change a signed note or addendum still accepts is
sealing a signature made before MACs existed (``signature_mac`` from empty to set, every
other column unchanged; ``seal-legacy-signatures``). The triggers stop mistakes and the
runtime role; the owner can drop them, which is why signatures carry a MAC under a key the
database never holds.
"""

from __future__ import annotations

SIGNED_NOTE_MESSAGE = "signed notes are immutable; add an addendum instead"
ADDENDUM_MESSAGE = "addenda are immutable"

_SQLITE = [
    "DROP TRIGGER IF EXISTS trg_signed_note_no_update",
    f"""CREATE TRIGGER trg_signed_note_no_update BEFORE UPDATE ON session_notes
        WHEN OLD.status = 'signed'
        BEGIN SELECT RAISE(ABORT, '{SIGNED_NOTE_MESSAGE}'); END""",
    "DROP TRIGGER IF EXISTS trg_signed_note_no_delete",
    f"""CREATE TRIGGER trg_signed_note_no_delete BEFORE DELETE ON session_notes
        WHEN OLD.status = 'signed'
        BEGIN SELECT RAISE(ABORT, '{SIGNED_NOTE_MESSAGE}'); END""",
    "DROP TRIGGER IF EXISTS trg_addendum_no_update",
    f"""CREATE TRIGGER trg_addendum_no_update BEFORE UPDATE ON addenda
        BEGIN SELECT RAISE(ABORT, '{ADDENDUM_MESSAGE}'); END""",
    "DROP TRIGGER IF EXISTS trg_addendum_no_delete",
    f"""CREATE TRIGGER trg_addendum_no_delete BEFORE DELETE ON addenda
        BEGIN SELECT RAISE(ABORT, '{ADDENDUM_MESSAGE}'); END""",
]

_POSTGRES = [
    f"""CREATE OR REPLACE FUNCTION kap_refuse_signed_note() RETURNS trigger AS $$
        BEGIN
          IF OLD.status = 'signed' THEN
            RAISE EXCEPTION '{SIGNED_NOTE_MESSAGE}';
          END IF;
          IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
          RETURN NEW;
        END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS trg_signed_note_guard ON session_notes",
    """CREATE TRIGGER trg_signed_note_guard BEFORE UPDATE OR DELETE ON session_notes
        FOR EACH ROW EXECUTE FUNCTION kap_refuse_signed_note()""",
    f"""CREATE OR REPLACE FUNCTION kap_refuse_addendum_change() RETURNS trigger AS $$
        BEGIN RAISE EXCEPTION '{ADDENDUM_MESSAGE}'; END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS trg_addendum_guard ON addenda",
    """CREATE TRIGGER trg_addendum_guard BEFORE UPDATE OR DELETE ON addenda
        FOR EACH ROW EXECUTE FUNCTION kap_refuse_addendum_change()""",
]


AUDIT_MESSAGE = "audit events are append-only"

# columns at migration 0112 (a seal may change only signature_mac / signature_key_id)
_NOTE_COLUMNS = ("id", "patient_id", "author_id", "note_type", "status", "session_date", "start_time", "end_time",
                 "modality", "fields", "free_text", "carried_over_from_id", "integrates_dose_id", "created_at",
                 "updated_at", "updated_by_id", "signed_at", "signed_by_id", "content_hash", "version")
_ADDENDUM_COLUMNS = ("id", "note_id", "author_id", "text", "created_at", "signed_at", "content_hash")


def _sqlite_seal(columns: tuple[str, ...]) -> str:
    same = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in columns)
    return f"(OLD.signature_mac IS NULL AND NEW.signature_mac IS NOT NULL AND {same})"


_SQLITE_0112 = [
    "DROP TRIGGER IF EXISTS trg_signed_note_no_update",
    f"""CREATE TRIGGER trg_signed_note_no_update BEFORE UPDATE ON session_notes
        WHEN OLD.status = 'signed' AND NOT {_sqlite_seal(_NOTE_COLUMNS)}
        BEGIN SELECT RAISE(ABORT, '{SIGNED_NOTE_MESSAGE}'); END""",
    "DROP TRIGGER IF EXISTS trg_addendum_no_update",
    f"""CREATE TRIGGER trg_addendum_no_update BEFORE UPDATE ON addenda
        WHEN NOT {_sqlite_seal(_ADDENDUM_COLUMNS)}
        BEGIN SELECT RAISE(ABORT, '{ADDENDUM_MESSAGE}'); END""",
    "DROP TRIGGER IF EXISTS trg_audit_no_update",
    f"""CREATE TRIGGER trg_audit_no_update BEFORE UPDATE ON audit_events
        BEGIN SELECT RAISE(ABORT, '{AUDIT_MESSAGE}'); END""",
    "DROP TRIGGER IF EXISTS trg_audit_no_delete",
    f"""CREATE TRIGGER trg_audit_no_delete BEFORE DELETE ON audit_events
        BEGIN SELECT RAISE(ABORT, '{AUDIT_MESSAGE}'); END""",
]

_PG_SEAL = """(TG_OP = 'UPDATE' AND OLD.signature_mac IS NULL AND NEW.signature_mac IS NOT NULL
               AND (to_jsonb(OLD) - 'signature_mac' - 'signature_key_id')
                   = (to_jsonb(NEW) - 'signature_mac' - 'signature_key_id'))"""

_POSTGRES_0112 = [
    f"""CREATE OR REPLACE FUNCTION kap_refuse_signed_note() RETURNS trigger AS $$
        BEGIN
          IF OLD.status = 'signed' AND NOT {_PG_SEAL} THEN
            RAISE EXCEPTION '{SIGNED_NOTE_MESSAGE}';
          END IF;
          IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
          RETURN NEW;
        END $$ LANGUAGE plpgsql""",
    f"""CREATE OR REPLACE FUNCTION kap_refuse_addendum_change() RETURNS trigger AS $$
        BEGIN
          IF {_PG_SEAL} THEN RETURN NEW; END IF;
          RAISE EXCEPTION '{ADDENDUM_MESSAGE}';
        END $$ LANGUAGE plpgsql""",
    f"""CREATE OR REPLACE FUNCTION kap_refuse_audit_change() RETURNS trigger AS $$
        BEGIN RAISE EXCEPTION '{AUDIT_MESSAGE}'; END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS trg_audit_guard ON audit_events",
    """CREATE TRIGGER trg_audit_guard BEFORE UPDATE OR DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION kap_refuse_audit_change()""",
]


def current_statements(dialect_name: str) -> list[str]:
    """Every guard as of migration 0112 (the base guards, then the 0112 replacements)."""
    return statements(dialect_name) + (_SQLITE_0112 if dialect_name == "sqlite" else _POSTGRES_0112)


def install_current(op) -> None:
    """Install every guard as of migration 0112 (for 0112 and any later batch-alter)."""
    for stmt in current_statements(op.get_bind().dialect.name):
        op.execute(stmt)


def statements(dialect_name: str) -> list[str]:
    return _SQLITE if dialect_name == "sqlite" else _POSTGRES


def install(op) -> None:
    """Install the guards from an Alembic migration (``op``)."""
    for stmt in statements(op.get_bind().dialect.name):
        op.execute(stmt)
