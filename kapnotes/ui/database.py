"""The database handle the pages use: one engine per URL per process, one unit of work per ``with``.

Kept apart from the sign-in guard (``kapnotes.ui.guard``) so "session" here means only the
SQLAlchemy ``Session``: the guard decides who is signed in, this module talks to the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine
from sqlmodel import Session

from kapnotes.db import session_scope, shared_engine
from kapnotes.ui.busy import retry_when_busy


def engine() -> Engine:
    """The process's one engine (one pool) per database URL, shared with the server's routes
    (``kapnotes.db.shared_engine``): one pool per process, whoever asks."""
    return shared_engine()


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
