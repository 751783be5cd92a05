"""keyed signatures, append-only audit events, staged imports

Revision ID: 0112
Revises: 0111
Create Date: 2026-11-29

- ``session_notes`` / ``addenda``: ``signature_mac`` (HMAC-SHA-256 under the signing key,
  which lives outside the database) and ``signature_key_id`` (which key, for rotation).
  Signatures made before this migration have none until ``seal-legacy-signatures``.
- ``import_batches.status``: "staging" while a long import writes in short transactions
  (its doses invisible to readers), "complete" when published; existing batches are complete.
- Guards: audit events refuse UPDATE and DELETE; a signed note or addendum accepts only the
  sealing of a pre-MAC signature (see ``kapnotes.db_guards``).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from kapnotes import db_guards

revision: str = "0112"
down_revision: Union[str, None] = "0111"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    for table in ("session_notes", "addenda"):
        op.add_column(table, sa.Column("signature_mac", sa.String(length=64), nullable=True))
        op.add_column(table, sa.Column("signature_key_id", sa.String(length=32), nullable=True))
    op.add_column("import_batches", sa.Column("status", sa.String(length=16), nullable=False,
                                              server_default="complete"))
    db_guards.install_current(op)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS trg_audit_no_update")
        op.execute("DROP TRIGGER IF EXISTS trg_audit_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS trg_audit_guard ON audit_events")
    db_guards.install(op)  # the base guards, which name no new column
    op.drop_column("import_batches", "status")
    for table in ("session_notes", "addenda"):
        op.drop_column(table, "signature_key_id")
        op.drop_column(table, "signature_mac")
