"""The dose log's fields in their canonical order (DESIGN.md §2) and how each reads.

One home for the column list that the form, the CSV import, the CSV export and the tests
share; it holds no logic, so every one of them can import it without importing the others.
"""

from __future__ import annotations

# The canonical dose-log fields, in the order of DESIGN.md §2 (also the CSV columns).
CSV_COLUMNS: tuple[str, ...] = (
    "taken_at",
    "dose_mg",
    "formulation",
    "administration",
    "context",
    "anxiety_before",
    "anxiety_after",
    "dissociation",
    "nausea",
    "vomited",
    "bp_systolic_pre",
    "bp_diastolic_pre",
    "bp_systolic_post",
    "bp_diastolic_post",
    "heart_rate",
    "adverse_events",
    "notes",
)
INT_COLUMNS = (
    "anxiety_before", "anxiety_after", "dissociation", "nausea",
    "bp_systolic_pre", "bp_diastolic_pre", "bp_systolic_post", "bp_diastolic_post", "heart_rate",
)
# Free-text columns: a spreadsheet could run one as a formula (see ``kapnotes.cells``).
TEXT_COLUMNS = ("formulation", "administration", "context", "adverse_events", "notes")

LABELS = {
    "taken_at": "Taken at",
    "dose_mg": "Dose (mg)",
    "formulation": "Formulation",
    "administration": "Administration",
    "context": "Context",
    "anxiety_before": "Anxiety before (0–10)",
    "anxiety_after": "Anxiety after (0–10)",
    "dissociation": "Dissociation (0–10)",
    "nausea": "Nausea (0–3)",
    "vomited": "Vomited",
    "bp_systolic_pre": "BP systolic before (mmHg)",
    "bp_diastolic_pre": "BP diastolic before (mmHg)",
    "bp_systolic_post": "BP systolic after (mmHg)",
    "bp_diastolic_post": "BP diastolic after (mmHg)",
    "heart_rate": "Heart rate (bpm)",
    "adverse_events": "Adverse events",
    "notes": "Notes",
}
