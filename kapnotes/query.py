"""Query pieces every service shares, so the rule is written once.

A voided dose or score stays in the record (nothing is deleted) but counts for nothing:
every list, chart, rule and export that means "what happened" filters with ``not_voided``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col


def not_voided(model: Any) -> ColumnElement[bool]:
    """``WHERE voided_at IS NULL`` for a model with a ``voided_at`` column (doses, scores)."""
    return col(model.voided_at).is_(None)


def voided(model: Any) -> ColumnElement[bool]:
    """The entries that were voided: kept for the record, shown as such."""
    return col(model.voided_at).is_not(None)
