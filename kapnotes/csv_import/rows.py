"""From text cells to ``DoseInput`` rows: types, yes/no, synonyms, per-row messages.

Column by column with pandas (fast for 200,000 rows); a cell that cannot be read becomes a
message on its row, never a traceback. Text cells our own export neutralised against formula
injection (``'=…``, ``'-…``) are restored first, so an exported file re-imports to the character.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from kapnotes.cells import restore_cell
from kapnotes.csv_import.dates import parse_times
from kapnotes.dose_columns import INT_COLUMNS, LABELS, TEXT_COLUMNS
from kapnotes.doses import DoseInput

MAX_NUMBER = 1_000_000  # no field of a dose entry is near this; larger is a typing slip, not a value
_TRUE = {"yes", "y", "true", "t", "1"}
_FALSE = {"no", "n", "false", "f", "0", ""}
_SYNONYMS = {
    "formulation": {"odt": "odt", "orally_disintegrating_tablet": "odt", "rdt": "odt",
                    "sublingual_tablet": "sublingual", "sl": "sublingual", "lozenge": "troche"},
    "administration": {"spat": "spit", "spit_out": "spit", "swallowed": "swallow"},
    "context": {"sitter": "home_with_sitter", "home_sitter": "home_with_sitter", "session": "in_session",
                "clinic": "in_session", "office": "in_session"},
}

RowErrors = dict[int, dict[str, str]]  # row → column → the first message for it


def _norm_word(value: str) -> str:
    return re.sub(r"[\s\-]+", "_", value.strip().lower())


def _fail(errors: RowErrors, mask: pd.Series, name: str, message: str) -> None:
    for row in mask[mask].index:
        errors.setdefault(int(row), {}).setdefault(name, message)


def _times(frame: pd.DataFrame, tz: ZoneInfo, date_order: str | None, errors: RowErrors) -> pd.Series:
    raw_t = frame["taken_at"].str.strip()
    times = parse_times(raw_t, tz, date_order)
    _fail(errors, raw_t == "", "taken_at", "Enter when the dose was taken (e.g. 2026-03-01 19:30).")
    shown = {"dmy": "25/03/2026 19:30", "mdy": "3/25/2026 7:30 PM"}.get(date_order or "", "")
    _fail(errors, (raw_t != "") & times.isna(), "taken_at",
          "Not a date and time (e.g. 2026-03-01 19:30" + (f" or {shown}" if shown else "") + "), "
          "or a local time that does not exist or is ambiguous at a clock change.")
    return times


def _number(frame: pd.DataFrame, name: str, errors: RowErrors) -> pd.Series:
    raw = frame[name].str.strip()
    if name == "dose_mg":
        raw = raw.str.replace(r"^(\d+),(\d+)$", r"\1.\2", regex=True).str.replace(r"\s*mg$", "", regex=True,
                                                                                  case=False)
    num = pd.to_numeric(raw.where(raw != "", None), errors="coerce").astype("float64")
    # inf, nan and numbers no field could hold are row errors, never a traceback further on
    finite = num.notna() & np.isfinite(num.fillna(0)) & (num.abs() < MAX_NUMBER)
    _fail(errors, (raw != "") & num.notna() & ~finite, name, f"{LABELS[name]} must be an ordinary number "
                                                             f"(below {MAX_NUMBER:,}).")
    num = num.where(finite)
    _fail(errors, (raw != "") & num.isna(), name, f"{LABELS[name]} must be a number.")
    if name == "dose_mg":
        _fail(errors, raw == "", name, "Enter the dose in mg.")
    else:
        whole = num.isna() | (num == num.round())
        _fail(errors, ~whole, name, f"{LABELS[name]} must be a whole number.")
    return num


def _as_list(series: pd.Series) -> list:
    return [None if pd.isna(v) else v for v in series.astype("object").tolist()]


def parse_columns(
    frame: pd.DataFrame, tz: ZoneInfo, date_order: str | None = None,
) -> tuple[list[DoseInput | None], RowErrors]:
    """Type conversion, column by column; returns per-row inputs (None where a cell failed) and type errors."""
    frame = frame.copy()
    for name in TEXT_COLUMNS:
        if name in frame:
            frame[name] = frame[name].map(lambda v: restore_cell(v) if isinstance(v, str) else v)
    errors: RowErrors = {}
    values: dict[str, pd.Series] = {"taken_at": _times(frame, tz, date_order, errors)}
    for name in ("dose_mg", *INT_COLUMNS):
        values[name] = _number(frame, name, errors)
    raw_v = frame["vomited"].str.strip().str.lower()
    _fail(errors, ~raw_v.isin(_TRUE | _FALSE), "vomited", "Vomited must be yes/no, true/false or 1/0.")
    values["vomited"] = raw_v.isin(_TRUE)
    for name in ("formulation", "administration", "context"):
        values[name] = frame[name].map(_norm_word).map(lambda v, n=name: _SYNONYMS[n].get(v, v))
    return _inputs(frame, values, errors), errors


def _inputs(frame: pd.DataFrame, values: dict[str, pd.Series], errors: RowErrors) -> list[DoseInput | None]:
    """One ``DoseInput`` per row without a type error (plain Python lists: fast per row)."""
    ints = {n: _as_list(values[n]) for n in INT_COLUMNS}
    dose_list = _as_list(values["dose_mg"])
    times = values["taken_at"].astype("object").tolist()
    text = {n: values[n].tolist() for n in ("formulation", "administration", "context", "vomited")}
    tags, notes = frame["adverse_events"].tolist(), frame["notes"].tolist()
    out: list[DoseInput | None] = []
    for i, row in enumerate(frame.index.tolist()):
        if row in errors:
            out.append(None)
            continue
        out.append(DoseInput(
            taken_at=times[i].to_pydatetime(),
            dose_mg=float(dose_list[i]) if dose_list[i] is not None else None,
            formulation=text["formulation"][i] or None,
            administration=text["administration"][i] or None,
            context=text["context"][i] or "home",
            vomited=bool(text["vomited"][i]),
            adverse_events=tags[i],
            notes=notes[i] or None,
            **{n: (int(ints[n][i]) if ints[n][i] is not None else None) for n in INT_COLUMNS},
        ))
    return out
