"""The database handle the pages use: one engine per URL per process, one unit of work per ``with``.

Kept apart from the sign-in guard (``kapnotes.ui.guard``) so "session" here means only the
SQLAlchemy ``Session``: the guard decides who is signed in, this module talks to the database.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine
from sqlmodel import Session

from kapnotes.config import get_settings
from kapnotes.db import make_engine, session_scope
from kapnotes.ui.busy import retry_when_busy

_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def engine() -> Engine:
    """One engine per database URL for the whole server process.

    A plain dict rather than ``st.cache_resource``: every page opens several units of
    work per rerun, and Streamlit's cache hashes its arguments on each call (≈ 0.2 ms).
    """
    url = get_settings().database_url
    found = _ENGINES.get(url)
    if found is None:
        with _ENGINES_LOCK:
            found = _ENGINES.get(url)
            if found is None:
                found = _ENGINES[url] = make_engine(url)
    return found


@contextmanager
def db() -> Iterator[Session]:
    """One unit of work: committed when the block ends normally, rolled back otherwise.

    That includes ``st.stop()``/``st.rerun()``/``st.switch_page()`` raised inside the block
    (Streamlit can raise them from any ``st`` call, e.g. a progress bar when the user
    clicks mid-import), so an interrupted service never commits half its work. Call
    ``st.rerun()`` after the ``with`` block, never inside it. A busy database shows
    "retrying…" and reruns the page (``kapnotes.ui.busy``), never the crash page.
    """
    with retry_when_busy(), session_scope(engine()) as session:
        yield session
