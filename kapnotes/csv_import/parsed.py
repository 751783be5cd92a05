"""What reading a file gives back: the valid rows, the row errors, and what was detected.

Row numbers are the file's line numbers (the header is line 1), so a clinician can find the
row in a spreadsheet; an error on line 1 is a problem with the whole file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import pandas as pd

from kapnotes.dose_columns import CSV_COLUMNS
from kapnotes.doses import DoseInput
from kapnotes.errors import ValidationError

SEPARATOR_WORDS = {",": "commas", ";": "semicolons", "\t": "tabs"}


@dataclass(frozen=True)
class RowError:
    row: int  # line number in the file (header = 1)
    column: str
    value: str
    reason: str

    def describe(self) -> str:
        shown = self.value if len(self.value) <= 40 else self.value[:37] + "..."
        return f"row {self.row}, {self.column} = {shown!r}: {self.reason}"


@dataclass
class ParsedFile:
    rows: list[tuple[int, DoseInput]] = field(default_factory=list)  # (row number, valid dose)
    errors: list[RowError] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    separator: str = ","
    total_rows: int = 0
    encoding: str = ""  # in words, e.g. "UTF-8 with BOM", "Windows-1252", "Excel workbook (.xlsx)"
    date_order: str | None = None  # "dmy"/"mdy" used for slashed dates, None when none were read
    date_order_detected: str | None = None  # "iso", "dmy", "mdy", "mixed" or None (ambiguous)
    date_note: str = ""  # what settled the date order, in words
    needs_date_order: bool = False  # slashed dates read both ways: the user must choose

    def detected(self) -> str:
        """What the reader found, in words, for the preview."""
        parts = [f"read as {self.encoding}" if self.encoding else ""]
        if self.separator:
            parts.append(f"separated by {SEPARATOR_WORDS.get(self.separator, repr(self.separator))}")
        if self.date_note:
            parts.append(self.date_note)
        text = "; ".join(p for p in parts if p)
        return text[:1].upper() + text[1:] + "." if text else ""

    def fail(self, reason: str, column: str = "file", value: str = "") -> ParsedFile:
        """Record a problem with the whole file (line 1); returns the file for ``return result.fail(...)``."""
        self.errors.append(RowError(1, column, value, reason))
        return self

    @property
    def invalid_rows(self) -> list[int]:
        return sorted({e.row for e in self.errors if e.row > 1})

    @property
    def file_error(self) -> bool:
        """A problem with the whole file (header), not with single rows."""
        return any(e.row <= 1 for e in self.errors)

    def errors_frame(self) -> pd.DataFrame:
        return pd.DataFrame([(e.row, e.column, e.value, e.reason) for e in self.errors],
                            columns=["Row", "Column", "Value", "Problem"])

    def preview_frame(self, tz: ZoneInfo, limit: int | None = None) -> pd.DataFrame:
        data = [{"Row": n, **{c: getattr(d, c) for c in CSV_COLUMNS}} for n, d in self.rows[:limit]]
        frame = pd.DataFrame(data, columns=["Row", *CSV_COLUMNS])
        if len(frame):
            frame["taken_at"] = pd.to_datetime(frame["taken_at"], utc=True).dt.tz_convert(tz)
        return frame


class ImportRejected(ValidationError):
    """Some rows are invalid and ``skip_invalid`` was not asked: nothing was written."""

    def __init__(self, parsed: ParsedFile):
        self.parsed = parsed
        n = len(parsed.invalid_rows)
        head = (f"The file cannot be imported: {n} invalid row{'s' if n != 1 else ''}. Nothing was imported."
                if not parsed.file_error else "The file cannot be imported. Nothing was imported.")
        super().__init__({"_": head})
        self.row_errors = parsed.errors
