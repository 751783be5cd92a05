"""Patients: the signed-in clinician's own patients, searchable, with safety flags.

One row per patient with an "Open" button: one click to the dashboard.
"""

import streamlit as st

from kapnotes import patients, vocab
from kapnotes.ui.database import db
from kapnotes.ui.guard import require_user
from kapnotes.ui.patient import select_patient
from kapnotes.ui.row_table import table_rows

actor = require_user("therapist", "prescriber")

st.title("Patients")
search = st.text_input("Search by name or MRN", placeholder="e.g. Ellis or KAP-1001")
with db() as session:
    rows = patients.list_patients(session, actor, search)

if not rows:
    st.info("No patients match." if search else "No patients on your care teams yet. An administrator adds them.")
    st.stop()

st.caption(f"{len(rows)} patient{'s' if len(rows) != 1 else ''} on your care teams.")
for row, c in table_rows([3, 2, 2, 2, 3, 1], ["Name", "MRN", "Born", "Status", "Flags", ""], rows):
    c[0].text(row.full_name)
    c[1].text(row.mrn)
    c[2].text(row.date_of_birth.isoformat())
    c[3].text(row.status)
    if row.flags:
        c[4].markdown(":red[**⚠ " + ", ".join(vocab.rule_label(f) for f in row.flags) + "**]")
    if c[5].button("Open", key=f"open_{row.id}", help=f"Open the dashboard of {row.mrn}"):
        select_patient(row.id)
        st.switch_page("pages/dashboard.py")
