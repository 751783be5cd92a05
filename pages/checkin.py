"""Patient check-in (no account): reachable only through a valid check-in link.

The guard is the link itself: without a live link the page shows one generic refusal. The
link arrives as ``?t=`` (AppTest, older links) or, after ``GET /checkin?t=``, as the HttpOnly
``kapnotes_checkin`` cookie, which survives a reload (kapnotes.checkin_routes).
"""

import streamlit as st

from kapnotes import checkin
from kapnotes.checkin_routes import CHECKIN_COOKIE
from kapnotes.ui.checkin_panel import LINK_KEY, patient_page
from kapnotes.ui.database import db

try:
    _cookie = st.context.cookies.get(CHECKIN_COOKIE)
except Exception:  # AppTest has no request
    _cookie = None
if isinstance(_cookie, str) and _cookie and "t" not in st.query_params and st.session_state.get(LINK_KEY) is None:
    with db() as _session:
        _link = checkin.resolve(_session, _cookie)  # None when revoked or expired: the page refuses
        st.session_state[LINK_KEY] = _link.id if _link is not None else None

patient_page()
