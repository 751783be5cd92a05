"""Administration: user accounts (create, edit, reset a password, deactivate, clear a sign-in wait, sessions,
the e-mail address for urgent-item notices). The pieces are in ``kapnotes/ui/users_view.py``."""

import streamlit as st

from kapnotes.ui import users_view
from kapnotes.ui.guard import require_user

actor = require_user("admin")
st.title("Users")

users = users_view.user_list(actor)
users_view.create_form(actor)

st.subheader("Change an account")
choice = users_view.choose_account(users)
if choice is not None:
    users_view.change_account(actor, choice)
