"""Turning uploaded bytes into a frame of text cells: encodings, separators, .xlsx, size limits.

UTF-8 (with or without a byte-order mark) first; then Windows-1252, the encoding of "CSV"
saved by Excel on Windows; Latin-1 when a byte has no Windows-1252 meaning. ``;``, ``,`` or
tab is sniffed from the header. An .xlsx upload is read from its first sheet. Every cell
stays text here: types are the row parser's job (``rows.py``).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime

import pandas as pd

from kapnotes.csv_import.parsed import ParsedFile, RowError
from kapnotes.errors import ValidationError

MAX_COLUMNS = 64
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # as server.maxUploadSize = 20 in .streamlit/config.toml
_XLSX_MAGIC = b"PK\x03\x04"
_PANDAS_ENCODINGS = {"UTF-8": "utf-8", "UTF-8 with BOM": "utf-8-sig", "Windows-1252": "cp1252",
                     "Latin-1": "latin-1"}
_NOT_UTF8 = "The file says it is UTF-8 text but is not. Save it as 'CSV UTF-8' and try again."


def _decode_with_label(data: bytes | str) -> tuple[str, str]:
    """The text and the encoding it was read in, in words (shown in the preview).

    Latin-1 decodes any bytes, so a file is never refused for its encoding alone; the
    preview names what was used so a wrong guess is visible before anything is written.
    """
    if isinstance(data, str):
        return data.lstrip("\ufeff"), "text"
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict"), "UTF-8 with BOM"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "UTF-16"
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    if b"\x00" in data:
        raise ValidationError({"file": "The file is not a text file (CSV) or an Excel workbook (.xlsx)."})
    try:
        return data.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "Latin-1"


def _decode(data: bytes | str) -> str:
    try:
        return _decode_with_label(data)[0]
    except UnicodeDecodeError:
        raise ValidationError({"file": _NOT_UTF8}) from None


def is_xlsx(data: bytes | str) -> bool:
    return isinstance(data, bytes) and data.startswith(_XLSX_MAGIC)


def sniff_separator(text: str) -> str:
    """``;``, ``,`` or tab: whichever the first non-blank line (the header) uses most."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    counts = {sep: header.count(sep) for sep in (";", ",", "\t")}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] else ","


def normalise_header(name: str) -> str:
    """A header as the mapping knows it (what the UI shows mappings under): ``"Taken at"`` → ``taken_at``."""
    return re.sub(r"[\s\-]+", "_", str(name).strip().lstrip("\ufeff").strip().lower())


def _xlsx_frame(data: bytes, nrows: int | None = None) -> pd.DataFrame:
    """The first sheet as text cells (dates as ISO text, as Excel holds them as dates)."""
    frame = pd.read_excel(io.BytesIO(data), sheet_name=0, dtype=object, engine="openpyxl", nrows=nrows)
    frame.columns = [str(c) for c in frame.columns]

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NaT:
            return ""
        if isinstance(v, (pd.Timestamp, datetime)):
            return v.isoformat(sep=" ")
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    return frame.map(cell) if len(frame) else frame.astype(str)


def _xlsx_columns(data: bytes) -> int:
    from openpyxl import load_workbook  # heavy; only for workbooks

    wb = load_workbook(io.BytesIO(data), read_only=True)
    try:
        ws = wb.worksheets[0]
        return int(ws.max_column or 0)
    finally:
        wb.close()


def upload_problem(data: bytes, size: int | None = None) -> str | None:
    """Why an upload is refused before anything else reads it (too big, too wide), or None.

    Checked before the page builds a widget per column: a file with thousands of columns
    must not build thousands of dropdowns.
    """
    size = len(data) if size is None else size
    if size > MAX_UPLOAD_BYTES:
        return (f"The file is {size / 1024 / 1024:.1f} MB; at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB "
                "can be imported at once. Split it into smaller files.")
    try:
        if is_xlsx(data):
            n = _xlsx_columns(data)
        else:
            text = _decode_head(data)
            first = next((line for line in text.splitlines() if line.strip()), "")
            sep = sniff_separator(first)
            n = len(next(csv.reader([first], delimiter=sep, quotechar='"'), []))
    except Exception:  # unreadable files are explained by read_csv
        return None
    if n > MAX_COLUMNS:
        return (f"The file has {n} columns; at most {MAX_COLUMNS} can be read. Keep the dose-log columns "
                "and remove the others.")
    return None


