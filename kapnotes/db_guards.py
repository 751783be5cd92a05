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
AUDIT_MESSAGE = "audit events are append-only"

# Every guard's SQL comes from the templates below; what they produce is what migrations 0001 and 0112
# executed, to the character.


def _sqlite_guards(name: str, table: str, message: str, when: str = "",
                   events: tuple[str, ...] = ("UPDATE", "DELETE")) -> list[str]:
    """SQLite: for each event, (re)create ``trg_<name>_no_<event>`` refusing it on ``table`` (if ``when``)."""
    condition = f"\n        WHEN {when}" if when else ""
    out = []
    for event in events:
        trigger = f"trg_{name}_no_{event.lower()}"
        out += [f"DROP TRIGGER IF EXISTS {trigger}",
                f"""CREATE TRIGGER {trigger} BEFORE {event} ON {table}{condition}
        BEGIN SELECT RAISE(ABORT, '{message}'); END"""]
    return out


def _pg_function(function: str, body: str) -> str:
    """PostgreSQL: (re)create the trigger function ``function()`` running the PL/pgSQL ``body``."""
    return f"""CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS $$
        {body} $$ LANGUAGE plpgsql"""


def _pg_refusal(function: str, message: str) -> str:
    """PostgreSQL: a trigger function refusing every change with ``message``."""
    return _pg_function(function, f"BEGIN RAISE EXCEPTION '{message}'; END")


def _pg_guard(trigger: str, table: str, function: str) -> list[str]:
    """PostgreSQL: (re)create ``trigger`` running ``function()`` before each UPDATE or DELETE on ``table``."""
    return [f"DROP TRIGGER IF EXISTS {trigger} ON {table}",
            f"""CREATE TRIGGER {trigger} BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION {function}()"""]


def _pg_signed_note_function(condition: str) -> str:
    """PostgreSQL: refuse a change to a signed note when ``condition`` holds; let any other row through."""
    return _pg_function("kap_refuse_signed_note", f"""BEGIN
          IF {condition} THEN
            RAISE EXCEPTION '{SIGNED_NOTE_MESSAGE}';
          END IF;
          IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
          RETURN NEW;
        END""")


_SQLITE = [
    *_sqlite_guards("signed_note", "session_notes", SIGNED_NOTE_MESSAGE, when="OLD.status = 'signed'"),
    *_sqlite_guards("addendum", "addenda", ADDENDUM_MESSAGE),
]

_POSTGRES = [
    _pg_signed_note_function("OLD.status = 'signed'"),
    *_pg_guard("trg_signed_note_guard", "session_notes", "kap_refuse_signed_note"),
    _pg_refusal("kap_refuse_addendum_change", ADDENDUM_MESSAGE),
    *_pg_guard("trg_addendum_guard", "addenda", "kap_refuse_addendum_change"),
]


# columns at migration 0112 (a seal may change only signature_mac / signature_key_id)
_NOTE_COLUMNS = ("id", "patient_id", "author_id", "note_type", "status", "session_date", "start_time", "end_time",
                 "modality", "fields", "free_text", "carried_over_from_id", "integrates_dose_id", "created_at",
                 "updated_at", "updated_by_id", "signed_at", "signed_by_id", "content_hash", "version")
_ADDENDUM_COLUMNS = ("id", "note_id", "author_id", "text", "created_at", "signed_at", "content_hash")


def _sqlite_seal(columns: tuple[str, ...]) -> str:
    same = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in columns)
    return f"(OLD.signature_mac IS NULL AND NEW.signature_mac IS NOT NULL AND {same})"


_SQLITE_0112 = [
    *_sqlite_guards("signed_note", "session_notes", SIGNED_NOTE_MESSAGE,
                    when=f"OLD.status = 'signed' AND NOT {_sqlite_seal(_NOTE_COLUMNS)}", events=("UPDATE",)),
    *_sqlite_guards("addendum", "addenda", ADDENDUM_MESSAGE, when=f"NOT {_sqlite_seal(_ADDENDUM_COLUMNS)}",
                    events=("UPDATE",)),
    *_sqlite_guards("audit", "audit_events", AUDIT_MESSAGE),
]

_PG_SEAL = """(TG_OP = 'UPDATE' AND OLD.signature_mac IS NULL AND NEW.signature_mac IS NOT NULL
               AND (to_jsonb(OLD) - 'signature_mac' - 'signature_key_id')
                   = (to_jsonb(NEW) - 'signature_mac' - 'signature_key_id'))"""

_POSTGRES_0112 = [
    _pg_signed_note_function(f"OLD.status = 'signed' AND NOT {_PG_SEAL}"),
    _pg_function("kap_refuse_addendum_change", f"""BEGIN
          IF {_PG_SEAL} THEN RETURN NEW; END IF;
          RAISE EXCEPTION '{ADDENDUM_MESSAGE}';
        END"""),
    _pg_refusal("kap_refuse_audit_change", AUDIT_MESSAGE),
    *_pg_guard("trg_audit_guard", "audit_events", "kap_refuse_audit_change"),
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
