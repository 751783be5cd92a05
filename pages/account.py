"""My account: change my password, my second factor (TOTP), my signed-in browsers.
The pieces are in ``kapnotes/ui/account_view.py``."""

import streamlit as st

from kapnotes.textsafe import md_escape
from kapnotes.ui import account_view
from kapnotes.ui.guard import require_user

actor = require_user()
st.title("My account")
st.caption(f"{md_escape(actor.display_name)} · signed in as {md_escape(actor.username)} ({actor.role})")

account_view.password_form(actor)
account_view.second_factor(actor)
account_view.signed_in_browsers(actor)
