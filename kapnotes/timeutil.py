"""Time helpers: store UTC, show the clinic's zone."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime, tz: ZoneInfo | None = None) -> datetime:
    """A naive datetime is taken to be in ``tz`` (the clinic's zone), else UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz or timezone.utc)
    return value.astimezone(timezone.utc)


def to_local(value: datetime | None, tz: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    return as_utc(value).astimezone(tz)


def fmt_local(value: datetime | None, tz: ZoneInfo, with_time: bool = True) -> str:
    if value is None:
        return "—"
    local = to_local(value, tz)
    return local.strftime("%Y-%m-%d %H:%M %Z") if with_time else local.strftime("%Y-%m-%d")


def parse_date(text: str, field: str = "date") -> date:
    from kapnotes.errors import ValidationError

    try:
        return date.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise ValidationError({field: f"{text!r} is not a valid date; use YYYY-MM-DD."}) from None
