"""Showing what a service said: one place that turns a ``KapError`` into words on the page.

``attempt()`` wraps a service call (or a few lines that make one) so a page never writes its
own try/except: a refusal is shown where the call was made, in plain language, and nothing
else on the page runs as if it had succeeded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from kapnotes import vocab
from kapnotes.errors import KapError, ValidationError
from kapnotes.textsafe import md_escape


class Refused:
    """What ``attempt()`` yields: ``refused`` is set when the service said no."""

    def __init__(self) -> None:
        self.refused: KapError | None = None

    def __bool__(self) -> bool:  # truthy when the call went through
        return self.refused is None


@contextmanager
def attempt() -> Iterator[Refused]:
    """Run the block; a ``KapError`` from it is shown here (``show_error``) and swallowed.

    ``with attempt() as done: ...`` then ``if done: st.success(...)`` — the block's own
    reruns and stops pass through untouched (they are not ``KapError``).
    """
    outcome = Refused()
    try:
        yield outcome
    except KapError as exc:
        outcome.refused = exc
        show_error(exc)


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


def show_error(exc: KapError) -> None:
    """Plain-language error display; a ValidationError lists each field's message.

    Messages may quote what the user typed, so they are shown literally, not as markdown.
    """
    if isinstance(exc, ValidationError):
        for field, message in exc.errors.items():
            text = md_escape(message)
            st.error(text if field == "_" else f"**{md_escape(vocab.field_word(field))}**: {text}")
    else:
        st.error(md_escape(exc))


