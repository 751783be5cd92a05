"""Showing what a service said: one place that turns a ``KapError`` into words on the page.

``attempt()`` wraps a service call (or a few lines that make one) so a page never writes its
own try/except: a refusal is shown where the call was made (or in the container given as
``where``, e.g. the form's column), in plain language, and nothing else in the block runs as
if it had succeeded. Anything that is not a ``KapError`` (a bug, ``st.rerun()``, ``st.stop()``)
passes through untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st

from kapnotes import vocab
from kapnotes.errors import KapError, ValidationError
from kapnotes.textsafe import md_escape
from kapnotes.ui.database import db


class Refused:
    """What ``attempt()`` yields: ``refused`` is set when the service said no."""

    def __init__(self) -> None:
        self.refused: KapError | None = None

    def __bool__(self) -> bool:  # truthy when the call went through
        return self.refused is None


@contextmanager
def attempt(where: Any = None) -> Iterator[Refused]:
    """Run the block; a ``KapError`` from it is shown (``show_error``, in ``where`` if given)
    and swallowed.

    ``with attempt() as done: ...`` then ``if done: st.success(...)`` or ``if not done:
    st.stop()`` — the block's own reruns and stops pass through untouched (they are not
    ``KapError``). Put ``with db()`` inside the block, so the refused work is rolled back.
    """
    outcome = Refused()
    try:
        yield outcome
    except KapError as exc:
        outcome.refused = exc
        show_error(exc, where)


def save_and_rerun(call: Callable[..., object], toast: str | None = None, keep: str | None = None,
                   where: Any = None) -> None:
    """The usual end of a form or a button: ``call(session)`` in its own unit of work; refused,
    the reason is shown (``attempt``) and nothing is saved; done, a toast (when given) and a
    rerun, so the page shows the new state. ``keep``: a ``st.session_state`` key that holds the
    call's result for that next run (set only once the work is committed)."""
    with attempt(where):
        with db() as session:
            result = call(session)
        if keep:
            st.session_state[keep] = result
        if toast:
            st.toast(toast)
        st.rerun()


@contextmanager
def remember_outcome(key: str, success: str, heading: str | None = None) -> Iterator[None]:
    """For a button callback (it runs before the page and cannot draw on it): run the block and
    leave its outcome under ``key`` for ``show_outcome(key)`` on the run that follows —
    ``("ok", success)``, or ``("error", exc, heading)`` for a ``KapError``."""
    try:
        yield
    except KapError as exc:
        st.session_state[key] = ("error", exc, heading)
    else:
        st.session_state[key] = ("ok", success)


def show_outcome(key: str) -> None:
    """Show, once, what a button callback left under ``key``: ``("ok", message)`` confirmed
    quietly (a toast) and on the page; ``("error", exc[, heading])`` as plain-language errors."""
    outcome = st.session_state.pop(key, None)
    if outcome is None:
        return
    if outcome[0] == "ok":
        st.toast(outcome[1], icon=":material/check_circle:")
        st.success(outcome[1])
        return
    if len(outcome) > 2 and outcome[2]:
        st.error(md_escape(outcome[2]))
    show_error(outcome[1])


def show_error(exc: KapError, where: Any = None) -> None:
    """Plain-language error display (in ``where``, a container, or here); a ValidationError
    lists each field's message.

    Messages may quote what the user typed, so they are shown literally, not as markdown.
    """
    place = st if where is None else where
    if isinstance(exc, ValidationError):
        for field, message in exc.errors.items():
            text = md_escape(message)
            place.error(text if field == "_" else f"**{md_escape(vocab.field_word(field))}**: {text}")
    else:
        place.error(md_escape(exc))


