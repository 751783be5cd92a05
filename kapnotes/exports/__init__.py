"""PDF exports: who may export what, the data gathered for a document, and the audit event.

- A note PDF: any signed note of a patient on the actor's care team; a draft only for
  its author (drafts stay with the author), watermarked DRAFT.
- A treatment summary: a patient and a date range; signed notes in the range, plus the
  actor's own drafts only when asked. Private process notes are never read here.
- Every export is one audit event (``export.note_pdf`` / ``export.summary_pdf``) with ids
  and counts only.
- ``actor`` None is the operator's command line (``as_operator=True`` must be said
  explicitly), audited as "system".

Gathering and rendering are separate steps (``prepare_*`` then ``render_*``) so a caller
can close its database transaction before the (slower) PDF build.

The pieces (each imports only the ones above it, never this package root):

- ``access``: the one access rule (``patient_for_export``), the exportable notes and
  patients, ``file_stem``.
- ``rows``: database rows → the plain rows a PDF prints (``kapnotes.pdf.model``).
- ``safety_section``: the summary's safety section (flags, holds, overrides, urgent items).
- ``weeks``: the dose log by week and the doses that need a line of their own.
- ``note``: one note's PDF (``prepare_note``, ``render_note``, ``note_pdf``).
- ``summary``: the treatment summary (``gather_summary``, ``prepare_summary``,
  ``render_summary``, ``summary_pdf``, ``fingerprint``).
"""

from __future__ import annotations

from kapnotes.dosing import protocol_settings as protocol_mod  # noqa: F401 - tests swap the protocol in force here
from kapnotes.exports.access import (
    all_patient_ids,
    exportable_notes,
    file_stem,
    patient_export_weights,
    patient_for_export,
    patient_id_for_mrn,
)
from kapnotes.exports.note import note_pdf, prepare_note, render_note
from kapnotes.exports.rows import OPERATOR_NAME
from kapnotes.exports.safety_section import URGENT_ACTIONS, gather_safety
from kapnotes.exports.summary import (
    day_bounds,
    fingerprint,
    gather_summary,
    prepare_summary,
    record_span,
    record_summary_export,
    render_summary,
    resolve_range,
    summary_pdf,
)
from kapnotes.exports.weeks import attention_reasons, bp_alerts, dose_week_rows

_patient = patient_for_export  # the older private name, still imported by kapnotes.dose_csv

__all__ = [
    "OPERATOR_NAME", "URGENT_ACTIONS", "all_patient_ids", "attention_reasons", "bp_alerts",
    "day_bounds", "dose_week_rows", "exportable_notes", "file_stem", "fingerprint", "gather_safety",
    "gather_summary", "note_pdf", "patient_export_weights", "patient_for_export", "patient_id_for_mrn",
    "prepare_note", "prepare_summary", "record_span", "record_summary_export", "render_note", "render_summary",
    "resolve_range", "summary_pdf",
]
