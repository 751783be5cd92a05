"""Sign-in state, the page guard, and the database handle for the UI.

Every page starts with ``actor = require_user(...)``. Who is signed in comes from the
server-side session row found by the HttpOnly cookie (``st.context.cookies``), checked on
every run; nothing else the browser sends is believed. With no signed-in user the guard
shows the signed-out view and stops the page, whatever URL was opened. The session state
holds ids only (``user_id``, ``patient_id``), never ORM objects.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from kapnotes import auth
from kapnotes.actor import Actor
from kapnotes.config import get_settings
from kapnotes.db import session_scope
from kapnotes.textsafe import md_escape
from kapnotes.timeutil import utcnow

USER_KEY = "user_id"
LAST_ACTIVITY_KEY = "last_activity"
NOTICE_KEY = "signin_notice"


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
        from kapnotes.db import make_engine

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
    ``st.rerun()`` after the ``with`` block, never inside it.
    """
    from kapnotes.ui.busy import retry_when_busy  # a busy database: "retrying…", never the crash page

    with retry_when_busy(), session_scope(engine()) as session:
        yield session


TEST_SIGN_IN_FLAG = "KAPNOTES_APPTEST_SIGN_IN"


def _apptest_mode() -> bool:
    """AppTest has no HTTP layer and so no cookies: with this flag (set only by tests/conftest.py)
    and no real browser connection (no Host header), the guard takes the user id from
    ``st.session_state`` and signs in through a widget form, as before server-side sessions.
    A served process never honours it: a real connection has a Host header, kapnotes.asgi
    refuses to start with the flag set, and the browser tests' server is started without it."""
    if os.environ.get(TEST_SIGN_IN_FLAG) != "1":
        return False
    try:
        return not st.context.headers.get("host")
    except Exception:  # no context at all: not a served page either
        return True


def _notice_for(status: str) -> str:
    settings = get_settings()
    if status == "idle":
        minutes = settings.idle_timeout_minutes
        return f"You were signed out after {minutes} minute{'' if minutes == 1 else 's'} without activity."
    if status == "expired":
        hours = settings.session_hours
        return f"Your sign-in lasted its limit of {hours} hour{'' if hours == 1 else 's'}. Sign in again to continue."
    return "You have been signed out."


def _session_token() -> str | None:
    """The only thing the browser sends that the guard believes: the HttpOnly cookie's id."""
    return st.context.cookies.get(auth.SESSION_COOKIE)


def current_actor() -> Actor | None:
    """Who is signed in, decided by the server-side session row on every run (one indexed query).

    ``st.session_state`` only caches the user id so a change of user clears the old state."""
    if _apptest_mode():
        return _apptest_actor()
    token = _session_token()
    with db() as session:
        check = auth.check_session(session, token)
    if not check.ok:
        if token or st.session_state.get(USER_KEY) is not None:
            notice = st.session_state.get(NOTICE_KEY) or _notice_for(check.status)
            _clear()
            st.session_state[NOTICE_KEY] = notice
        return None
    if st.session_state.get(USER_KEY) != check.actor.id:
        _clear()
        st.session_state[USER_KEY] = check.actor.id
    return check.actor


def _apptest_actor() -> Actor | None:
    user_id = st.session_state.get(USER_KEY)
    if user_id is None:
        return None
    with db() as session:
        actor = auth.load_actor(session, user_id)
        if actor is None:
            _clear()
            return None
        if auth.is_idle(st.session_state.get(LAST_ACTIVITY_KEY)):
            auth.sign_out(session, actor, reason="idle")
            _clear()
            st.session_state[NOTICE_KEY] = _notice_for("idle")
            return None
    st.session_state[LAST_ACTIVITY_KEY] = utcnow()
    return actor


def _clear() -> None:
    for key in list(st.session_state.keys()):
        del st.session_state[key]


def _current_path() -> str:
    from urllib.parse import urlsplit

    try:
        url = st.context.url or ""
    except Exception:
        url = ""
    path = urlsplit(url).path or "/"
    return path if path.startswith("/") and not path.startswith("//") else "/"


def sign_in_form() -> None:
    """The signed-out view inside Streamlit. Signing in happens on the server's own HTML form
    (``/auth/sign-in``, which sets the HttpOnly cookie); a signed-out page load is sent there
    by kapnotes.asgi, so this shows when a session ends while a tab is open."""
    from urllib.parse import quote

    st.title("KAPNotes")
    st.caption("Clinical documentation for ketamine-assisted psychotherapy. Sign in to continue.")
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
        st.info(notice)
    if _apptest_mode():
        _apptest_sign_in_form()
        return
    target = "/auth/sign-in?next=" + quote(_current_path(), safe="/")
    st.html(f'<p><a href="{target}" target="_self" class="kap-sign-in">Sign in</a></p>')


def _apptest_sign_in_form() -> None:
    with st.form("sign_in", clear_on_submit=False):
        username = st.text_input("Username", autocomplete="username")
        password = st.text_input("Password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        with db() as session:
            result = auth.authenticate(session, username, password)
        if result.ok:
            _clear()
            st.session_state[USER_KEY] = result.actor.id
            st.session_state[LAST_ACTIVITY_KEY] = utcnow()
            st.rerun()
        else:
            st.error(result.message)


def require_user(*roles: str) -> Actor:
    """The page guard. Signed out: the sign-in form only. Wrong role: a refusal only."""
    actor = current_actor()
    if actor is None:
        sign_in_form()
        st.stop()
    sidebar_account(actor)
    if roles and actor.role not in roles:
        st.error("This page is not available for your role.")
        st.stop()
    return actor


def _idle_check() -> None:
    """Runs on a timer in the browser session: once the server says the session is over
    (idle, lifetime, signed out in another tab), rerun the app, which shows the signed-out view.

    Without it a tab left open would keep showing patient data until the next click.
    It does not count as activity (``touch=False``)."""
    if st.session_state.get(USER_KEY) is None:
        return
    if _apptest_mode():
        if auth.is_idle(st.session_state.get(LAST_ACTIVITY_KEY)):
            st.rerun()
        return
    with db() as session:
        check = auth.check_session(session, _session_token(), touch=False)
    if not check.ok:
        st.session_state[NOTICE_KEY] = _notice_for(check.status)
        st.rerun()


def idle_check_seconds() -> int:
    """How often the open page checks for idleness: a sixth of the timeout, 10 s to 60 s."""
    return max(10, min(60, get_settings().idle_timeout_minutes * 10))


def sidebar_account(actor: Actor) -> None:
    with st.sidebar:
        st.caption(f"Signed in as **{md_escape(actor.display_name)}** ({actor.role})")
        if st.button("Sign out", key="sign_out"):
            with db() as session:
                if _apptest_mode():
                    auth.sign_out(session, actor)
                else:
                    auth.end_session(session, _session_token())  # the row is revoked: the cookie is dead
            _clear()
            st.session_state[NOTICE_KEY] = "You have signed out."
            st.rerun()
        st.fragment(_idle_check, run_every=idle_check_seconds())()


def audit_open_once(session: Session, actor: Actor, patient_id: int, view: str) -> None:
    """Record opening a patient's record once per view per sign-in, not on every rerun."""
    from kapnotes import patients

    seen: set = st.session_state.setdefault("_audited_opens", set())
    if (patient_id, view) not in seen:
        patients.open_record(session, actor, patient_id, view)
        seen.add((patient_id, view))
