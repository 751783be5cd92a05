"""The Protocol page's actions: validate pasted text, make it the clinic's, or go back to the
default; a refusal is shown by ``attempt()`` under a heading that says what did not happen."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from kapnotes.actor import Actor
from kapnotes.dosing import protocol_settings
from kapnotes.textsafe import md_escape
from kapnotes.ui.database import db
from kapnotes.ui.feedback import Refused, attempt

NOTICE_KEY = "_protocol_notice"


@contextmanager
def refused_under(heading: str) -> Iterator[Refused]:
    """``attempt()``, with ``heading`` above a refusal (its place is kept before the call runs)."""
    slot = st.empty()
    with attempt() as done:
        yield done
    if not done:
        slot.error(heading)


def validate(text: str) -> None:
    with refused_under("This protocol cannot be used:"):
        p = protocol_settings.parse_text(text)
        st.success(f"Valid: {md_escape(p.name)} (sha256 {p.sha256})")


def save(actor: Actor, text: str | None) -> None:
    """Make ``text`` the clinic's protocol (None: back to the default), then rerun with a notice."""
    with refused_under("Nothing was changed:"):
        with db() as session:
            p = protocol_settings.set_clinic_protocol(session, actor, text)
        st.session_state[NOTICE_KEY] = f"Now in force: {md_escape(p.name)} (sha256 {p.sha256})"
        st.rerun()
