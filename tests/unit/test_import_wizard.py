"""The import page's logic without a browser: the preview in words, the Import button's state and label."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from kapnotes import csv_import
from kapnotes.csv_import import ImportResult
from kapnotes.ui.import_wizard import done_message, import_label, importable, preview_words

NY = ZoneInfo("America/New_York")
GOOD = (b"taken_at,dose_mg,formulation,context,adverse_events\n"
        b"2026-03-01 19:30,150,odt,home_with_sitter,chest_pain\n2026-03-02 19:30,150,sl,home,\n")


def test_preview_reads_as_words():
    parsed = csv_import.read_csv(GOOD, NY)
    frame = preview_words(parsed.preview_frame(NY))
    assert list(frame["Taken at"].astype(str)) == ["2026-03-01 19:30:00", "2026-03-02 19:30:00"]
    assert list(frame["Formulation"]) == ["ODT", "Sublingual"]
    assert list(frame["Context"]) == ["At home with a sitter", "At home"]
    assert list(frame["Adverse events"]) == ["chest pain", ""]


def test_import_button_counts_what_it_would_write():
    parsed = csv_import.read_csv(GOOD, NY)
    assert importable(parsed, skip=False, duplicates=None) == (True, 2)
    assert importable(parsed, skip=False, duplicates=2) == (False, 0)  # all already in the log
    assert import_label(1) == "Import 1 dose" and import_label(2) == "Import 2 doses"


def test_invalid_rows_need_the_skip_box():
    parsed = csv_import.read_csv(GOOD + b"2026-03-03 19:30,lots,odt,home,\n", NY)
    assert importable(parsed, skip=False, duplicates=0) == (False, 2)
    assert importable(parsed, skip=True, duplicates=0) == (True, 2)
    assert not importable(csv_import.read_csv(b"when,dose\n1,2\n", NY), skip=True, duplicates=0)[0]


def test_done_message_escapes_the_file_name():
    result = ImportResult(7, 3, 1, 2, 0, False)
    assert done_message(result, "*a*.csv") == ("Imported 1 dose from \\*a\\*.csv; skipped 2 already in the log; "
                                               "0 invalid.")
