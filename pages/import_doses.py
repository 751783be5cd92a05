"""Import doses: upload a CSV or .xlsx, map its columns, preview row errors, import all or nothing, undo.

The preview says what the reader detected (encoding, separator, date order); slashed dates that
read both ways are asked for, never guessed. After an import the uploader starts afresh (its key
changes), so no stale "Import N doses" stays on the page.
"""

import pandas as pd
import streamlit as st

from kapnotes import csv_import, doses, vocab
from kapnotes.config import get_settings
from kapnotes.doses import CSV_COLUMNS
from kapnotes.errors import KapError
from kapnotes.textsafe import md_escape
from kapnotes.timeutil import fmt_local
from kapnotes.ui.database import db
from kapnotes.ui.feedback import show_error
from kapnotes.ui.guard import require_user
from kapnotes.ui.patient import require_patient_banner

actor = require_user("therapist", "prescriber")
tz = get_settings().tz
IGNORE = "(ignore)"

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
    mapping: dict[str, str] = {}
    remember = False
    headers = csv_import.read_headers(raw)
    norm = {h: csv_import.normalise_header(h) for h in headers}
    unknown = [h for h in headers if norm[h] not in CSV_COLUMNS]
    if unknown:
        with st.expander(f"Map columns ({len(unknown)} not recognised)", expanded=True):
            st.caption("Pick the field each column holds, or leave it ignored. Saved mappings apply clinic-wide.")
            options = [IGNORE, *CSV_COLUMNS]
            for i, h in enumerate(unknown):
                default = saved_mapping.get(norm[h], IGNORE)
                choice = st.selectbox(f"Column “{md_escape(h)}”", options, index=options.index(default)
                                      if default in options else 0, key=f"imp_map_{round_}_{i}")
                mapping[h] = "" if choice == IGNORE else choice
            remember = st.checkbox("Remember this mapping for the clinic", key=f"imp_remember_{round_}")
    order = st.session_state.get(f"imp_order_{round_}")
    parsed = csv_import.read_csv(raw, tz, mapping=mapping, date_order=order)
    if parsed.needs_date_order or order:
        probe = parsed if order is None else csv_import.read_csv(raw, tz, mapping=mapping)
        if probe.needs_date_order or order:
            st.radio("The dates in this file read both ways (e.g. 03/04/2026). How are they written?",
                     list(csv_import.DATE_ORDERS), index=None, format_func=lambda o: {
                         "dmy": "Day/month/year (03/04/2026 is 3 April)",
                         "mdy": "Month/day/year (03/04/2026 is March 4)"}[o],
                     key=f"imp_order_{round_}")
        if order is None:
            st.warning("Choose how the dates are written: nothing is read from the dates until you do.",
                       icon=":material/help:")
            st.stop()
    if parsed.detected():
        st.caption("Detected: " + md_escape(parsed.detected()))

    c = st.columns(4)
    c[0].metric("Rows in file", parsed.total_rows)
    c[1].metric("Valid", len(parsed.rows))
    c[2].metric("Invalid", len(parsed.invalid_rows))
    duplicates = None
    if parsed.rows and not parsed.file_error:
        try:
            with db() as session:
                dry = csv_import.import_doses(session, actor, pid, parsed, upload.name, skip_invalid=True,
                                              dry_run=True)
            duplicates = dry.duplicates
        except KapError as exc:
            show_error(exc)
    c[3].metric("Already in the log", "—" if duplicates is None else duplicates)
    if parsed.extra_columns:
        st.caption("Ignored columns: " + md_escape(", ".join(parsed.extra_columns)))
    if parsed.rows and not parsed.file_error:
        with db() as session:
            unusual = doses.unusual_rows(session, pid, parsed.rows)
        if unusual:  # recorded as the file says (the file is the record); the rules hold the plan
            n = len(unusual)
            st.warning(f"{n} row{'s have' if n != 1 else ' has'} a dose above the plan or the protocol's ceiling. "
                       "They will be recorded as the file says; the dose rules will then hold the plan for the "
                       "prescriber's review. Check the numbers before importing.", icon=":material/warning:")
            st.dataframe(pd.DataFrame(unusual[:200], columns=["Row", "Warning"]), hide_index=True, width="stretch")

    if parsed.errors:
        n = len(parsed.invalid_rows)
        if parsed.file_error:
            st.error("This file cannot be imported as it is. Nothing will be written.")
        else:
            st.error(f"{n} row{'s have' if n != 1 else ' has'} problems. Nothing will be imported unless you "
                     "choose to skip the invalid rows.")
        st.markdown("**Problems found (row = line in the file):**")
        st.code("\n".join(e.describe() for e in parsed.errors[:30])
                + (f"\n… and {len(parsed.errors) - 30} more" if len(parsed.errors) > 30 else ""), language=None)
        with st.expander("All problems as a table"):
            st.dataframe(parsed.errors_frame(), hide_index=True, width="stretch")
    if parsed.rows:
        with st.expander(f"Preview of the valid rows ({len(parsed.rows)})", expanded=not parsed.errors):
            preview = parsed.preview_frame(tz, limit=200)
            preview["taken_at"] = preview["taken_at"].dt.tz_localize(None)
            for name, word in (("formulation", vocab.formulation_word), ("administration", vocab.administration_word),
                               ("context", vocab.context_word), ("adverse_events", vocab.adverse_events_text)):
                preview[name] = preview[name].map(lambda v, w=word: w(v) if isinstance(v, str) and v else "")
            st.dataframe(preview.rename(columns=doses.LABELS), hide_index=True, width="stretch")

    skip = False
    if parsed.errors and not parsed.file_error:
        skip = st.checkbox("Skip the invalid rows and import the valid ones", key=f"imp_skip_{round_}")
    can_import = bool(parsed.rows) and not parsed.file_error and (not parsed.errors or skip)
    to_write = len(parsed.rows) - (duplicates or 0)
    can_import = can_import and to_write > 0
    if st.button(f"Import {to_write} dose{'s' if to_write != 1 else ''}", type="primary", disabled=not can_import,
                 key="imp_go"):
        bar = st.progress(0.0, text="Importing…")
        try:
            with db() as session:
                if remember and mapping:
                    csv_import.save_mapping(session, actor, mapping)
                result = csv_import.import_doses(
                    session, actor, pid, parsed, upload.name, skip_invalid=skip,
                    progress=lambda stage, done, total: bar.progress(done / max(total, 1),
                                                                     text=f"{stage} {done}/{total}"))
            bar.empty()
        except KapError as exc:
            bar.empty()
            show_error(exc)
        else:  # a fresh uploader: no stale counts or button for the file just imported
            st.session_state["imp_done"] = (
                f"Imported {result.imported} dose{'s' if result.imported != 1 else ''} from {md_escape(upload.name)}; "
                f"skipped {result.duplicates} already in the log; {result.invalid} invalid.")
            st.session_state["imp_round"] = round_ + 1
            st.rerun()

