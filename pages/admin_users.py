"""Administration: user accounts (create, deactivate, unlock, the e-mail address for urgent-item notices)."""

import pandas as pd
import streamlit as st

from kapnotes import admin, auth
from kapnotes.config import get_settings
from kapnotes.errors import KapError
from kapnotes.timeutil import fmt_local
from kapnotes.ui.session import db, require_user, show_error

actor = require_user("admin")
tz = get_settings().tz
st.title("Users")

search = st.text_input("Find an account", placeholder="Username or name")
with db() as session:
    users = admin.list_users(session, actor, search, limit=admin.PAGE_SIZE)
    total = admin.count_users(session, actor, search)
st.dataframe(
    pd.DataFrame(
        [
            {"Username": u.username, "Name": u.full_name, "Credentials": u.credentials, "Role": u.role,
             "E-mail": u.email or "",
             "Active": u.is_active, "Locked": u.locked, "Last sign-in": fmt_local(u.last_login_at, tz)}
            for u in users
        ]
    ),
    hide_index=True,
    width="stretch",
)
if total > len(users):
    st.caption(f"Showing {len(users)} of {total} accounts; search to narrow the list.")

with st.expander("Create a user"):
    with st.form("create_user", clear_on_submit=True):
        username = st.text_input("Username")
        full_name = st.text_input("Full name")
        credentials = st.text_input("Credentials", help="e.g. LMFT, PsyD, MD, NP")
        role = st.selectbox("Role", ["therapist", "prescriber", "admin"])
        email = st.text_input("E-mail (optional)", key="create_email",
                              help="Prescribers get a notice here when urgent items wait (never patient details).")
        password = st.text_input("Initial password", type="password",
                                 help=f"At least {get_settings().min_password_length} characters.")
        if st.form_submit_button("Create user", type="primary"):
            try:
                with db() as session:
                    admin.validate_email(email)
                    user = auth.create_user(session, actor, username, role, full_name, password, credentials)
                    admin.set_email(session, actor, user.id, email)
                st.toast(f"Created {username}")
                st.rerun()
            except KapError as exc:
                show_error(exc)

st.subheader("Change an account")
choice = st.selectbox("Account", users, format_func=lambda u: f"{u.username} ({u.role})", index=None,
                      placeholder="Choose an account")
if choice is not None:
    c1, c2 = st.columns(2)
    try:
        if c1.button("Deactivate" if choice.is_active else "Reactivate"):
            with db() as session:
                admin.set_active(session, actor, choice.id, not choice.is_active)
            st.rerun()
        if c2.button("Unlock", disabled=not choice.locked):
            with db() as session:
                admin.unlock(session, actor, choice.id)
            st.rerun()
    except KapError as exc:
        show_error(exc)
    with st.form(f"email_{choice.id}"):
        new_email = st.text_input("E-mail for urgent-item notices", value=choice.email or "", key=f"email_{choice.id}_in",
                                  help="Leave empty for none. Notices carry a count only, never patient details.")
        if st.form_submit_button("Save e-mail"):
            try:
                with db() as session:
                    admin.set_email(session, actor, choice.id, new_email)
                st.toast("E-mail saved" if new_email.strip() else "E-mail removed")
                st.rerun()
            except KapError as exc:
                show_error(exc)