def _decode_head(data: bytes) -> str:
    """The start of a file as text, for checks that need only its header."""
    head = data[:65536]
    for cut in range(4):  # the cut may fall inside a UTF-8 character
        try:
            return _decode_with_label(head[:len(head) - cut])[0]
        except UnicodeDecodeError:
            continue
    return ""


def read_headers(data: bytes | str) -> list[str]:
    """The file's header names as written (for the UI's column mapping); [] when unreadable or too wide."""
    try:
        if isinstance(data, bytes) and upload_problem(data):
            return []
        if is_xlsx(data):
            return [str(c).strip() for c in _xlsx_frame(data, nrows=0).columns]
        text = _decode(data)
        frame = pd.read_csv(io.StringIO(text), sep=sniff_separator(text), dtype=str, nrows=0, engine="python")
    except Exception:  # read_csv reports the problem
        return []
    return [str(c).strip().lstrip("\ufeff") for c in frame.columns]


def _record_lines(text: str, sep: str) -> list[int]:
    """The line on which each data record starts (blank lines count as records, as in pandas)."""
    reader = csv.reader(io.StringIO(text), delimiter=sep, quotechar='"')
    starts: list[int] = []
    previous = 0
    try:
        for _record in reader:
            starts.append(previous + 1)
            previous = reader.line_num
    except csv.Error:
        return []
    return starts[1:]


Loaded = tuple[ParsedFile, "pd.DataFrame | None", list[int]]


def load_frame(data: bytes | str) -> Loaded:
    """(what was detected, the cells as text, each record's first line) — frame None when the
    file cannot be read at all (the reason is the ParsedFile's file error)."""
    if isinstance(data, bytes):
        problem = upload_problem(data)
        if problem:
            return ParsedFile(errors=[RowError(1, "file", "", problem)]), None, []
    loaded = _load_xlsx(data) if is_xlsx(data) else _load_text(data)
    result, frame, _lines = loaded
    if frame is not None and len(frame.columns) > MAX_COLUMNS:
        return result.fail(f"The file has {len(frame.columns)} columns; at most {MAX_COLUMNS} can be read."), None, []
    return loaded


def _load_xlsx(data: bytes) -> Loaded:
    result = ParsedFile(separator="", encoding="Excel workbook (.xlsx), first sheet")
    try:
        frame = _xlsx_frame(data)
    except Exception as exc:  # a damaged workbook is a file error, not a traceback
        return result.fail(f"The workbook is not readable ({str(exc)[:120]})."), None, []
    if not len(frame.columns):
        return result.fail("The file is empty."), None, []
    return result, frame, []


def _load_text(data: bytes | str) -> Loaded:
    try:
        text, encoding = _decode_with_label(data)
    except (UnicodeDecodeError, ValidationError) as exc:
        reason = exc.errors["file"] if isinstance(exc, ValidationError) else _NOT_UTF8
        return ParsedFile(errors=[RowError(1, "file", "", reason)]), None, []
    result = ParsedFile(separator=sniff_separator(text), encoding=encoding)
    if not text.strip():
        return result.fail("The file is empty."), None, []
    try:
        source = (io.BytesIO(data) if isinstance(data, bytes) and encoding in _PANDAS_ENCODINGS
                  else io.StringIO(text))  # bytes: no second copy of a large file as text
        frame = pd.read_csv(source, sep=result.separator, dtype=str, keep_default_na=False,
                            skip_blank_lines=False, engine="c", quotechar='"',
                            encoding=_PANDAS_ENCODINGS.get(encoding))
        del source
    except (pd.errors.ParserError, ValueError) as exc:
        return result.fail(f"The file is not readable as CSV ({str(exc)[:120]})."), None, []
    return result, frame, _record_lines(text, result.separator)
