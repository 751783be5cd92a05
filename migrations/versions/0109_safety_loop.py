"""the clinical safety loop: urgent items, checks, staleness, overrides, the hard maximum

Revision ID: 0109
Revises: 0108
Create Date: 2026-11-29

- ``dose_adjustments``: ``checks`` (every rule with fired/passed/not_evaluable), ``urgent``
  (hold/decrease/review reach the prescriber at once), ``facts_key`` (the record's state when
  the item was made: a different key now means the item is stale), ``override_rules`` and
  ``override_rationale`` (a decision toward more drug while a safety rule fires, or off the
  protocol's steps, intervals or ceiling).
- ``users.email`` (where urgent-item notices go) and ``users.decisions_seen_at``: the therapist's "decisions since your last visit".
- The hard maximum of 500 mg as a database check on plans and adjustments. PostgreSQL gets
  CHECK constraints; SQLite cannot add one without recreating the table (which would drop
  the signed-note triggers), so it gets BEFORE INSERT/UPDATE triggers instead.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from kapnotes.models import UTCDateTime

revision: str = "0109"
down_revision: Union[str, None] = "0108"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

HARD_MAX = 500  # kapnotes.models.HARD_MAX_DOSE_MG at the time of this migration
MESSAGE = f"dose above the hard maximum of {HARD_MAX} mg"

_GUARDS = [  # (table, column, constraint name)
    ("treatment_plans", "dose_mg", "ck_plan_dose_hard_max"),
    ("dose_adjustments", "proposed_dose_mg", "ck_adjustment_proposed_hard_max"),
    ("dose_adjustments", "decided_dose_mg", "ck_adjustment_decided_hard_max"),
]


def upgrade() -> None:
    op.add_column("dose_adjustments", sa.Column("checks", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
    op.add_column("dose_adjustments", sa.Column("urgent", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("dose_adjustments", sa.Column("facts_key", sa.String(length=64), nullable=True))
    op.add_column("dose_adjustments", sa.Column("override_rules", sa.JSON(), nullable=False,
                                                server_default=sa.text("'[]'")))
    op.add_column("dose_adjustments", sa.Column("override_rationale", sa.Text(), nullable=True))
    op.add_column("users", sa.Column("email", sa.String(length=254), nullable=True))
    op.add_column("users", sa.Column("decisions_seen_at", UTCDateTime(), nullable=True))
    op.create_index("ix_adjustment_status_urgent", "dose_adjustments", ["status", "urgent"])
    if op.get_bind().dialect.name == "sqlite":
        for table, column, name in _GUARDS:
            for when in ("INSERT", "UPDATE"):
                op.execute(f"""CREATE TRIGGER trg_{name}_{when.lower()} BEFORE {when} ON {table}
                    WHEN NEW.{column} IS NOT NULL AND (NEW.{column} > {HARD_MAX}
                         {'OR NEW.' + column + ' <= 0' if table == 'treatment_plans' else ''})
                    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""")
    else:
        op.create_check_constraint("ck_plan_dose_hard_max", "treatment_plans",
                                   f"dose_mg > 0 AND dose_mg <= {HARD_MAX}")
        op.create_check_constraint("ck_adjustment_proposed_hard_max", "dose_adjustments",
                                   f"proposed_dose_mg IS NULL OR proposed_dose_mg <= {HARD_MAX}")
        op.create_check_constraint("ck_adjustment_decided_hard_max", "dose_adjustments",
                                   f"decided_dose_mg IS NULL OR decided_dose_mg <= {HARD_MAX}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for _, _, name in _GUARDS:
            for when in ("insert", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS trg_{name}_{when}")
    else:
        for table, _, name in _GUARDS:
            op.drop_constraint(name, table, type_="check")
    op.drop_index("ix_adjustment_status_urgent", table_name="dose_adjustments")
    op.drop_column("users", "decisions_seen_at")
    op.drop_column("users", "email")
    for column in ("override_rationale", "override_rules", "facts_key", "urgent", "checks"):
        op.drop_column("dose_adjustments", column)
