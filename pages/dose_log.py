"""Dose log: the patient's doses as a filterable table, adherence, add, edit and void.

The tabs live in ``kapnotes.ui.dose_log_view``; the form they share in ``kapnotes.ui.dose_form``.
"""

import streamlit as st

from kapnotes.config import get_settings
from kapnotes.dosing.plans import active_plan
from kapnotes.ui.database import db
from kapnotes.ui.dose_log_view import add_tab, edit_tab, log_tab
from kapnotes.ui.guard import require_user
from kapnotes.ui.patient import require_patient_banner

actor = require_user("therapist", "prescriber")
tz = get_settings().tz
TABS = ["Log", "Add a dose", "Edit or void"]

with db() as session:
    pid = require_patient_banner(session, actor, "dose_log")
    plan = active_plan(session, pid)

st.title("Dose log")
# stateful tabs: only the open tab's content runs (the forms are ~40 widgets), and the URL
# names the tab, so the dashboard can link straight to "Add a dose"
tab_log, tab_add, tab_edit = st.tabs(TABS, key="dose_tab", on_change="rerun", bind="query-params")

for tab, body in ((tab_log, lambda: log_tab(actor, pid, tz)), (tab_add, lambda: add_tab(actor, pid, tz, plan)),
                  (tab_edit, lambda: edit_tab(actor, pid, tz, plan))):
    if tab.open:
        with tab:
            body()
