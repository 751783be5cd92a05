"""PDF download buttons, generated on click (never on every rerun).

Pattern: a "Prepare PDF" button; the run in which it was clicked gathers the data (audited),
builds the PDF outside the database transaction and shows ``st.download_button`` with the
bytes. The download itself does not rerun the page (``on_click="ignore"``), and the bytes
are never kept in ``st.session_state`` (ids only) nor in any cache.
"""

from __future__ import annotations

from datetime import date

import streamlit as st
from streamlit.errors import StreamlitAPIException

from kapnotes import exports
from kapnotes.actor import Actor
from kapnotes.exports import file_stem
from kapnotes.ui.database import db
from kapnotes.ui.feedback import attempt

PDF_MIME = "application/pdf"
FHIR_MIME = "application/fhir+json"


def build_summary(actor: Actor, patient_id: int, date_from: date | None = None, date_to: date | None = None,
                  include_drafts: bool = False, full_dose_log: bool = False,
                  full_notes: bool = False) -> tuple[str, bytes]:
    """(file name, PDF bytes) of a treatment summary; the export is audited."""
    with db() as session:
        data = exports.prepare_summary(session, actor, patient_id, date_from, date_to, include_drafts=include_drafts,
                                       full_dose_log=full_dose_log, full_notes=full_notes)
    pdf = exports.render_summary(data)  # after the transaction: no database lock held while building
    name = f"{file_stem(data.patient.mrn)}_{data.date_from.isoformat()}_{data.date_to.isoformat()}.pdf"
    return name, pdf


def build_note(actor: Actor, note_id: int) -> tuple[str, bytes]:
    """(file name, PDF bytes) of one session note; the export is audited."""
    with db() as session:
        meta, patient, note = exports.prepare_note(session, actor, note_id)
    pdf = exports.render_note(meta, patient, note)
    draft = "-DRAFT" if note.status != "signed" else ""
    name = f"note-{file_stem(patient.mrn).removeprefix('summary-')}_{note.session_date.isoformat()}_{note.note_type}" \
           f"{draft}.pdf"
    return name, pdf


def build_fhir(actor: Actor, patient_id: int) -> tuple[str, bytes]:
    """(file name, JSON bytes) of the patient's FHIR R4 Bundle; the export is audited."""
    import json

    from kapnotes import fhir

    with db() as session:
        bundle = fhir.build_bundle(session, actor, patient_id)
        mrn = bundle["entry"][0]["resource"]["identifier"][0]["value"]
    return fhir.file_name(mrn), (json.dumps(bundle, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def build_dose_csv(actor: Actor, patient_id: int, date_from: date | None = None,
                   date_to: date | None = None) -> tuple[str, bytes]:
    """(file name, CSV bytes) of the dose log in the canonical columns; the export is audited.
    The dose log page can offer it with ``dose_csv_button``."""
    from kapnotes import dose_csv

    with db() as session:
        return dose_csv.dose_log_csv(session, actor, patient_id, date_from, date_to)


def build_packet(actor: Actor, patient_id: int, request) -> tuple[str, bytes]:
    """(file name, PDF bytes) of a records-request packet; the disclosure is audited."""
    from kapnotes import packet

    with db() as session:
        data = packet.prepare_packet(session, actor, patient_id, request)
    return packet.file_name(data), packet.render_packet(data)


def _offer(label: str, key: str, build, mime: str = PDF_MIME, icon: str = ":material/picture_as_pdf:",
           working: str = "Building the PDF…") -> None:
    if st.button(label, key=f"{key}_prepare", icon=icon):
        deliver(key, build, mime, working)


def deliver(key: str, build, mime: str = PDF_MIME, working: str = "Building the PDF…") -> None:
    """Build now (audited) and show the download button with the bytes."""
    with attempt() as done:
        with st.spinner(working):
            name, payload = build()
    if not done:
        return
    st.download_button(f"Download {name}", data=payload, file_name=name, mime=mime, key=f"{key}_download",
                       icon=":material/download:", type="primary", on_click="ignore")
    st.caption("Contains protected health information: store and share it accordingly.")


def fhir_button(actor: Actor, patient_id: int, key: str = "fhir") -> None:
    """The FHIR R4 Bundle (JSON) of the patient's whole record."""
    _offer("Prepare FHIR R4 export (JSON)", key, lambda: build_fhir(actor, patient_id), mime=FHIR_MIME,
           icon=":material/data_object:", working="Building the FHIR Bundle…")


def dose_csv_button(actor: Actor, patient_id: int, date_from: date | None = None, date_to: date | None = None,
                    key: str = "dose_csv") -> None:
    """The "Dose log (CSV)" download (canonical columns, re-importable)."""
    from kapnotes.dose_csv import CSV_MIME

    _offer("Prepare dose log (CSV)", key, lambda: build_dose_csv(actor, patient_id, date_from, date_to),
           mime=CSV_MIME, icon=":material/table:", working="Writing the CSV…")


def summary_pdf_button(actor: Actor, patient_id: int, date_from: date | None = None, date_to: date | None = None,
                       include_drafts: bool = False, key: str = "summary_pdf",
                       label: str = "Prepare treatment summary PDF", full_dose_log: bool = False,
                       full_notes: bool = False) -> None:
    """The treatment-summary button (whole record unless a range is given; home doses by week
    unless ``full_dose_log``; signed notes one row each unless ``full_notes``)."""
    _offer(label, key, lambda: build_summary(actor, patient_id, date_from, date_to, include_drafts, full_dose_log,
                                             full_notes))


def note_pdf_button(actor: Actor, note_id: int, key: str | None = None) -> None:
    """The PDF button of one note (a signed note, or the author's own draft, watermarked DRAFT)."""
    _offer("Prepare PDF of this note", key or f"note_pdf_{note_id}", lambda: build_note(actor, note_id))


def dashboard_section(actor: Actor, patient_id: int) -> None:
    """What the dashboard shows: the whole-record summary button and a pointer to the Exports page."""
    st.subheader("Export")
    summary_pdf_button(actor, patient_id, key="dashboard_summary_pdf")
    try:
        st.page_link("pages/exports.py", label="More export options (date range, drafts, single notes)",
                     icon=":material/ios_share:")
    except StreamlitAPIException:  # a page run on its own (AppTest) has no navigation to link into
        pass
