"""shared sign-in state: half-done sign-ins, single sign-on flows and per-address limits in the database

Revision ID: 0114
Revises: 0113
Create Date: 2026-11-29

Several app processes behind one balancer (issue 19): the next request of a sign-in may reach
another process, so what one process knew in memory moves here. ``auth_flows`` holds a flow by
the SHA-256 of the browser's random id with its expiry; ``throttle_states`` the growing delays per
key; ``throttle_events`` one row per counted failure for sliding-window limits.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from kapnotes.models import UTCDateTime

revision: str = "0114"
down_revision: Union[str, None] = "0113"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "auth_flows",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key_hash"),
    )
    op.create_index("ix_auth_flows_expires_at", "auth_flows", ["expires_at"], unique=False)
    op.create_table(
        "throttle_states",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_at", UTCDateTime(), nullable=False),
        sa.Column("until_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key"),
    )
    op.create_index("ix_throttle_states_last_at", "throttle_states", ["last_at"], unique=False)
    op.create_table(
        "throttle_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_throttle_events_kind_key_at", "throttle_events", ["kind", "key", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_throttle_events_kind_key_at", table_name="throttle_events")
    op.drop_table("throttle_events")
    op.drop_index("ix_throttle_states_last_at", table_name="throttle_states")
    op.drop_table("throttle_states")
    op.drop_index("ix_auth_flows_expires_at", table_name="auth_flows")
    op.drop_table("auth_flows")
