"""The My account page's pieces: my password, my second factor (TOTP), where I am signed in.

Each piece reads its widgets and calls one ``auth``/``mfa`` service for the signed-in user
only; a refusal is shown where it happened (``feedback.attempt``).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from kapnotes import auth, mfa
from kapnotes.actor import Actor
from kapnotes.config import get_settings
from kapnotes.models import User
from kapnotes.timeutil import fmt_local
from kapnotes.ui.database import db
from kapnotes.ui.feedback import attempt, save_and_rerun
from kapnotes.ui.guard import sign_in_token

CODES_KEY = "account_recovery_codes"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def password_form(actor: Actor) -> None:
    st.subheader("Password")
    with st.form("change_password", clear_on_submit=True):
        current = st.text_input("Current password", type="password", autocomplete="current-password")
        new = st.text_input("New password", type="password", autocomplete="new-password",
                            help=f"At least {get_settings().min_password_length} characters; not a common password "
                                 "and not built from your name, username or the clinic's name. "
                                 "A few unrelated words work well.")
        repeat = st.text_input("New password again", type="password", autocomplete="new-password")
        if st.form_submit_button("Change password", type="primary"):
            with attempt():
                with db() as session:
                    ended = auth.change_own_password(session, actor, current, new, repeat,
                                                     keep_token=sign_in_token())
                also = f" {_plural(ended, 'other sign-in')} ended." if ended else ""
                st.success("Your password is changed." + also)


def second_factor(actor: Actor) -> None:
    """On (recovery codes, turning it off), being set up (QR code), or off (set it up)."""
    st.subheader("Second factor (authenticator app)")
    with db() as session:
        enabled = mfa.enabled(session.get(User, actor.id))
        pending = mfa.pending_secret(session, actor.id)
        left = mfa.recovery_codes_left(session, actor.id) if enabled else 0
    new_codes = st.session_state.pop(CODES_KEY, None)
    if new_codes:
        st.success("Your second factor is on.")
        st.warning("Keep these recovery codes somewhere safe, away from your phone. Each signs you in once if you "
                   "lose your phone. They are shown only now.")
        st.code("\n".join(new_codes), language=None)
    if enabled:
        _factor_on(actor, left)
    elif pending:
        _factor_pending(actor, pending)
    else:
        st.write("Off. With a second factor, a stolen password alone cannot sign in as you.")
        if st.button("Set up a second factor"):
            with db() as session:
                mfa.begin_enrolment(session, actor.id)
            st.rerun()


def _factor_on(actor: Actor, left: int) -> None:
    st.write(f"On. {_plural(left, 'recovery code')} left.")
    if mfa.required_for(actor.role):
        st.caption("Your clinic requires a second factor for your role.")
    c1, c2 = st.columns(2)
    with c1.form("new_recovery_codes", clear_on_submit=True):
        code = st.text_input("Code from your app", key="codes_code")
        if st.form_submit_button("New recovery codes"):
            save_and_rerun(lambda session: mfa.new_recovery_codes(session, actor, code), keep=CODES_KEY)
    if mfa.required_for(actor.role):
        return
    with c2.form("disable_mfa", clear_on_submit=True):
        code = st.text_input("Code from your app or a recovery code", key="disable_code")
        if st.form_submit_button("Turn off the second factor"):
            save_and_rerun(lambda session: mfa.disable(session, actor, code), "Second factor turned off")


def _factor_pending(actor: Actor, pending: str) -> None:
    st.write("Scan this code with an authenticator app (for example Google Authenticator, Microsoft "
             "Authenticator or FreeOTP), then enter the 6-digit code it shows.")
    st.image(mfa.qr_png(mfa.provisioning_uri(pending, actor.username)), width=240,
             caption="QR code for your authenticator app")
    st.caption("Cannot scan? Enter this key instead:")
    st.code(pending, language=None)
    with st.form("confirm_mfa", clear_on_submit=True):
        code = st.text_input("Code from the app", key="confirm_code")
        if st.form_submit_button("Turn on", type="primary"):
            save_and_rerun(lambda session: mfa.confirm_enrolment(session, actor.id, code), keep=CODES_KEY)


def signed_in_browsers(actor: Actor) -> None:
    """Where I am signed in (this browser marked), and signing out everywhere else."""
    tz = get_settings().tz
    st.subheader("Where I am signed in")
    token = sign_in_token()
    with db() as session:
        rows = auth.active_sessions(session, actor.id, token)
    if rows:
        st.dataframe(pd.DataFrame([
            {"This browser": "yes" if r.current else "", "Signed in": fmt_local(r.created_at, tz),
             "Last active": fmt_local(r.last_seen_at, tz), "Address": r.ip, "Browser": r.user_agent}
            for r in rows]), hide_index=True, width="stretch")
    else:
        st.caption("No other signed-in browsers.")
    if st.button("Sign out everywhere else", disabled=not any(not r.current for r in rows)):
        with db() as session:
            ended = auth.revoke_other_sessions(session, actor.id, token, "sign_out_elsewhere")
        st.toast(f"Signed out of {_plural(ended, 'other browser')}")
        st.rerun()
