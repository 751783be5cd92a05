"""Column types and field helpers the tables share (kept apart so models.py holds tables only).

``UTCDateTime`` is also what the migrations name (as ``kapnotes.models.UTCDateTime``, which
``kapnotes.models`` re-exports), so SQLite and PostgreSQL store the same naive UTC value.
"""

from __future__ import annotations

from datetime import timezone
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Text
from sqlalchemy.orm import declared_attr
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field

from kapnotes.timeutil import utcnow


class UTCDateTime(TypeDecorator):
    """Stores naive UTC, returns aware UTC, so SQLite and PostgreSQL agree."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


def utc_field(nullable: bool = True, index: bool = False, default_now: bool = False) -> Any:
    kwargs: dict[str, Any] = {}
    if default_now:
        kwargs["default_factory"] = utcnow
    else:
        kwargs["default"] = None
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable, index=index), **kwargs)


def json_field(default_factory=dict) -> Any:
    return Field(default_factory=default_factory, sa_column=Column(JSON, nullable=False))


def text_field(nullable: bool = True) -> Any:
    return Field(default=None if nullable else "", sa_column=Column(Text, nullable=nullable))


class Versioned:
    """Optimistic locking: ``version`` bumps on each UPDATE; a stale writer fails."""

    @declared_attr
    def __mapper_args__(cls):  # noqa: N805
        return {"version_id_col": cls.__table__.c.version}
