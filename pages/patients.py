"""Patients: the signed-in clinician's own patients, searchable, with safety flags."""

import pandas as pd
import streamlit as st

from kapnotes import patients
from kapnotes.ui.patient import select_patient
from kapnotes.ui.session import db, require_user

actor = require_user("therapist", "prescriber")

st.title("Patients")
search = st.text_input("Search by name or MRN", placeholder="e.g. Ellis or KAP-1001")
with db() as session:
    rows = patients.list_patients(session, actor, search)

if not rows:
    st.info("No patients match." if search else "No patients on your care teams yet. An administrator adds them.")
    st.stop()

table = pd.DataFrame(
    [
        {
            "Flag": "⚠ " + ", ".join(r.flags) if r.flags else "",
            "Name": r.full_name,
            "MRN": r.mrn,
            "Born": r.date_of_birth.isoformat(),
            "Diagnosis": r.diagnosis,
            "Status": r.status,
        }
        for r in rows
    ]
)
event = st.dataframe(
    table, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row", key="patient_table"
)
st.caption("Select a row to open the patient's dashboard.")
selected = event.selection.rows if event and event.selection else []
if selected:
    select_patient(rows[selected[0]].id)
    st.switch_page("pages/dashboard.py")
