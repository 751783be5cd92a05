"""The Users page's pieces (administrators only): the account list, the create form, and what
can be changed on one chosen account — active, sign-in wait, password, second factor, name and
role, sign-ins, the e-mail address for urgent-item notices.

Each piece reads its widgets and calls one ``kapnotes.admin`` (or ``auth``/``mfa``) service;
a refusal is shown where it happened (``feedback.attempt``).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from kapnotes import admin, auth, mfa
from kapnotes.actor import Actor
from kapnotes.admin import UserRow
from kapnotes.config import get_settings
from kapnotes.textsafe import md_escape
from kapnotes.timeutil import fmt_local
from kapnotes.ui.database import db
from kapnotes.ui.feedback import save_and_rerun

ROLES = ["therapist", "prescriber", "admin"]
TEMPORARY_KEY = "admin_temporary_password"


def user_list(actor: Actor) -> list[UserRow]:
    """The search box and the table of matching accounts; returns them for the chooser."""
    tz = get_settings().tz
    search = st.text_input("Find an account", placeholder="Username or name")
    with db() as session:
        users = admin.list_users(session, actor, search, limit=admin.PAGE_SIZE)
        total = admin.count_users(session, actor, search)
    st.dataframe(
        pd.DataFrame([
            {"Username": u.username, "Name": u.full_name, "Credentials": u.credentials, "Role": u.role,
             "E-mail": u.email or "", "Active": u.is_active, "Waiting": u.locked, "Second factor": u.mfa,
             "Must change password": u.must_change_password, "Last sign-in": fmt_local(u.last_login_at, tz)}
            for u in users
        ]),
        hide_index=True,
        width="stretch",
    )
    if total > len(users):
        st.caption(f"Showing {len(users)} of {total} accounts; search to narrow the list.")
    return users


def create_form(actor: Actor) -> None:
    with st.expander("Create a user"), st.form("create_user", clear_on_submit=True):
        username = st.text_input("Username")
        full_name = st.text_input("Full name")
        credentials = st.text_input("Credentials", help="e.g. LMFT, PsyD, MD, NP")
        role = st.selectbox("Role", ROLES)
        email = st.text_input("E-mail (optional)", key="create_email",
                              help="Prescribers get a notice here when urgent items wait (never patient details).")
        password = st.text_input("Initial password", type="password",
                                 help=f"At least {get_settings().min_password_length} characters; not a common "
                                      "password and not built from the person's name or username.")
        if st.form_submit_button("Create user", type="primary"):
            def create(session) -> None:
                admin.validate_email(email)
                user = auth.create_user(session, actor, username, role, full_name, password, credentials)
                admin.set_email(session, actor, user.id, email)

            save_and_rerun(create, f"Created {username}")


def choose_account(users: list[UserRow]) -> UserRow | None:
    """The account chooser, and a temporary password set on the last run (shown this once)."""
    choice = st.selectbox("Account", users, format_func=lambda u: f"{u.username} ({u.role})", index=None,
                          placeholder="Choose an account")
    temporary = st.session_state.pop(TEMPORARY_KEY, None)
    if temporary:
        st.success(f"Temporary password for {md_escape(temporary[0])}. Give it to them in person or by phone; it "
                   "is shown only now, and they must choose a new password when they next sign in.")
        st.code(temporary[1], language=None)
    return choice


def change_account(actor: Actor, choice: UserRow) -> None:
    """Everything that can be changed on the chosen account, top to bottom."""
    account_buttons(actor, choice)
    edit_form(actor, choice)
    sign_ins(actor, choice)
    email_form(actor, choice)


def account_buttons(actor: Actor, choice: UserRow) -> None:
    c1, c2, c3, c4 = st.columns(4)
    if c1.button("Deactivate" if choice.is_active else "Reactivate"):
        save_and_rerun(lambda session: admin.set_active(session, actor, choice.id, not choice.is_active))
    if c2.button("Clear sign-in wait", disabled=not choice.locked,
                 help="After repeated failed sign-ins an account waits before the next try; this ends the wait."):
        save_and_rerun(lambda session: admin.unlock(session, actor, choice.id))
    if c3.button("Reset password", help="A one-time temporary password; every sign-in of theirs ends now."):
        save_and_rerun(lambda session: (choice.username, admin.reset_password(session, actor, choice.id)),
                       keep=TEMPORARY_KEY)  # shown on the next run, once
    if c4.button("Reset second factor", disabled=not choice.mfa,
                 help="For a lost phone and lost recovery codes: they set it up again."):
        save_and_rerun(lambda session: mfa.admin_reset(session, actor, choice.id), "Second factor reset")


def edit_form(actor: Actor, choice: UserRow) -> None:
    with st.form(f"edit_{choice.id}"):
        new_name = st.text_input("Full name", value=choice.full_name, key=f"edit_name_{choice.id}")
        new_credentials = st.text_input("Credentials", value=choice.credentials, key=f"edit_cred_{choice.id}")
        new_role = st.selectbox("Role", ROLES, index=ROLES.index(choice.role), key=f"edit_role_{choice.id}")
        if st.form_submit_button("Save changes"):
            save_and_rerun(lambda session: admin.update_user(session, actor, choice.id, new_name, new_credentials,
                                                             new_role), "Saved")


def sign_ins(actor: Actor, choice: UserRow) -> None:
    """The account's active sign-ins, and ending one or all of them."""
    tz = get_settings().tz
    st.markdown("**Active sessions**")
    with db() as session:
        rows = admin.user_sessions(session, actor, choice.id)
    if not rows:
        st.caption("Not signed in anywhere.")
        return
    st.dataframe(pd.DataFrame([
        {"Signed in": fmt_local(r.created_at, tz), "Last active": fmt_local(r.last_seen_at, tz),
         "Address": r.ip, "Browser": r.user_agent} for r in rows]), hide_index=True, width="stretch")
    which = st.selectbox("Session", rows, index=None, placeholder="Choose a session to end",
                         format_func=lambda r: f"signed in {fmt_local(r.created_at, tz)} from {r.ip or 'unknown'}",
                         key=f"session_{choice.id}")
    s1, s2 = st.columns(2)
    if s1.button("End this session", disabled=which is None):
        with db() as session:
            admin.revoke_user_sessions(session, actor, choice.id, which.id)
        st.rerun()
    if s2.button("End all their sessions"):
        with db() as session:
            admin.revoke_user_sessions(session, actor, choice.id)
        st.rerun()


def email_form(actor: Actor, choice: UserRow) -> None:
    with st.form(f"email_{choice.id}"):
        new_email = st.text_input("E-mail for urgent-item notices", value=choice.email or "",
                                  key=f"email_{choice.id}_in",
                                  help="Leave empty for none. Notices carry a count only, never patient details.")
        if st.form_submit_button("Save e-mail"):
            save_and_rerun(lambda session: admin.set_email(session, actor, choice.id, new_email),
                           "E-mail saved" if new_email.strip() else "E-mail removed")
