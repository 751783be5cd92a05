"""A busy database shows a calm "retrying" message and tries again, never the crash page.

SQLite lets one writer at a time; a writer waits up to ``busy_timeout`` for the lock and
then fails with "database is locked" (PostgreSQL: a deadlock or lock timeout). The unit of
work has been rolled back by then, so the page is simply run again after a short pause; if
the database stays busy for several tries, the page says so plainly and stops.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from sqlalchemy.exc import DBAPIError

from kapnotes.db import is_busy

BUSY_MESSAGE = "The database is busy; retrying…"
GAVE_UP_MESSAGE = ("The database stayed busy (a large import or a backup may be running). "
                   "Nothing was lost; please try again in a minute.")
MAX_TRIES = 4
_STATE_KEY = "_kap_db_busy"
_FRESH_AFTER = 60.0  # seconds without a busy error: the next one starts a new count
@contextmanager
def retry_when_busy() -> Iterator[None]:
    """Wrap a unit of work: a busy database becomes a pause and a rerun of the page."""
    try:
        yield
    except DBAPIError as exc:
        if not is_busy(exc):
            raise
        now = time.monotonic()
        tries, since = st.session_state.get(_STATE_KEY, (0, now))
        if now - since > _FRESH_AFTER:
            tries = 0
        tries += 1
        if tries > MAX_TRIES:
            st.session_state.pop(_STATE_KEY, None)
            st.warning(GAVE_UP_MESSAGE, icon=":material/hourglass_disabled:")
            st.stop()
        st.session_state[_STATE_KEY] = (tries, now)
        st.info(BUSY_MESSAGE, icon=":material/hourglass_top:")
        time.sleep(min(0.5 * tries, 2.0))  # let the writer finish before the page runs again
        st.rerun()
