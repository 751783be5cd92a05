"""Administration: the audit log, filtered by user, patient, action and dates."""

import pandas as pd
import streamlit as st

from kapnotes import audit
from kapnotes.config import get_settings
from kapnotes.errors import KapError
from kapnotes.timeutil import fmt_local
from kapnotes.ui.session import db, require_user, show_error

actor = require_user("admin")
tz = get_settings().tz
st.title("Audit log")

with db() as session:
    actions = audit.distinct_actions(session)
c1, c2, c3 = st.columns(3)
username = c1.text_input("User (username)")
patient = c2.number_input("Patient id", min_value=0, step=1, value=0, help="0 = any patient")
action = c3.selectbox("Action", ["(any)"] + actions)
d1, d2 = st.columns(2)
date_from = d1.date_input("From", value=None)
date_to = d2.date_input("To", value=None)

flt = audit.AuditFilter(
    username=username.strip().lower() or None,
    patient_id=int(patient) or None,
    action=None if action == "(any)" else action,
    date_from=date_from,
    date_to=date_to,
)
try:
    with db() as session:
        events = audit.list_events(session, actor, flt, tz)
        report = audit.verify_chain(session)
except KapError as exc:
    show_error(exc)
    st.stop()

if report.ok:
    st.success(f"Hash chain intact ({report.count} events).", icon=":material/verified:")
else:
    st.error(f"Hash chain BROKEN at event {report.first_bad_id}: {report.problem}.")

if not events:
    st.info("No events match these filters.")
else:
    st.dataframe(
        pd.DataFrame(
            [
                {"#": e.id, "When": fmt_local(e.at, tz), "User": e.actor_username, "Action": e.action,
                 "Record": f"{e.record_type} {e.record_id or ''}".strip(), "Patient id": e.patient_id,
                 "Detail": e.detail}
                for e in events
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    st.caption(f"Newest first; showing up to 500 events.")
