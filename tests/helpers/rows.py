"""Copy a seeded SQLite database into PostgreSQL row for row.

The demo seed is deterministic (tests/unit/test_seed.py), so a clinic seeded once on SQLite and
copied is the clinic seeding PostgreSQL through the engine would give, in a fraction of the time.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import SQLModel


def read_rows(source) -> dict[str, list[dict]]:
    """Every table's rows, as they are."""
    with source.connect() as conn:
        return {t.name: [dict(r) for r in conn.execute(t.select()).mappings()] for t in SQLModel.metadata.sorted_tables}


def write_rows(target, rows: dict[str, list[dict]]) -> None:
    """``rows`` into the emptied ``target`` (PostgreSQL), and its id sequences past them. Notes and doses
    point at each other: foreign keys (and triggers) wait while the rows go in (the test server's
    superuser may switch them off)."""
    with target.begin() as dst:
        dst.execute(text("SET LOCAL session_replication_role = replica"))
        for table in SQLModel.metadata.sorted_tables:
            table_rows = rows.get(table.name, [])
            for start in range(0, len(table_rows), 5000):
                dst.execute(table.insert(), table_rows[start:start + 5000])
            if table_rows and "id" in table.c and table.c.id.autoincrement in (True, "auto"):
                dst.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                 f"(SELECT max(id) FROM \"{table.name}\"))"))


def copy_rows(source, target) -> None:
    """Every table's rows from ``source`` into the emptied ``target`` (PostgreSQL)."""
    write_rows(target, read_rows(source))
