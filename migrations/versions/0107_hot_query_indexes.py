"""indexes for hot queries found by the query-plan test

Revision ID: 0107
Revises: 0001
Create Date: 2026-11-23

- ``ix_note_patient_status_date`` (session_notes: patient_id, status, session_date): a
  patient's signed notes (treatment summary, record span, timeline). Without it SQLite,
  which has no statistics, answers ``patient_id = ? AND status = 'signed'`` from the
  single-column status index and reads every signed note of the clinic.
- ``ix_assessment_session_note`` (assessments: session_note_id): the scores linked to a
  set of notes (note and summary PDFs) were a full scan of assessments.

Plain CREATE INDEX (no batch mode): recreating session_notes would drop its immutability
triggers on SQLite.
"""
from typing import Sequence, Union

from alembic import op

revision: str = "0107"
down_revision: Union[str, None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index("ix_note_patient_status_date", "session_notes", ["patient_id", "status", "session_date"])
    op.create_index("ix_assessment_session_note", "assessments", ["session_note_id"])


def downgrade() -> None:
    op.drop_index("ix_assessment_session_note", table_name="assessments")
    op.drop_index("ix_note_patient_status_date", table_name="session_notes")
