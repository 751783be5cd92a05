"""Import doses: upload a CSV or .xlsx, map its columns, preview row errors, import all or nothing, undo.

The preview says what the reader detected (encoding, separator, date order); slashed dates that
read both ways are asked for, never guessed. The steps live in ``kapnotes.ui.import_wizard``.
"""

import streamlit as st

from kapnotes import csv_import
from kapnotes.config import get_settings
from kapnotes.dose_columns import CSV_COLUMNS
from kapnotes.textsafe import md_escape
from kapnotes.ui import import_wizard as wizard
from kapnotes.ui.database import db
from kapnotes.ui.guard import require_user
from kapnotes.ui.patient import require_patient_banner

actor = require_user("therapist", "prescriber")
tz = get_settings().tz

with db() as session:
    pid = require_patient_banner(session, actor, "import_doses")
    saved_mapping = csv_import.get_mapping(session)

st.title("Import doses")
st.caption("Columns read directly: " + ", ".join(CSV_COLUMNS) + f". Times without a zone are taken as {tz.key}. "
           "CSV (UTF-8, Windows-1252 or Latin-1; commas, semicolons or tabs) or an Excel workbook (.xlsx); "
           "dates as 2026-03-25, 25/03/2026 or 3/25/2026; yes/no, true/false or 1/0 for 'vomited'.")
round_ = st.session_state.setdefault("imp_round", 0)
done = st.session_state.pop("imp_done", None)
if done:
    st.success(done, icon=":material/check:")

st.download_button("Download an empty template", data=(",".join(CSV_COLUMNS) + "\n").encode("utf-8"),
                   file_name="dose_log_template.csv", mime="text/csv", icon=":material/download:")
upload = st.file_uploader("Dose-log file (.csv or .xlsx)", type=["csv", "txt", "tsv", "xlsx"],
                          key=f"imp_file_{round_}", max_upload_size=csv_import.MAX_UPLOAD_BYTES // (1024 * 1024))
if upload is None:
    st.info("Choose a CSV or Excel file exported from a patient app or spreadsheet. Nothing is written until "
            "you press Import.")
else:
    raw = upload.getvalue()
    problem = csv_import.upload_problem(raw)
    if problem:  # before any widget is built for the file's columns
        st.error(md_escape(problem) + " Nothing was read.", icon=":material/block:")
        st.stop()
    mapping, remember = wizard.column_mapping(csv_import.read_headers(raw), saved_mapping, round_)
    parsed = wizard.read_with_date_order(raw, tz, mapping, round_)
    duplicates = wizard.counts(parsed, actor, pid, upload.name)
    wizard.unusual_warning(parsed, pid)
    wizard.problems_and_preview(parsed, tz)
    wizard.import_step(parsed, actor, pid, upload.name, mapping, remember, duplicates, round_)

wizard.earlier_imports(actor, pid, tz)
