"""index the audit log by username

Revision ID: 0108
Revises: 0107
Create Date: 2026-11-24

The audit log page filters by username, and failed sign-ins carry only the typed username
(no user id), so the filter is on ``actor_username``. Without an index the newest 500
events of a rare user meant reading the whole log backwards.
"""
from typing import Sequence, Union

from alembic import op

revision: str = "0108"
down_revision: Union[str, None] = "0107"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index("ix_audit_actor_username", "audit_events", ["actor_username"])


def downgrade() -> None:
    op.drop_index("ix_audit_actor_username", table_name="audit_events")
