"""Exports: the treatment-summary PDF for a date range, and single-note PDFs.

PDFs are built only when "Prepare" is clicked; every export is audited. Private process
notes are never exported; unsigned drafts (your own) only when you ask.
"""

import streamlit as st

from kapnotes import exports
from kapnotes.config import get_settings
from kapnotes.errors import KapError
from kapnotes.pdf.note_pdf import note_type_label
from kapnotes.timeutil import to_local, utcnow
from kapnotes.ui.export_buttons import note_pdf_button, summary_pdf_button
from kapnotes.ui.patient import require_patient_banner
from kapnotes.ui.session import db, require_user, show_error

actor = require_user("therapist", "prescriber")
today = to_local(utcnow(), get_settings().tz).date()

with db() as session:
    pid = require_patient_banner(session, actor, "exports")
    span = exports.record_span(session, pid)

st.title("Exports")
st.caption("PDFs carry a confidentiality notice on every page. Private process notes are never exported.")

st.subheader("Treatment summary")
first, last = span if span else (today, today)
c1, c2 = st.columns(2)
date_from = c1.date_input("From", value=first, max_value=today, key="export_from", format="YYYY-MM-DD")
date_to = c2.date_input("To", value=max(last, first), key="export_to", format="YYYY-MM-DD")
include_drafts = st.checkbox("Include my unsigned drafts (marked DRAFT)", key="export_drafts",
                             help="Drafts are visible to their author only; other people's drafts are never included.")
if span is None:
    st.info("Nothing recorded for this patient yet — the summary will only have the header.")
if date_from > date_to:
    st.error("**From**: the start date is after the end date.")
else:
    summary_pdf_button(actor, pid, date_from, date_to, include_drafts, key="exports_summary")

st.subheader("Single note")
try:
    with db() as session:
        notes = exports.exportable_notes(session, actor, pid, include_drafts=include_drafts)
except KapError as exc:
    show_error(exc)
    notes = []
if not notes:
    st.info("No signed notes yet. Notes appear here once they are signed.")
else:
    labels = {nid: f"{d.isoformat()} · {note_type_label(t)}" + (" · DRAFT" if s != "signed" else "")
              for nid, t, d, s in notes}
    chosen = st.selectbox("Note", options=list(labels), format_func=labels.get, key="export_note_id")
    if chosen is not None:
        note_pdf_button(actor, chosen, key="exports_note")
