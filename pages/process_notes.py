"""Private process notes (psychotherapy notes): visible to you alone, never exported."""

import streamlit as st

from kapnotes import process_notes
from kapnotes.config import get_settings
from kapnotes.timeutil import fmt_local
from kapnotes.ui.database import db
from kapnotes.ui.feedback import attempt
from kapnotes.ui.guard import require_user
from kapnotes.ui.patient import require_patient_banner

actor = require_user("therapist")
tz = get_settings().tz

with db() as session:
    pid = require_patient_banner(session, actor, "process_notes")

st.title("Private process notes")
st.info("Only you can read these notes — not the prescriber, not other team members, not administrators. "
        "They are kept apart from the record and never included in an export. The audit log records only "
        "that a note was read or written.", icon=":material/lock:")

with st.form("new_process_note", clear_on_submit=True):
    text = st.text_area("New process note", height=150, key="pn_new_text")
    submitted = st.form_submit_button("Save process note", type="primary")
if submitted:
    with attempt() as done, db() as s:
        process_notes.add(s, actor, pid, text)
    if done:
        st.toast("Process note saved.")

with db() as session:
    rows = process_notes.list_mine(session, actor, pid)
    items = [(r.id, r.version, r.text, r.created_at, r.updated_at) for r in rows]

if not items:
    st.caption("No process notes for this patient yet.")
for nid, version, body, created, updated in items:
    edited = f" · edited {fmt_local(updated, tz)}" if updated and created and updated > created else ""
    with st.expander(f"{fmt_local(created, tz)}{edited}", expanded=False):
        new_text = st.text_area("Text", value=body, key=f"pn_text_{nid}_{version}", height=150)
        if st.button("Save changes", key=f"pn_save_{nid}_{version}"):
            with attempt() as done, db() as s:
                process_notes.update(s, actor, nid, version, new_text)
            if done:
                st.toast("Process note updated.")
                st.rerun()