# --- earlier imports ---------------------------------------------------------------------------------------
st.subheader("Earlier imports")
with db() as session:
    batches = csv_import.list_batches(session, actor, pid)
if not batches:
    st.caption("No imports for this patient yet.")
else:
    st.dataframe(pd.DataFrame([{
        "When": fmt_local(b.created_at, tz), "File": b.filename, "Imported": b.rows_imported,
        "Duplicates": b.rows_duplicate, "Invalid": b.rows_invalid,
        "Undone": fmt_local(b.undone_at, tz) if b.undone_at else "",
    } for b in batches]), hide_index=True, width="stretch")
    undoable = {b.id: f"{fmt_local(b.created_at, tz)} · {b.filename} · {b.rows_imported} doses"
                for b in batches if b.undone_at is None}
    if undoable:
        with st.form("undo_batch"):
            chosen = st.selectbox("Undo an import (voids all its entries)", list(undoable),
                                  format_func=lambda i: undoable[i])
            reason = st.text_input("Reason", key="undo_reason")
            if st.form_submit_button("Undo import"):
                try:
                    with db() as session:
                        n = csv_import.undo_batch(session, actor, chosen, reason)
                    st.toast(f"Import undone: {n} entries voided", icon=":material/undo:")
                    st.rerun()
                except KapError as exc:
                    show_error(exc)
