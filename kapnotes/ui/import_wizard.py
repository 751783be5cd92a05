"""The import page's steps: map the columns, settle the date order, count, show problems and a
preview, import, and undo an earlier import.

Each step reads the wizard's round (``imp_round``): after an import the round moves on, every
widget key changes, and the uploader starts afresh, so no stale "Import N doses" stays on the
page. The pure parts (``preview_words``, ``import_label``, ``done_message``, ``importable``)
are tested in ``tests/unit/test_import_wizard.py``.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st

from kapnotes import csv_import, doses, vocab
from kapnotes.actor import Actor
from kapnotes.csv_import import ImportResult, ParsedFile
from kapnotes.dose_columns import CSV_COLUMNS, LABELS
from kapnotes.textsafe import md_escape
from kapnotes.timeutil import fmt_local
from kapnotes.ui.database import db
from kapnotes.ui.feedback import attempt

IGNORE = "(ignore)"
DATE_ORDER_WORDS = {"dmy": "Day/month/year (03/04/2026 is 3 April)", "mdy": "Month/day/year (03/04/2026 is March 4)"}
_WORDS = (("formulation", vocab.formulation_word), ("administration", vocab.administration_word),
          ("context", vocab.context_word), ("adverse_events", vocab.adverse_events_text))


def preview_words(frame: pd.DataFrame) -> pd.DataFrame:
    """The preview of valid rows as a clinician reads it: local times without a zone, codes in words, labels."""
    frame = frame.copy()
    frame["taken_at"] = frame["taken_at"].dt.tz_localize(None)
    for name, word in _WORDS:
        frame[name] = frame[name].map(lambda v, w=word: w(v) if isinstance(v, str) and v else "")
    return frame.rename(columns=LABELS)


def importable(parsed: ParsedFile, skip: bool, duplicates: int | None) -> tuple[bool, int]:
    """(the Import button is enabled, how many doses it would write)."""
    to_write = len(parsed.rows) - (duplicates or 0)
    ok = bool(parsed.rows) and not parsed.file_error and (not parsed.errors or skip)
    return ok and to_write > 0, to_write


def import_label(to_write: int) -> str:
    return f"Import {to_write} dose{'s' if to_write != 1 else ''}"


def done_message(result: ImportResult, filename: str) -> str:
    return (f"Imported {result.imported} dose{'s' if result.imported != 1 else ''} from {md_escape(filename)}; "
            f"skipped {result.duplicates} already in the log; {result.invalid} invalid.")


def column_mapping(headers: list[str], saved: dict[str, str], round_: int) -> tuple[dict[str, str], bool]:
    """Dropdowns for the columns not recognised: ({header: field or ""}, remember it for the clinic)."""
    norm = {h: csv_import.normalise_header(h) for h in headers}
    unknown = [h for h in headers if norm[h] not in CSV_COLUMNS]
    mapping: dict[str, str] = {}
    if not unknown:
        return mapping, False
    with st.expander(f"Map columns ({len(unknown)} not recognised)", expanded=True):
        st.caption("Pick the field each column holds, or leave it ignored. Saved mappings apply clinic-wide.")
        options = [IGNORE, *CSV_COLUMNS]
        for i, h in enumerate(unknown):
            default = saved.get(norm[h], IGNORE)
            choice = st.selectbox(f"Column “{md_escape(h)}”", options, index=options.index(default)
                                  if default in options else 0, key=f"imp_map_{round_}_{i}")
            mapping[h] = "" if choice == IGNORE else choice
        remember = st.checkbox("Remember this mapping for the clinic", key=f"imp_remember_{round_}")
    return mapping, remember


def read_with_date_order(raw: bytes, tz: ZoneInfo, mapping: dict[str, str], round_: int) -> ParsedFile:
    """The file read; slashed dates that read both ways are asked for (the page stops until chosen)."""
    order = st.session_state.get(f"imp_order_{round_}")
    parsed = csv_import.read_csv(raw, tz, mapping=mapping, date_order=order)
    if parsed.needs_date_order or order:
        probe = parsed if order is None else csv_import.read_csv(raw, tz, mapping=mapping)
        if probe.needs_date_order or order:
            st.radio("The dates in this file read both ways (e.g. 03/04/2026). How are they written?",
                     list(csv_import.DATE_ORDERS), index=None, format_func=DATE_ORDER_WORDS.__getitem__,
                     key=f"imp_order_{round_}")
        if order is None:
            st.warning("Choose how the dates are written: nothing is read from the dates until you do.",
                       icon=":material/help:")
            st.stop()
    if parsed.detected():
        st.caption("Detected: " + md_escape(parsed.detected()))
    return parsed


def counts(parsed: ParsedFile, actor: Actor, pid: int, filename: str) -> int | None:
    """The four counts; returns how many valid rows are already in the log (None when not counted)."""
    c = st.columns(4)
    c[0].metric("Rows in file", parsed.total_rows)
    c[1].metric("Valid", len(parsed.rows))
    c[2].metric("Invalid", len(parsed.invalid_rows))
    duplicates = None
    if parsed.rows and not parsed.file_error:
        with attempt():
            with db() as session:
                dry = csv_import.import_doses(session, actor, pid, parsed, filename, skip_invalid=True, dry_run=True)
            duplicates = dry.duplicates
    c[3].metric("Already in the log", "—" if duplicates is None else duplicates)
    if parsed.extra_columns:
        st.caption("Ignored columns: " + md_escape(", ".join(parsed.extra_columns)))
    return duplicates


def unusual_warning(parsed: ParsedFile, pid: int) -> None:
    """Rows above the plan or the ceiling: recorded as the file says (the file is the record); the rules hold."""
    if not parsed.rows or parsed.file_error:
        return
    with db() as session:
        unusual = doses.unusual_rows(session, pid, parsed.rows)
    if unusual:
        n = len(unusual)
        st.warning(f"{n} row{'s have' if n != 1 else ' has'} a dose above the plan or the protocol's ceiling. "
                   "They will be recorded as the file says; the dose rules will then hold the plan for the "
                   "prescriber's review. Check the numbers before importing.", icon=":material/warning:")
        st.dataframe(pd.DataFrame(unusual[:200], columns=["Row", "Warning"]), hide_index=True, width="stretch")


def problems_and_preview(parsed: ParsedFile, tz: ZoneInfo) -> None:
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
            st.dataframe(preview_words(parsed.preview_frame(tz, limit=200)), hide_index=True, width="stretch")


def import_step(parsed: ParsedFile, actor: Actor, pid: int, filename: str, mapping: dict[str, str], remember: bool,
                duplicates: int | None, round_: int) -> None:
    """The skip box and the Import button; a successful import starts the next round."""
    skip = False
    if parsed.errors and not parsed.file_error:
        skip = st.checkbox("Skip the invalid rows and import the valid ones", key=f"imp_skip_{round_}")
    can_import, to_write = importable(parsed, skip, duplicates)
    if not st.button(import_label(to_write), type="primary", disabled=not can_import, key="imp_go"):
        return
    bar = st.progress(0.0, text="Importing…")
    with attempt() as done:
        try:
            with db() as session:
                if remember and mapping:
                    csv_import.save_mapping(session, actor, mapping)
                result = csv_import.import_doses(
                    session, actor, pid, parsed, filename, skip_invalid=skip,
                    progress=lambda stage, n, total: bar.progress(n / max(total, 1), text=f"{stage} {n}/{total}"))
        finally:
            bar.empty()
    if done:  # a fresh uploader: no stale counts or button for the file just imported
        st.session_state["imp_done"] = done_message(result, filename)
        st.session_state["imp_round"] = round_ + 1
        st.rerun()


def earlier_imports(actor: Actor, pid: int, tz: ZoneInfo) -> None:
    st.subheader("Earlier imports")
    with db() as session:
        batches = csv_import.list_batches(session, actor, pid)
    if not batches:
        st.caption("No imports for this patient yet.")
        return
    st.dataframe(pd.DataFrame([{
        "When": fmt_local(b.created_at, tz), "File": b.filename, "Imported": b.rows_imported,
        "Duplicates": b.rows_duplicate, "Invalid": b.rows_invalid,
        "Undone": fmt_local(b.undone_at, tz) if b.undone_at else "",
    } for b in batches]), hide_index=True, width="stretch")
    undoable = {b.id: f"{fmt_local(b.created_at, tz)} · {b.filename} · {b.rows_imported} doses"
                for b in batches if b.undone_at is None}
    if not undoable:
        return
    with st.form("undo_batch"):
        chosen = st.selectbox("Undo an import (voids all its entries)", list(undoable),
                              format_func=lambda i: undoable[i])
        reason = st.text_input("Reason", key="undo_reason")
        if st.form_submit_button("Undo import"):
            with attempt():
                with db() as session:
                    n = csv_import.undo_batch(session, actor, chosen, reason)
                st.toast(f"Import undone: {n} entries voided", icon=":material/undo:")
                st.rerun()
