"""The notes service's one clock: "today" and "still in the future" in clinic time.

Every note module asks this module for the time (``clock.utcnow()``), so a test can freeze the
service's clock in one place and a check for "in the future" always means the same thing.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from kapnotes.config import get_settings
from kapnotes.timeutil import utcnow

FUTURE_SLACK = timedelta(minutes=5)  # clock skew, as for the dose log

__all__ = ["FUTURE_SLACK", "in_future", "local_now", "local_today", "utcnow"]


def local_now() -> datetime:
    """Now, in clinic time."""
    return utcnow().astimezone(get_settings().tz)


def local_today() -> date:
    return local_now().date()


def in_future(day: date, hhmm: str) -> bool:
    """True when ``hhmm`` (clinic time) on ``day`` is more than a few minutes ahead of now."""
    moment = datetime.combine(day, time.fromisoformat(hhmm), get_settings().tz)
    return moment > utcnow() + FUTURE_SLACK
