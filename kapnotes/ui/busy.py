"""A busy or unreachable database shows a calm "retrying" message and tries again, never the
crash page.

SQLite lets one writer at a time; a writer waits up to ``busy_timeout`` for the lock and
then fails with "database is locked" (PostgreSQL: a deadlock or lock timeout). A PostgreSQL
restart or a dropped network ends the connection. Either way the unit of work has been rolled
back, so the page is simply run again after a short pause; if it keeps failing for several
tries, the page says so plainly and stops. A save whose connection dropped may or may not have
been committed, so that message asks the user to look before saving again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from sqlalchemy.exc import DBAPIError

from kapnotes.db import is_busy, is_connection_lost

BUSY_MESSAGE = "The database is busy; retrying…"
GAVE_UP_MESSAGE = ("The database stayed busy (a large import or a backup may be running). "
                   "Nothing was lost; please try again in a minute.")
LOST_MESSAGE = "The connection to the database was lost; retrying…"
UNREACHABLE_MESSAGE = ("The database cannot be reached right now; please try again in a minute. If you had "
                       "just saved something, check that it is there before saving it again.")
MAX_TRIES = 4
_STATE_KEY = "_kap_db_busy"
_FRESH_AFTER = 60.0  # seconds without a busy error: the next one starts a new count


@contextmanager
def retry_when_busy() -> Iterator[None]:
    """Wrap a unit of work: a busy database becomes a pause and a rerun of the page."""
    try:
        yield
    except DBAPIError as exc:
        lost = is_connection_lost(exc)
        if not (lost or is_busy(exc)):
            raise
        now = time.monotonic()
        tries, since = st.session_state.get(_STATE_KEY, (0, now))
        if now - since > _FRESH_AFTER:
            tries = 0
        tries += 1
        if tries > MAX_TRIES:
            st.session_state.pop(_STATE_KEY, None)
            st.warning(UNREACHABLE_MESSAGE if lost else GAVE_UP_MESSAGE, icon=":material/hourglass_disabled:")
            st.stop()
        st.session_state[_STATE_KEY] = (tries, now)
        st.info(LOST_MESSAGE if lost else BUSY_MESSAGE, icon=":material/hourglass_top:")
        time.sleep(min(0.5 * tries, 2.0))  # let the writer finish before the page runs again
        st.rerun()
