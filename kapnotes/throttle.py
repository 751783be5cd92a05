"""Per-key failure counts that every app process shares (issue 19): the growing sign-in delays
per source address and unknown username, and sliding-window limits (failed sign-ins per address,
wrong check-in tokens per address).

They live in the database (``throttle_states``, ``throttle_events``), not in one process's
memory: behind a balancer a guesser's next request may reach another process, which must
know the count. Trackers work inside the caller's unit of work (``session``), so on SQLite
they never wait for a write lock their own request already holds.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert
from sqlmodel import Session, select

from kapnotes.config import get_settings, signin_delay_max_seconds
from kapnotes.db import session_scope, shared_engine
from kapnotes.models import ThrottleEvent, ThrottleState
from kapnotes.timeutil import utcnow

EVENT_PRUNE_AFTER = timedelta(days=1)  # events older than every window are deleted as new ones arrive


def delay_for(failures: int) -> int:
    """Seconds to wait after ``failures`` in a row: none below the threshold, then 1 s doubling."""
    threshold = get_settings().max_failed_logins
    if failures < threshold:
        return 0
    return min(2 ** min(failures - threshold, 30), signin_delay_max_seconds())


def _key(key: str) -> str:
    return (key or "")[:128]


class DelayTracker:
    """Failures in a row per key and the time until the next attempt is checked; a quiet
    ``window`` (or the longest wait, if longer) forgets a key."""

    def __init__(self, kind: str, window: timedelta = timedelta(minutes=15)):
        self.kind, self.window = kind, window

    def _row(self, session: Session, key: str) -> ThrottleState | None:
        return session.get(ThrottleState, (self.kind, _key(key)))

    def wait(self, session: Session, key: str, now: datetime | None = None) -> int:
        now = now or utcnow()
        row = self._row(session, key)
        if row is None or now - row.last_at > max(self.window, timedelta(seconds=signin_delay_max_seconds())):
            return 0
        return max(0, math.ceil((row.until_at - now).total_seconds()))

    def fail(self, session: Session, key: str, now: datetime | None = None, threshold_scale: int = 1) -> int:
        """Count a failure; returns the wait it starts (seconds)."""
        now = now or utcnow()
        row = self._locked_row(session, key, now)
        stale = now - row.last_at > max(self.window, timedelta(seconds=signin_delay_max_seconds()))
        row.failures = (0 if stale else row.failures) + 1
        delay = delay_for(max(0, row.failures - (threshold_scale - 1) * get_settings().max_failed_logins))
        row.last_at, row.until_at = now, now + timedelta(seconds=delay)
        session.add(row)
        session.flush()
        return delay

    def _locked_row(self, session: Session, key: str, now: datetime) -> ThrottleState:
        """The key's row, created if missing and locked (PostgreSQL) so two processes' failures both count."""
        values = {"kind": self.kind, "key": _key(key), "failures": 0, "last_at": now, "until_at": now}
        session.exec(_insert_ignore(session, ThrottleState, values))
        stmt = select(ThrottleState).where(ThrottleState.kind == self.kind, ThrottleState.key == _key(key))
        return session.exec(stmt.with_for_update().execution_options(populate_existing=True)).one()

    def reset(self, session: Session, key: str) -> None:
        session.exec(delete(ThrottleState).where(ThrottleState.kind == self.kind, ThrottleState.key == _key(key)))


class SlidingWindow:
    """How many failures per key in the last ``window``."""

    def __init__(self, kind: str, window: timedelta = timedelta(minutes=15)):
        self.kind, self.window = kind, window

    def count(self, session: Session, key: str, now: datetime | None = None) -> int:
        now = now or utcnow()
        stmt = select(func.count()).select_from(ThrottleEvent).where(
            ThrottleEvent.kind == self.kind, ThrottleEvent.key == _key(key), ThrottleEvent.at > now - self.window)
        return int(session.exec(stmt).one())

    def add(self, session: Session, key: str, now: datetime | None = None) -> int:
        now = now or utcnow()
        session.exec(delete(ThrottleEvent).where(ThrottleEvent.kind == self.kind, ThrottleEvent.key == _key(key),
                                                 ThrottleEvent.at < now - max(self.window, EVENT_PRUNE_AFTER)))
        session.add(ThrottleEvent(kind=self.kind, key=_key(key), at=now))
        session.flush()
        return self.count(session, key, now)


class RateLimiter:
    """At most ``limit`` failures per key within ``window`` seconds, for callers outside a unit of
    work (``blocked``/``fail`` open their own, on the server's shared engine)."""

    def __init__(self, kind: str, limit: int = 10, window: float = 600.0):
        self.limit = limit
        self.events = SlidingWindow(kind, timedelta(seconds=window))

    def blocked(self, key: str) -> bool:
        with session_scope(shared_engine(), write=False) as session:
            return self.events.count(session, key) >= self.limit

    def fail(self, key: str) -> None:
        with session_scope(shared_engine()) as session:
            self.events.add(session, key)


def _insert_ignore(session: Session, model, values: dict):
    """INSERT ... ON CONFLICT DO NOTHING in the session's dialect."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model).values(**values).on_conflict_do_nothing()
    return insert(model).values(**values).prefix_with("OR IGNORE")


def prune(session: Session, now: datetime | None = None) -> None:
    """Forget keys quiet for a day (called now and then; nothing depends on it for correctness)."""
    cutoff = (now or utcnow()) - EVENT_PRUNE_AFTER
    session.exec(delete(ThrottleState).where(ThrottleState.last_at < cutoff))
    session.exec(delete(ThrottleEvent).where(ThrottleEvent.at < cutoff))
