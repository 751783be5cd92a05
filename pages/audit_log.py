"""Administration: the audit log, filtered by user, patient MRN, action and dates, 50 events a page.

An administrator sees details without clinical values (``audit.shown_detail``); the auditor
role, made for investigations, reads them in full. The pieces are in ``kapnotes/ui/audit_view.py``.
"""

import streamlit as st

from kapnotes import audit
from kapnotes.config import get_settings
from kapnotes.ui import audit_view
from kapnotes.ui.database import db
from kapnotes.ui.feedback import attempt
from kapnotes.ui.guard import require_user

actor = require_user("admin", "auditor")
st.title("Audit log")

flt = audit_view.filters()
page_no = audit_view.page_number()
with attempt() as done:
    with db() as session:
        events = audit.list_events(session, actor, flt, get_settings().tz, limit=audit_view.PAGE + 1,
                                   offset=page_no * audit_view.PAGE)
        last_check = audit.last_verification(session, actor)
if not done:
    st.stop()

audit_view.chain_status(actor, last_check)
audit_view.event_page(actor, events, page_no)
