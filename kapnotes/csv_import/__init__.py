"""Importing a dose log from a file (CSV or .xlsx): read, validate every row, import all or nothing.

The pieces, lowest first (each imports only those above it, never this package root):

- ``parsed``: ``RowError``, ``ParsedFile`` (what reading found), ``ImportRejected``.
- ``decoding``: bytes to text cells: encodings (UTF-8 with or without BOM, Windows-1252,
  Latin-1), ``;``/``,``/tab sniffed from the header, .xlsx, the upload's size and width limits.
- ``dates``: ``taken_at`` with or without a zone (naive = the clinic's zone; stored in UTC) and
  slashed dates, whose day/month order is settled by the file or asked for, never guessed.
- ``rows``: text cells to ``DoseInput`` (numbers, yes/no/true/false/1/0, synonyms), per-row messages.
- ``mapping``: which column is which field, and the clinic's remembered column mapping.
- ``reader``: ``read_csv``, the steps above in order, then ``doses.validate_dose`` on every row.
  Row numbers are the file's line numbers (the header is line 1).
- ``staging``: large imports commit in short transactions, invisible until one final publish;
  abandoned ones are cleaned up.
- ``writing``: ``import_doses``, one ``ImportBatch``; duplicates (same patient, time, dose) skipped.
- ``batches``: ``list_batches``, ``undo_batch`` (voids a whole batch, never deletes; audited).

Callers import from here: ``from kapnotes import csv_import; csv_import.read_csv(...)``.
"""

from kapnotes.csv_import.batches import list_batches, undo_batch
from kapnotes.csv_import.dates import DATE_ORDERS, detect_date_order
from kapnotes.csv_import.decoding import (
    MAX_COLUMNS,
    MAX_UPLOAD_BYTES,
    is_xlsx,
    normalise_header,
    read_headers,
    sniff_separator,
    upload_problem,
)
from kapnotes.csv_import.mapping import MAPPING_KEY, REQUIRED_COLUMNS, get_mapping, save_mapping
from kapnotes.csv_import.parsed import ImportRejected, ParsedFile, RowError
from kapnotes.csv_import.reader import MAX_ROWS, PARSE_CHUNK, read_csv
from kapnotes.csv_import.rows import MAX_NUMBER
from kapnotes.csv_import.staging import BATCH_COMPLETE, STAGE_ABOVE, cleanup_abandoned_imports
from kapnotes.csv_import.writing import WRITE_CHUNK, ImportResult, default_importer, import_doses, patient_by_mrn

__all__ = [
    "BATCH_COMPLETE", "DATE_ORDERS", "MAPPING_KEY", "MAX_COLUMNS", "MAX_NUMBER", "MAX_ROWS", "MAX_UPLOAD_BYTES",
    "PARSE_CHUNK", "REQUIRED_COLUMNS", "STAGE_ABOVE", "WRITE_CHUNK", "ImportRejected", "ImportResult",
    "ParsedFile", "RowError", "cleanup_abandoned_imports", "default_importer", "detect_date_order",
    "get_mapping", "import_doses", "is_xlsx", "list_batches", "normalise_header", "patient_by_mrn",
    "read_csv", "read_headers", "save_mapping", "sniff_separator", "undo_batch", "upload_problem",
]
