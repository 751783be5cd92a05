"""Database-level guards: a signed note and its addenda cannot be changed or deleted.

The service layer refuses these changes first; the triggers make sure no other path
(an ad-hoc script, a future bug) can. On SQLite, ``batch_alter_table`` recreates a
table and drops its triggers: a migration that batch-alters ``session_notes`` or
``addenda`` must call :func:`install` again.
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


def statements(dialect_name: str) -> list[str]:
    return _SQLITE if dialect_name == "sqlite" else _POSTGRES


def install(op) -> None:
    """Install the guards from an Alembic migration (``op``)."""
    for stmt in statements(op.get_bind().dialect.name):
        op.execute(stmt)
