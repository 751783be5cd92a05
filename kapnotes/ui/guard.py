"""The sign-in guard: who is signed in, and the check every page starts with.

Every page starts with ``actor = require_user(...)``. Who is signed in comes from the
server-side sign-in row found by the HttpOnly cookie (``st.context.cookies``), checked on
every run; nothing else the browser sends is believed. With no signed-in user the guard
shows the signed-out view and stops the page, whatever URL was opened. Streamlit's
``st.session_state`` holds ids only (``user_id``, ``patient_id``), never ORM objects.

Three things are called "session" nearby; this module means the *sign-in* (``auth``'s
row and its cookie). The database unit of work is ``kapnotes.ui.database.db()``.
"""

from __future__ import annotations

import os
from urllib.parse import quote, urlsplit

import streamlit as st

from kapnotes import auth
from kapnotes.actor import Actor
from kapnotes.config import get_settings
from kapnotes.textsafe import md_escape
from kapnotes.timeutil import utcnow
from kapnotes.ui.database import db

USER_KEY = "user_id"
LAST_ACTIVITY_KEY = "last_activity"
NOTICE_KEY = "signin_notice"


TEST_SIGN_IN_FLAG = "KAPNOTES_APPTEST_SIGN_IN"


def _apptest_mode() -> bool:
    """AppTest has no HTTP layer and so no cookies: with this flag (set only by tests/conftest.py)
    and no real browser connection (no Host header), the guard takes the user id from
    ``st.session_state`` and signs in through a widget form, as before server-side sign-ins.
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


def sign_in_token() -> str | None:
    """The only thing the browser sends that the guard believes: the HttpOnly cookie's id
    (None without one, or with no HTTP request at all, as in AppTest)."""
    try:
        token = st.context.cookies.get(auth.SESSION_COOKIE)
    except Exception:  # no request context
        return None
    return token if isinstance(token, str) else None  # (AppTest's context is a mock object)


def current_actor() -> Actor | None:
    """Who is signed in, decided by the server-side sign-in row on every run (one indexed query).

    ``st.session_state`` only caches the user id so a change of user clears the old state."""
    if _apptest_mode():
        return _apptest_actor()
    token = sign_in_token()
    with db() as session:
        check = auth.check_session(session, token)
    if not check.ok:
        if token or st.session_state.get(USER_KEY) is not None:
            notice = st.session_state.get(NOTICE_KEY) or _notice_for(check.status)
            _forget_signed_in_state()
            st.session_state[NOTICE_KEY] = notice
        return None
    if st.session_state.get(USER_KEY) != check.actor.id:
        _forget_signed_in_state()
        st.session_state[USER_KEY] = check.actor.id
    return check.actor


def _apptest_actor() -> Actor | None:
    user_id = st.session_state.get(USER_KEY)
    if user_id is None:
        return None
    with db() as session:
        actor = auth.load_actor(session, user_id)
        if actor is None:
            _forget_signed_in_state()
            return None
        if auth.is_idle(st.session_state.get(LAST_ACTIVITY_KEY)):
            auth.sign_out(session, actor, reason="idle")
            _forget_signed_in_state()
            st.session_state[NOTICE_KEY] = _notice_for("idle")
            return None
    st.session_state[LAST_ACTIVITY_KEY] = utcnow()
    return actor


def _forget_signed_in_state() -> None:
    """A new or ended sign-in starts from empty Streamlit state: nothing of the last user stays."""
    for key in list(st.session_state.keys()):
        del st.session_state[key]


def _current_path() -> str:
    try:
        url = st.context.url or ""
    except Exception:
        url = ""
    path = urlsplit(url).path or "/"
    return path if path.startswith("/") and not path.startswith("//") else "/"


def sign_in_form() -> None:
    """The signed-out view inside Streamlit. Signing in happens on the server's own HTML form
    (``/auth/sign-in``, which sets the HttpOnly cookie); a signed-out page load is sent there
    by kapnotes.asgi, so this shows when a sign-in ends while a tab is open."""
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
            _forget_signed_in_state()
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
    signed_in_sidebar(actor)
    if roles and actor.role not in roles:
        st.error("This page is not available for your role.")
        st.stop()
    return actor


def _idle_check() -> None:
    """Runs on a timer in the open tab: once the server says the sign-in is over
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
        check = auth.check_session(session, sign_in_token(), touch=False)
    if not check.ok:
        st.session_state[NOTICE_KEY] = _notice_for(check.status)
        st.rerun()


def idle_check_seconds() -> int:
    """How often the open page checks for idleness: a sixth of the timeout, 10 s to 60 s."""
    return max(10, min(60, get_settings().idle_timeout_minutes * 10))


def signed_in_sidebar(actor: Actor) -> None:
    """Who is signed in, the sign-out button, and the timer that notices an ended sign-in."""
    with st.sidebar:
        st.caption(f"Signed in as **{md_escape(actor.display_name)}** ({actor.role})")
        if st.button("Sign out", key="sign_out"):
            with db() as session:
                if _apptest_mode():
                    auth.sign_out(session, actor)
                else:
                    auth.end_session(session, sign_in_token())  # the row is revoked: the cookie is dead
            _forget_signed_in_state()
            st.session_state[NOTICE_KEY] = "You have signed out."
            st.rerun()
        st.fragment(_idle_check, run_every=idle_check_seconds())()
