"""patient check-in links and their submissions

Revision ID: 0111
Revises: 0110
Create Date: 2026-11-29

- ``checkin_links``: one row per link a clinician gives a patient; only the SHA-256 of the
  token is stored, with the patient, who made it, when it expires, revocation and last use.
- ``checkin_submissions``: one row per submitted check-in; the unique ``nonce`` (one per
  form render) makes a double tap or a resubmit store nothing twice.
- ``dose_entries.source`` gains the value ``patient`` (a plain string column: no DDL).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from kapnotes.models import UTCDateTime

revision: str = "0111"
down_revision: Union[str, None] = "0110"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "checkin_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("ask_scales", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_by_id", sa.Integer(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("use_count", sa.Integer(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["revoked_by_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_checkin_links_patient_id", "checkin_links", ["patient_id"])
    op.create_table(
        "checkin_submissions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("dose_entry_id", sa.Integer(), nullable=True),
        sa.Column("assessment_ids", sa.JSON(), nullable=False),
        sa.Column("crisis", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["link_id"], ["checkin_links.id"]),
        sa.ForeignKeyConstraint(["dose_entry_id"], ["dose_entries.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("nonce"),
    )
    op.create_index("ix_checkin_submissions_link_id", "checkin_submissions", ["link_id"])


def downgrade() -> None:
    op.drop_index("ix_checkin_submissions_link_id", table_name="checkin_submissions")
    op.drop_table("checkin_submissions")
    op.drop_index("ix_checkin_links_patient_id", table_name="checkin_links")
    op.drop_table("checkin_links")
