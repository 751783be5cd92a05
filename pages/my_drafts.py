"""My drafts: every unsigned note I started, across my patients; one click reopens it."""

import streamlit as st

from kapnotes import notes
from kapnotes.config import get_settings
from kapnotes.notes.templates import TEMPLATES
from kapnotes.timeutil import fmt_local
from kapnotes.ui.database import db
from kapnotes.ui.guard import require_user
from kapnotes.ui.note_view import goto
from kapnotes.ui.patient import select_patient
from kapnotes.ui.row_table import table_rows

EDIT_KEY = "edit_note_id"

actor = require_user("therapist")
tz = get_settings().tz

st.title("My drafts")
st.caption("Drafts are saved on every change and visible to you only. Open one to finish and sign it.")
with db() as session:
    rows = notes.my_drafts(session, actor)

if not rows:
    st.info("No drafts. Start a note from a patient's Session notes page.")
    st.stop()

for r, c in table_rows([2, 3, 3, 2, 3, 1], ["MRN", "Patient", "Type", "Session date", "Last saved", ""], rows):
    c[0].text(r.mrn)
    c[1].text(r.patient_name)
    c[2].text(TEMPLATES[r.note_type].title + (" (carried over)" if r.carried_over else ""))
    c[3].text(r.session_date.isoformat())
    c[4].text(fmt_local(r.updated_at, tz))
    if c[5].button("Open", key=f"open_draft_{r.id}", help=f"Continue the draft for {r.mrn}"):
        select_patient(r.patient_id)
        st.session_state[EDIT_KEY] = r.id
        goto("pages/note_editor.py")
