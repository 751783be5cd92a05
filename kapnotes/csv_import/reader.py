"""``read_csv``: a dose-log file (CSV text or .xlsx) in, a ``ParsedFile`` out; never writes.

The steps, each in its own module: decode the bytes into text cells (``decoding``), match the
columns (``mapping``), settle how slashed dates read (``dates``), type every row
(``rows``), then the one dose validation every entry path shares (``doses.validate_dose``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from kapnotes.csv_import.dates import DATE_ORDERS, detect_date_order
from kapnotes.csv_import.decoding import load_frame
from kapnotes.csv_import.mapping import map_columns
from kapnotes.csv_import.parsed import ParsedFile, RowError
from kapnotes.csv_import.rows import parse_columns
from kapnotes.dose_columns import CSV_COLUMNS
from kapnotes.doses import validate_dose
from kapnotes.errors import ValidationError

MAX_ROWS = 200_000
PARSE_CHUNK = 20_000


def read_csv(
    data: bytes | str | Path,
    tz: ZoneInfo,
    mapping: dict[str, str] | None = None,
    now: datetime | None = None,
    date_order: str | None = None,
) -> ParsedFile:
    """Parse and validate a dose-log file (CSV text or .xlsx). Never writes; every problem is a ``RowError``.

    ``mapping`` maps a header in the file (any case) to a canonical column name.
    ``date_order`` ("dmy"/"mdy") reads slashed dates; without it the order is taken
    from the file when a day above 12 settles it, and asked for (``needs_date_order``)
    when it does not: never guessed.
    """
    if isinstance(data, Path):
        data = data.read_bytes()
    if date_order is not None and date_order not in DATE_ORDERS:
        raise ValidationError({"date_order": "The date order is day/month/year (dmy) or month/day/year (mdy)."})
    result, frame, lines = load_frame(data)
    if frame is None:
        return result
    rename = map_columns(frame, mapping, result)
    if result.errors:
        return result
    frame = _rows_of(frame[list(rename)].rename(columns=rename), lines, result)
    if frame is None or not _settle_date_order(frame, date_order, result):
        return result
    for start in range(0, len(frame), PARSE_CHUNK):  # in slices: the temporaries stay small
        _validate(frame.iloc[start:start + PARSE_CHUNK], tz, now, result)
    result.errors.sort(key=lambda e: (e.row, CSV_COLUMNS.index(e.column) if e.column in CSV_COLUMNS else 99))
    return result


def _rows_of(frame: pd.DataFrame, lines: list[int], result: ParsedFile) -> pd.DataFrame | None:
    """The non-blank rows, indexed by file line, every dose-log column present; None (with the
    file error in ``result``) when there are none or too many."""
    frame = frame.fillna("").astype(str)
    # file line numbers (the header is line 1), right even when a quoted note spans lines
    frame.index = lines if len(lines) == len(frame) else frame.index + 2
    filled = pd.Series(False, index=frame.index)
    for name in frame.columns:  # column by column: a stripped copy of the whole frame is not needed
        filled |= frame[name].str.strip() != ""
    frame = frame[filled]  # blank lines
    del filled
    for c in CSV_COLUMNS:
        if c not in frame:
            frame[c] = ""
    result.total_rows = len(frame)
    if result.total_rows == 0:
        result.fail("The file has no rows: only a header. Nothing to import.")
        return None
    if result.total_rows > MAX_ROWS:
        result.fail(f"The file has {result.total_rows} rows; split it into files of at most {MAX_ROWS}.")
        return None
    return frame


def _settle_date_order(frame: pd.DataFrame, date_order: str | None, result: ParsedFile) -> bool:
    """Record how dates read (chosen, or settled by the file); False when the file contradicts
    itself or the user must choose (the reason is a file error)."""
    detected, why = detect_date_order(frame["taken_at"])
    result.date_order_detected = detected
    if date_order is not None:
        result.date_order = date_order
        result.date_note = f"dates as {DATE_ORDERS[date_order]} (as chosen)" if detected != "iso" else why
        return True
    if detected == "mixed":
        result.fail(f"The dates do not follow one order: {why}. Make them consistent and try again.", "taken_at")
        return False
    if detected is None:
        result.needs_date_order = True
        result.date_note = why
        result.fail("Every date reads both as day/month/year and as month/day/year (e.g. 03/04/2026): "
                    "choose the order.", "taken_at")
        return False
    result.date_order = detected if detected in DATE_ORDERS else None
    result.date_note = why
    return True


def _validate(part: pd.DataFrame, tz: ZoneInfo, now: datetime | None, result: ParsedFile) -> None:
    """Type and validate one slice of rows: each valid one to ``result.rows``, every problem to its errors."""
    parsed, errors = parse_columns(part, tz, result.date_order)
    for row, dose in zip(part.index, parsed):
        row_errors = errors.get(row, {})
        if dose is not None:
            for name, message in validate_dose(dose, now).items():
                row_errors.setdefault(name, message)
        if not row_errors:
            result.rows.append((int(row), dose))
            continue
        for name, message in row_errors.items():
            result.errors.append(RowError(int(row), name, str(part.at[row, name]) if name in part else "", message))
