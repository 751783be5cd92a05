"""CSV that is safe to open in a spreadsheet: no cell is taken as a formula.

A value starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a
formula by Excel, LibreOffice and Sheets (``=HYPERLINK(...)`` in a username reaches the
admin's export). Such text cells get a leading apostrophe (OWASP's advice); numbers stay
numbers, so a negative number is not mangled.
"""

from __future__ import annotations

import numbers

import pandas as pd

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value):
    if isinstance(value, str) and value.startswith(_TRIGGERS):
        return "'" + value
    return value


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if not all(isinstance(v, numbers.Number) for v in out[column].dropna()):
            out[column] = out[column].map(neutralise)
    out.columns = [neutralise(str(c)) for c in out.columns]
    return out


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as UTF-8 CSV (with a BOM, for spreadsheets), formulas neutralised."""
    return neutralise_frame(frame).to_csv(index=False).encode("utf-8-sig")
