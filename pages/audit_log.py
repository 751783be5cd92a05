"""Administration: the audit log, filtered by user, patient, action and dates.

An administrator sees details without clinical values (``audit.shown_detail``); the auditor
role, made for investigations, reads them in full.
"""

import pandas as pd
import streamlit as st

from kapnotes import audit
from kapnotes.config import get_settings
from kapnotes.errors import KapError
from kapnotes.timeutil import fmt_local
from kapnotes.ui.session import db, require_user, show_error

actor = require_user("admin", "auditor")
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
        last_check = audit.last_verification(session, actor)
except KapError as exc:
    show_error(exc)
    st.stop()

# Walking the whole chain takes seconds in a large clinic: it runs when asked, and every
# check is itself an audit event, so the page shows the last result without re-walking.
chain_col, button_col = st.columns([4, 1], vertical_alignment="center")
if button_col.button("Verify chain now", icon=":material/verified:"):
    with st.spinner("Checking every event's hash and link…"), db() as session:
        report = audit.verify_and_record(session, actor)
    if report.ok:
        chain_col.success(f"Hash chain intact ({report.count} events).", icon=":material/verified:")
    else:
        chain_col.error(f"Hash chain BROKEN at event {report.first_bad_id}: {report.problem}.",
                        icon=":material/error:")
elif last_check is None:
    chain_col.warning("The hash chain has not been verified from this page yet. "
                      "Verify it now, or run `python -m kapnotes verify-audit`.")
elif last_check.ok:
    chain_col.info(f"Last verified {fmt_local(last_check.at, tz)} by {last_check.username}: "
                   f"{last_check.detail}.", icon=":material/verified:")
else:
    chain_col.error(f"Last check {fmt_local(last_check.at, tz)} by {last_check.username}: hash chain "
                    f"{last_check.detail}. Verify again after investigating.", icon=":material/error:")

if not events:
    st.info("No events match these filters.")
else:
    st.dataframe(
        pd.DataFrame(
            [
                {"#": e.id, "When": fmt_local(e.at, tz), "User": e.actor_username, "Action": e.action,
                 "Record": f"{e.record_type} {e.record_id or ''}".strip(), "Patient id": e.patient_id,
                 "Detail": audit.shown_detail(actor, e)}
                for e in events
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    st.caption("Newest first; showing up to 500 events."
               + ("" if actor.role == "auditor" else " Clinical details are shown as … (an auditor account reads "
                                                      "them in full)."))
