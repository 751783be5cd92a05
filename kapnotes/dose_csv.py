"""Dose-log CSV export in the canonical columns of DESIGN §2, in that order.

The file re-imports through ``kapnotes.csv_import`` unchanged: times are ISO 8601 with the
clinic's offset (``2026-03-01T19:30:00-05:00``), numbers are plain (``150`` or ``137.5``),
``vomited`` is ``true``/``false``, voided entries are left out (they are not doses taken).

Formula injection: text cells go out through ``kapnotes.cells.neutralise_cell`` (one leading
apostrophe on a cell a spreadsheet would run). Numeric columns are never touched: we write
them, and a number (even a negative one) is not a formula.
A note that legitimately starts with ``-`` ("- felt dizzy") is written ``'- felt dizzy``
and comes back as ``- felt dizzy`` once the importer applies ``restore_cell`` (see
``read_dose_csv``, the importer's parse followed by the restore).
"""

from __future__ import annotations

import csv
import io
from datetime import date
from zoneinfo import ZoneInfo

from sqlmodel import Session

from kapnotes import audit
from kapnotes.actor import Actor
from kapnotes.cells import neutralise_cell, restore_cell
from kapnotes.config import get_settings
from kapnotes.csv_import import read_csv
from kapnotes.dose_columns import CSV_COLUMNS, INT_COLUMNS, TEXT_COLUMNS
from kapnotes.doses import DoseFilter, dose_frame
from kapnotes.exports import _patient, file_stem

CSV_MIME = "text/csv"


def _number(value) -> str:
    if value is None:
        return ""
    try:
        if value != value:  # NaN from pandas
            return ""
    except TypeError:
        pass
    f = float(value)
    return str(int(f)) if f.is_integer() else repr(f)


def rows_to_csv(rows: list[dict], tz: ZoneInfo) -> str:
    """Canonical CSV text for dose rows (dicts with the canonical keys; ``taken_at`` aware)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(CSV_COLUMNS)
    for r in rows:
        out = []
        for c in CSV_COLUMNS:
            v = r.get(c)
            if c == "taken_at":
                out.append(v.astimezone(tz).isoformat())
            elif c == "dose_mg" or c in INT_COLUMNS:
                out.append(_number(v))
            elif c == "vomited":
                out.append("true" if bool(v) else "false")
            else:
                out.append(neutralise_cell("" if v is None or v != v else str(v)))
        w.writerow(out)
    return buf.getvalue()


def dose_log_csv(session: Session, actor: Actor | None, patient_id: int, date_from: date | None = None,
                 date_to: date | None = None, *, as_operator: bool = False) -> tuple[str, bytes]:
    """(file name, UTF-8 CSV bytes) of the patient's live doses, oldest first; audited.

    The function the dose log page calls for its download button.
    """
    patient = _patient(session, actor, patient_id, as_operator)
    tz = get_settings().tz
    frame = dose_frame(session, patient_id, DoseFilter(date_from=date_from, date_to=date_to), tz,
                       columns=("id", *CSV_COLUMNS))
    frame = frame.sort_values(["taken_at", "id"], kind="stable")
    rows = []
    for rec in frame.to_dict("records"):
        rec["taken_at"] = rec["taken_at"].to_pydatetime()
        rows.append(rec)
    text = rows_to_csv(rows, tz)
    audit.record(session, actor, "export.dose_csv", "patient", patient.id, patient.id,
                 detail=f"rows={len(rows)}" + (f";from={date_from.isoformat()}" if date_from else "")
                 + (f";to={date_to.isoformat()}" if date_to else ""))
    name = file_stem(patient.mrn).replace("summary-", "doses-", 1) + ".csv"
    return name, text.encode("utf-8")


def read_dose_csv(data: bytes | str, tz: ZoneInfo, mapping: dict[str, str] | None = None):
    """The importer's ``read_csv`` (which applies ``restore_cell`` to the text columns itself)."""
    return read_csv(data, tz, mapping)


__all__ = ["CSV_MIME", "TEXT_COLUMNS", "dose_log_csv", "neutralise_cell", "read_dose_csv", "restore_cell",
           "rows_to_csv"]
