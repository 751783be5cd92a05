"""Exports: the treatment-summary PDF for a date range, single-note PDFs, the dose log as
CSV, the FHIR R4 Bundle, and the records-request packet.

Files are built only when "Prepare" (or the packet form's button) is clicked; every export
is audited. Private process notes are never exported; unsigned drafts (your own) only in
the summary, and only when you ask.
"""

import streamlit as st

from kapnotes import exports
from kapnotes.config import get_settings
from kapnotes.packet import SECTION_LABELS, SECTIONS, PacketRequest
from kapnotes.pdf.note_pdf import note_type_label
from kapnotes.timeutil import to_local, utcnow
from kapnotes.ui.database import db
from kapnotes.ui.export_buttons import (
    build_packet,
    deliver,
    dose_csv_button,
    fhir_button,
    note_pdf_button,
    summary_pdf_button,
)
from kapnotes.ui.feedback import attempt
from kapnotes.ui.guard import require_user
from kapnotes.ui.patient import require_patient_banner

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
full_dose_log = st.checkbox("Full dose log (every dose on its own line)", key="export_full_dose_log",
                            help="By default home doses are summed by week; doses that need attention are always "
                                 "listed one by one.")
full_notes = st.checkbox("Full session notes (every signed note in full)", key="export_full_notes",
                         help="By default each signed note is one row of a table: date, type, author, signer, "
                              "intention, addenda and the signature check.")
if span is None:
    st.info("Nothing recorded for this patient yet — the summary will only have the header.")
if date_from > date_to:
    st.error("**From**: the start date is after the end date.")
else:
    summary_pdf_button(actor, pid, date_from, date_to, include_drafts, key="exports_summary",
                       full_dose_log=full_dose_log, full_notes=full_notes)

st.subheader("Single note")
notes = []
with attempt():
    with db() as session:
        notes = exports.exportable_notes(session, actor, pid, include_drafts=include_drafts)
if not notes:
    st.info("No signed notes yet. Notes appear here once they are signed.")
else:
    labels = {nid: f"{d.isoformat()} · {note_type_label(t)}" + (" · DRAFT" if s != "signed" else "")
              for nid, t, d, s in notes}
    chosen = st.selectbox("Note", options=list(labels), format_func=labels.get, key="export_note_id")
    if chosen is not None:
        note_pdf_button(actor, chosen, key="exports_note")

st.subheader("Dose log (CSV)")
st.caption("Every dose not voided, in the import's columns: the file imports back unchanged. Cells a spreadsheet "
           "would run as a formula start with an apostrophe.")
dose_csv_button(actor, pid, key="exports_dose_csv")

st.subheader("FHIR R4 export")
st.caption("The whole record as one FHIR R4 Bundle (JSON) for another system: patient, care team, scores, vitals, "
           "doses, plan versions, open proposals and signed notes (as PDFs). Private process notes are never included.")
fhir_button(actor, pid, key="exports_fhir")

st.subheader("Records-request packet")
st.caption("A PDF to send to another clinic or a referring clinician: cover letter, your attestation, a notice "
           "prohibiting redisclosure, a one-page course of treatment, then the sections you choose.")
with st.form("packet_form"):
    recipient = st.text_area("Recipient (name and address)", key="packet_recipient", max_chars=300)
    purpose = st.text_input("Purpose of the disclosure", key="packet_purpose", max_chars=500,
                            placeholder="e.g. Continuity of care; at the patient's request")
    p1, p2 = st.columns(2)
    packet_from = p1.date_input("Records from", value=first, max_value=today, key="packet_from", format="YYYY-MM-DD")
    packet_to = p2.date_input("Records to", value=max(last, first), key="packet_to", format="YYYY-MM-DD")
    chosen_sections = [k for k in SECTIONS if st.checkbox(SECTION_LABELS[k], value=True, key=f"packet_{k}")]
    submitted = st.form_submit_button("Prepare records packet (PDF)", icon=":material/picture_as_pdf:")
if submitted:
    request = PacketRequest(recipient, purpose, packet_from, packet_to, tuple(chosen_sections))
    deliver("exports_packet", lambda: build_packet(actor, pid, request), working="Building the packet…")
