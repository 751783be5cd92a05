"""CSV import: reader (BOM, ';', blank lines, booleans, zones), validation, all-or-nothing,
duplicates, --skip-invalid, --dry-run, batches and undo, mapping; CLI; a killed import."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlmodel import select

from kapnotes import csv_import, doses
from kapnotes.cli import main as cli_main
from kapnotes.db import session_scope
from kapnotes.errors import PermissionDenied, ValidationError
from kapnotes.models import AuditEvent, DoseEntry, ImportBatch
from tests.helpers.dosefiles import big_dose_csv

DATA = Path(__file__).resolve().parents[1] / "data"
ROOT = Path(__file__).resolve().parents[2]
NY = ZoneInfo("America/New_York")


def read(name: str, **kw) -> csv_import.ParsedFile:
    return csv_import.read_csv((DATA / name).read_bytes(), NY, **kw)


def count(engine, model=DoseEntry, live_only=False) -> int:
    with session_scope(engine) as s:
        q = select(func.count()).select_from(model)
        if live_only:
            q = q.where(DoseEntry.voided_at.is_(None))
        return s.exec(q).one()


# --- reader -----------------------------------------------------------------------------------


def test_reads_good_file_with_blank_line_and_zones():
    parsed = read("doses_good.csv")
    assert parsed.errors == [] and parsed.separator == "," and parsed.total_rows == 4
    rows = dict(parsed.rows)
    assert sorted(rows) == [2, 3, 4, 6]  # file line numbers; line 5 is blank
    # naive = clinic zone (EDT in September): 19:05 local is 23:05 UTC
    assert rows[2].taken_at == datetime(2026, 9, 1, 23, 5, tzinfo=timezone.utc)
    assert rows[3].taken_at == datetime(2026, 9, 8, 23, 10, tzinfo=timezone.utc)  # -04:00 given
    assert rows[4].formulation == "odt"  # "ODT"
    assert rows[2].notes == "Calm evening, music"
    assert rows[6].adverse_events == "nausea;headache" and rows[6].context == "in_session"
    assert rows[2].bp_systolic_pre == 124 and isinstance(rows[2].bp_systolic_pre, int)


def test_reads_bom_semicolon_decimal_comma_and_reports_extra_columns():
    parsed = read("doses_semicolon_bom.csv")
    assert parsed.separator == ";"
    assert parsed.errors == []
    assert parsed.extra_columns == ["app_id"]
    rows = dict(parsed.rows)
    assert rows[2].dose_mg == 100.5
    assert rows[4].vomited is True and rows[4].notes == "Felt sick; better after"
    assert rows[5].vomited is False
    assert rows[5].taken_at == datetime(2026, 8, 15, 20, tzinfo=timezone.utc)  # Z
    assert rows[2].bp_systolic_pre is None


def test_bad_rows_are_named_by_row_column_and_value():
    parsed = read("doses_bad.csv")
    found = {(e.row, e.column): e for e in parsed.errors}
    expected = {
        3: "dose_mg", 4: "dose_mg", 5: "formulation", 6: "anxiety_before", 7: "bp_systolic_pre",
        8: "bp_systolic_pre", 9: "taken_at", 10: "taken_at", 11: "vomited",
    }
    for row, column in expected.items():
        assert (row, column) in found, (row, column, parsed.errors)
    assert found[(3, "dose_mg")].value == "0"
    assert found[(5, "formulation")].value == "pill" and "pill" in found[(5, "formulation")].reason
    assert "future" in found[(9, "taken_at")].reason
    assert "2000" in found[(10, "taken_at")].reason
    assert "above diastolic" in found[(7, "bp_systolic_pre")].reason
    assert parsed.invalid_rows == list(range(3, 12))
    assert [n for n, _ in parsed.rows] == [2, 12]
    assert "row 5, formulation = 'pill'" in found[(5, "formulation")].describe()


def test_missing_required_column_is_a_file_error():
    parsed = csv_import.read_csv(b"when,dose_mg\n2026-01-01,100\n", NY)
    assert parsed.file_error
    assert {e.column for e in parsed.errors} == {"taken_at", "formulation"}


def test_mapping_renames_other_headers():
    mapping = {"Date": "taken_at", "Amount (mg)": "dose_mg", "Form": "formulation",
               "Anxiety pre": "anxiety_before", "Anxiety post": "anxiety_after"}
    parsed = read("doses_mapped.csv", mapping=mapping)
    assert parsed.errors == [] and len(parsed.rows) == 2
    assert parsed.extra_columns == ["Mood"]
    assert parsed.rows[0][1].anxiety_before == 6 and parsed.rows[0][1].dose_mg == 50


def test_ambiguous_local_time_is_refused():
    # 2026-11-01 01:30 happens twice in New York (clocks go back).
    parsed = csv_import.read_csv(b"taken_at,dose_mg,formulation\n2026-11-01 01:30,100,odt\n", NY)
    assert [e.column for e in parsed.errors] == ["taken_at"]


_ROW = st.fixed_dictionaries({
    "taken_at": st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2026, 6, 30)).map(
        lambda d: d.replace(microsecond=0, second=0, tzinfo=timezone.utc)),
    "dose_mg": st.integers(1, 1000),
    "formulation": st.sampled_from(doses.FORMULATIONS),
    "administration": st.sampled_from((None, *doses.ADMINISTRATIONS)),
    "context": st.sampled_from(doses.CONTEXTS),
    "anxiety_before": st.none() | st.integers(0, 10),
    "anxiety_after": st.none() | st.integers(0, 10),
    "dissociation": st.none() | st.integers(0, 10),
    "nausea": st.none() | st.integers(0, 3),
    "vomited": st.booleans(),
    "bp": st.none() | st.tuples(st.integers(100, 200), st.integers(40, 99)),
    "heart_rate": st.none() | st.integers(30, 220),
    "adverse_events": st.lists(st.sampled_from(["dizziness", "nausea", "headache", "chest_pain"]), max_size=3,
                               unique=True).map(";".join),
    "notes": st.none() | st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")),
                                 max_size=30).map(str.strip).filter(bool),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(_ROW, min_size=1, max_size=12), sep=st.sampled_from([",", ";"]), bom=st.booleans(),
       blank_every=st.integers(0, 4), bool_style=st.sampled_from(["yes", "true", "1", "YES"]),
       zone_style=st.sampled_from(["utc", "offset", "naive"]))
@pytest.mark.slow
def test_reader_round_trips_generated_rows(rows, sep, bom, blank_every, bool_style, zone_style):
    true_word, false_word = {"yes": ("yes", "no"), "true": ("true", "false"), "1": ("1", "0"),
                             "YES": ("YES", "No")}[bool_style]
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=sep, lineterminator="\n")
    w.writerow(doses.CSV_COLUMNS)
    line = 1
    lines_of = []
    for i, r in enumerate(rows):
        if blank_every and i % blank_every == 0:
            buf.write("\n")
            line += 1
        t = r["taken_at"]
        stamp = {"utc": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "offset": t.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat(),
                 "naive": t.astimezone(NY).replace(tzinfo=None).isoformat(sep=" ")}[zone_style]
        bp = r["bp"] or (None, None)
        values = [stamp, r["dose_mg"], r["formulation"], r["administration"], r["context"], r["anxiety_before"],
                  r["anxiety_after"], r["dissociation"], r["nausea"], true_word if r["vomited"] else false_word,
                  bp[0], bp[1], None, None, r["heart_rate"], r["adverse_events"], r["notes"]]
        w.writerow(["" if v is None else v for v in values])
        line += 1
        lines_of.append(line)
    text = buf.getvalue()
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    parsed = csv_import.read_csv(data, NY, now=datetime(2026, 7, 1, tzinfo=timezone.utc))
    if zone_style == "naive":  # a generated local time may fall in a DST gap/overlap: refused, never guessed
        assert all(e.column == "taken_at" for e in parsed.errors)
    else:
        assert parsed.errors == []
    got = dict(parsed.rows)
    assert parsed.separator == sep and parsed.total_rows == len(rows)
    for r, n in zip(rows, lines_of):
        if n not in got:
            continue
        d = got[n]
        assert d.taken_at == r["taken_at"]
        assert d.dose_mg == r["dose_mg"] and d.formulation == r["formulation"]
        assert d.administration == r["administration"] and d.context == r["context"]
        assert (d.anxiety_before, d.anxiety_after, d.dissociation, d.nausea, d.heart_rate) == (
            r["anxiety_before"], r["anxiety_after"], r["dissociation"], r["nausea"], r["heart_rate"])
        assert d.vomited is r["vomited"]
        assert (d.bp_systolic_pre, d.bp_diastolic_pre) == (r["bp"] or (None, None))
        assert d.adverse_events == r["adverse_events"]
        assert (d.notes or None) == r["notes"]


# --- importing (service) -------------------------------------------------------------------------


def test_import_good_file_is_one_batch_then_reimport_skips_duplicates(engine, clinic):
    parsed = read("doses_good.csv")
    with session_scope(engine) as s:
        res = csv_import.import_doses(s, clinic.tina, clinic.a1, parsed, "doses_good.csv")
    assert (res.imported, res.duplicates, res.invalid, res.total) == (4, 0, 0, 4)
    with session_scope(engine) as s:
        batch = s.get(ImportBatch, res.batch_id)
        assert (batch.rows_imported, batch.imported_by_id, batch.filename) == (4, clinic.tina.id, "doses_good.csv")
        rows = s.exec(select(DoseEntry).where(DoseEntry.import_batch_id == res.batch_id)).all()
        assert len(rows) == 4 and {r.source for r in rows} == {"import"}
        assert all(r.plan_id is None for r in rows)  # taken before the fixture plan took effect (60 days ago)
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "import.batch")).first().record_id == str(batch.id)
    with session_scope(engine) as s:
        again = csv_import.import_doses(s, clinic.tina, clinic.a1, read("doses_good.csv"), "doses_good.csv")
    assert (again.imported, again.duplicates) == (0, 4)
    assert count(engine) == 4


def test_invalid_rows_mean_nothing_written(engine, clinic):
    with pytest.raises(csv_import.ImportRejected) as exc, session_scope(engine) as s:
        csv_import.import_doses(s, clinic.tina, clinic.a1, read("doses_bad.csv"), "doses_bad.csv")
    assert "9 invalid rows" in str(exc.value)
    assert count(engine) == 0 and count(engine, ImportBatch) == 0


def test_skip_invalid_imports_the_valid_rows(engine, clinic):
    with session_scope(engine) as s:
        res = csv_import.import_doses(s, clinic.tina, clinic.a1, read("doses_bad.csv"), "doses_bad.csv",
                                      skip_invalid=True)
    assert (res.imported, res.invalid, res.duplicates) == (2, 9, 0)
    assert len(res.errors) >= 9
    with session_scope(engine) as s:
        assert s.get(ImportBatch, res.batch_id).rows_invalid == 9
    assert count(engine) == 2


def test_dry_run_writes_nothing_but_counts(engine, clinic):
    with session_scope(engine) as s:
        res = csv_import.import_doses(s, clinic.tina, clinic.a1, read("doses_good.csv"), "x.csv", dry_run=True)
    assert res.imported == 4 and res.batch_id is None
    assert count(engine) == 0 and count(engine, ImportBatch) == 0


def test_import_respects_care_team(engine, clinic):
    with pytest.raises(PermissionDenied), session_scope(engine) as s:
        csv_import.import_doses(s, clinic.theo, clinic.a1, read("doses_good.csv"), "x.csv")
    assert count(engine) == 0


def test_undo_batch_voids_all_entries_and_allows_reimport(engine, clinic):
    with session_scope(engine) as s:
        res = csv_import.import_doses(s, clinic.tina, clinic.a1, read("doses_good.csv"), "g.csv")
    with session_scope(engine) as s:
        assert csv_import.undo_batch(s, clinic.paul, res.batch_id, "Wrong patient's file") == 4
    assert count(engine) == 4 and count(engine, live_only=True) == 0
    with session_scope(engine) as s:
        batch = s.get(ImportBatch, res.batch_id)
        assert batch.undone_by_id == clinic.paul.id
        assert {r.version for r in s.exec(select(DoseEntry)).all()} == {2}
        assert "import.undo" in s.exec(select(AuditEvent.action)).all()
    with pytest.raises(ValidationError), session_scope(engine) as s:
        csv_import.undo_batch(s, clinic.paul, res.batch_id, "again")
    with session_scope(engine) as s:  # voided rows are not duplicates: the file can come back
        assert csv_import.import_doses(s, clinic.tina, clinic.a1, read("doses_good.csv"), "g.csv").imported == 4


def test_mapping_is_remembered_per_clinic(engine, clinic):
    with session_scope(engine) as s:
        csv_import.save_mapping(s, clinic.tina, {"Date": "taken_at", "Amount (mg)": "dose_mg", "Mood": ""})
    with session_scope(engine) as s:
        assert csv_import.get_mapping(s) == {"date": "taken_at", "amount_(mg)": "dose_mg"}
        csv_import.save_mapping(s, clinic.paul, {"Form": "formulation"})
    with session_scope(engine) as s:
        mapping = csv_import.get_mapping(s)
    assert len(mapping) == 3
    assert read("doses_mapped.csv", mapping=mapping).errors == []
    with pytest.raises(ValidationError), session_scope(engine) as s:
        csv_import.save_mapping(s, clinic.tina, {"Date": "not_a_column"})


# --- the command line -----------------------------------------------------------------------------


@pytest.fixture
def cli(db_url, clinic, monkeypatch):
    monkeypatch.setenv("KAPNOTES_DATABASE_URL", db_url)

    def run(*argv):
        return cli_main(["import-doses", *argv])

    return run


def test_cli_imports_and_reports_counts(cli, engine, capsys):
    assert cli("--patient", "A-001", str(DATA / "doses_semicolon_bom.csv"), "--quiet") == 0
    out = capsys.readouterr()
    assert "imported 3, duplicates 0, invalid 0" in out.out
    assert "extra column 'app_id' ignored" in out.err
    assert cli("--patient", "A-001", str(DATA / "doses_semicolon_bom.csv"), "--quiet") == 0
    assert "imported 0, duplicates 3, invalid 0" in capsys.readouterr().out
    assert count(engine) == 3
    with session_scope(engine) as s:
        batch = s.exec(select(ImportBatch)).first()
        assert batch.imported_by_id is not None  # the care team's therapist (no --user)


def test_cli_invalid_rows_exit_1_and_write_nothing(cli, engine, capsys):
    assert cli("--patient", "A-001", str(DATA / "doses_bad.csv")) == 1
    err = capsys.readouterr().err
    assert "row 3, dose_mg = '0'" in err and "row 5, formulation = 'pill'" in err
    assert "nothing imported" in err
    assert count(engine) == 0 and count(engine, ImportBatch) == 0


def test_cli_skip_invalid(cli, engine, capsys):
    assert cli("--patient", "A-001", str(DATA / "doses_bad.csv"), "--skip-invalid", "--user", "tina") == 0
    out = capsys.readouterr()
    assert "imported 2, duplicates 0, invalid 9" in out.out
    assert "skipped: row 3" in out.err
    assert count(engine) == 2


def test_cli_dry_run_writes_nothing(cli, engine, capsys):
    with session_scope(engine) as s:
        audit_before = s.exec(select(func.count()).select_from(AuditEvent)).one()
    assert cli("--patient", "A-001", str(DATA / "doses_good.csv"), "--dry-run") == 0
    assert "dry run (nothing written): imported 4" in capsys.readouterr().out
    assert count(engine) == 0 and count(engine, ImportBatch) == 0
    with session_scope(engine) as s:
        assert s.exec(select(func.count()).select_from(AuditEvent)).one() == audit_before


def test_cli_unknown_mrn_and_user_outside_team(cli, engine, capsys):
    assert cli("--patient", "NOPE-9", str(DATA / "doses_good.csv")) == 1
    assert "No patient with MRN 'NOPE-9'" in capsys.readouterr().err
    assert cli("--patient", "A-001", str(DATA / "doses_good.csv"), "--user", "theo") == 1
    assert "do not have access" in capsys.readouterr().err
    assert count(engine) == 0


@pytest.mark.slow
def test_killed_import_leaves_nothing_half_imported(db_url, clinic, engine, tmp_path):
    big = tmp_path / "big.csv"
    big_dose_csv(big, 12_000, datetime(2010, 1, 1, 8, tzinfo=timezone.utc), every_hours=3)  # 24 chunks
    env = {**os.environ, "KAPNOTES_DATABASE_URL": db_url, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "kapnotes", "import-doses", "--patient", "A-001", str(big)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = b""
    deadline = time.time() + 120
    while b"writing:" not in seen and time.time() < deadline and proc.poll() is None:
        seen += os.read(proc.stderr.fileno(), 256)
    assert b"writing:" in seen, seen.decode(errors="replace")
    proc.send_signal(signal.SIGKILL)  # mid-way: after the first chunk was written
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the import finished before it could be killed"
    assert count(engine, live_only=True) == 0  # staged rows (if any) are invisible to every reader
    with session_scope(engine) as s:
        assert all(b.status.startswith("staging") for b in s.exec(select(ImportBatch)).all())
    # and the database is healthy: the next import removes the abandoned batch, then imports completely
    with session_scope(engine) as s:
        res = csv_import.import_doses(s, clinic.tina, clinic.a1, csv_import.read_csv(big.read_bytes(), NY), "big.csv")
    assert res.imported == 12_000 and count(engine) == 12_000 and count(engine, ImportBatch) == 1


def test_binary_or_empty_is_a_file_error():
    parsed = csv_import.read_csv(b"taken_at,dose_mg\x00,formulation\n\x00\x81\n", NY)
    assert parsed.file_error and "not a text file" in parsed.errors[0].reason
    assert csv_import.read_csv(b"", NY).file_error
    assert csv_import.read_headers(b"\xff\xfe\x00") == []


def test_cli_uses_the_clinics_saved_mapping(cli, engine, clinic, capsys):
    assert cli("--patient", "A-001", str(DATA / "doses_mapped.csv"), "--quiet") == 1
    assert "no taken_at column" in capsys.readouterr().err
    with session_scope(engine) as s:
        csv_import.save_mapping(s, clinic.tina, {"Date": "taken_at", "Amount (mg)": "dose_mg", "Form": "formulation"})
    assert cli("--patient", "A-001", str(DATA / "doses_mapped.csv"), "--quiet") == 0
    out = capsys.readouterr()
    assert "imported 2, duplicates 0, invalid 0" in out.out
    assert "extra column 'Mood' ignored" in out.err


def test_two_simultaneous_imports_of_one_file_add_each_row_once(engine, clinic):
    from tests.helpers.threads import together

    parsed = read("doses_good.csv")
    results = []

    def worker():
        with session_scope(engine) as s:
            results.append(csv_import.import_doses(s, clinic.tina, clinic.a1, parsed, "same.csv"))

    errors = together(worker, worker)
    assert errors == []
    assert sorted((r.imported, r.duplicates) for r in results) == [(0, 4), (4, 0)]
    assert count(engine) == 4


def test_row_numbers_follow_the_file_when_a_note_spans_lines():
    text = ('taken_at,dose_mg,formulation,notes\n'
            '2026-09-01 19:00,150,odt,"first line\nsecond line"\n'
            '\n'
            '2026-09-02 19:00,150,pill,x\n')
    parsed = csv_import.read_csv(text.encode(), NY)
    assert [n for n, _ in parsed.rows] == [2]
    assert parsed.rows[0][1].notes == "first line\nsecond line"
    assert [(e.row, e.column) for e in parsed.errors] == [(5, "formulation")]


def _csv_bytes(*rows: tuple[str, str]) -> bytes:
    return ("taken_at,dose_mg,formulation\n" + "".join(f"{t},{mg},odt\n" for t, mg in rows)).encode()


def test_a_row_in_the_future_is_refused_beyond_clock_skew():
    """Five minutes of clock skew pass; ten minutes ahead is refused (it used to be a whole day)."""
    from kapnotes.timeutil import utcnow

    now = utcnow().replace(microsecond=0)
    parsed = csv_import.read_csv(_csv_bytes(((now - timedelta(days=1)).isoformat(), "150"),
                                            ((now + timedelta(minutes=10)).isoformat(), "150"),
                                            ((now + timedelta(hours=20)).isoformat(), "150")), NY)
    found = {(e.row, e.column): e.reason for e in parsed.errors}
    assert set(found) == {(3, "taken_at"), (4, "taken_at")}
    assert "in the future" in found[(3, "taken_at")]
    assert [n for n, _ in parsed.rows] == [2]


def test_cli_imports_an_unusual_dose_as_the_file_says_and_warns(cli, engine, tmp_path, capsys):
    from kapnotes.timeutil import utcnow

    day = (utcnow() - timedelta(days=2)).replace(microsecond=0)
    path = tmp_path / "unusual.csv"
    path.write_bytes(_csv_bytes((day.isoformat(), "150"), ((day - timedelta(days=7)).isoformat(), "900")))
    assert cli("--patient", "A-001", str(path), "--quiet") == 0
    out = capsys.readouterr()
    assert "imported 2, duplicates 0, invalid 0" in out.out
    assert ("warning: row 3: 900 mg is above the plan's 150 mg and the protocol's 300 mg ceiling. It is recorded "
            "as the file says") in out.err
    assert "row 2" not in out.err
    with session_scope(engine) as s:
        assert sorted(s.exec(select(DoseEntry.dose_mg)).all()) == [150, 900]


# --- spreadsheets as they come (issue 16) -----------------------------------------------------------


def _read_clean(data: bytes) -> csv_import.ParsedFile:
    """Read ``data`` as a file from New York and check that every row is valid."""
    parsed = csv_import.read_csv(data, NY)
    assert not parsed.errors, parsed.errors
    return parsed


def test_excel_style_semicolon_bom_day_first_file():
    text = ("taken_at;dose_mg;formulation;context;notes\r\n"
            "03/04/2026 19:30;100;ODT;home;first\r\n"
            "25/03/2026 20:00;112,5;odt;home;\r\n")
    parsed = _read_clean(text.encode("utf-8-sig"))
    assert [d.taken_at for _, d in parsed.rows] == [datetime(2026, 4, 3, 23, 30, tzinfo=timezone.utc),
                                                   datetime(2026, 3, 26, 0, 0, tzinfo=timezone.utc)]
    assert parsed.rows[1][1].dose_mg == 112.5
    said = parsed.detected()
    assert "UTF-8 with BOM" in said and "semicolons" in said and "day/month/year" in said and "25/03/2026" in said


def test_windows_1252_month_first_file_keeps_the_accented_name():
    text = ("taken_at,dose_mg,formulation,notes\r\n"
            "3/25/2026 7:30 PM,100,odt,Seen by Zoë Brontë – calm\r\n"
            "4/2/2026 8:05 AM,100,odt,\r\n")
    parsed = _read_clean(text.encode("cp1252"))
    assert parsed.rows[0][1].notes == "Seen by Zoë Brontë – calm"
    assert parsed.rows[0][1].taken_at == datetime(2026, 3, 25, 23, 30, tzinfo=timezone.utc)
    assert parsed.rows[1][1].taken_at == datetime(2026, 4, 2, 12, 5, tzinfo=timezone.utc)
    assert "Windows-1252" in parsed.detected() and "month/day/year" in parsed.detected()


def test_latin1_file_is_read_and_named():
    parsed = csv_import.read_csv("taken_at,dose_mg,formulation,notes\n2026-03-01 10:00,100,odt,Müller\x81\n"
                                 .encode("latin-1"), NY)
    assert not parsed.errors and parsed.rows[0][1].notes.startswith("Müller")
    assert "Latin-1" in parsed.detected() and "ISO" in parsed.detected()


def test_xlsx_written_by_openpyxl():
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["Taken at", "Dose mg", "Formulation", "Vomited", "Heart rate", "Notes"])
    ws.append([datetime(2026, 3, 1, 19, 30), 100, "odt", "no", 72, "Åsa"])
    ws.append(["02/03/2026 20:00", 112.5, "troche", "yes", None, None])
    ws.append(["13/03/2026 20:00", 100, "odt", "no", None, None])
    buf = io.BytesIO()
    wb.save(buf)
    parsed = _read_clean(buf.getvalue())
    assert [n for n, _ in parsed.rows] == [2, 3, 4]  # the sheet's row numbers
    first, second = parsed.rows[0][1], parsed.rows[1][1]
    assert first.taken_at == datetime(2026, 3, 1, 19, 30, tzinfo=NY).astimezone(timezone.utc)
    assert first.heart_rate == 72 and first.notes == "Åsa"
    assert second.dose_mg == 112.5 and second.vomited and second.taken_at.day == 3  # 2 March local + 5 h
    assert "Excel workbook" in parsed.detected() and "day/month/year" in parsed.detected()
    assert csv_import.read_headers(buf.getvalue())[:2] == ["Taken at", "Dose mg"]


def test_tab_separated_file():
    parsed = csv_import.read_csv(b"taken_at\tdose_mg\tformulation\tnotes\n2026-03-01 19:30\t100\todt\ta, b; c\n", NY)
    assert not parsed.errors and parsed.rows[0][1].notes == "a, b; c"
    assert "tabs" in parsed.detected()


def test_ambiguous_dates_ask_for_the_order_and_are_never_guessed():
    data = b"taken_at,dose_mg,formulation\n03/04/2026 10:00,100,odt\n05/06/2026 10:00,100,odt\n"
    parsed = csv_import.read_csv(data, NY)
    assert parsed.needs_date_order and parsed.file_error and not parsed.rows
    assert "choose the order" in parsed.errors[0].reason
    dmy = csv_import.read_csv(data, NY, date_order="dmy", now=datetime(2026, 12, 1, tzinfo=timezone.utc))
    mdy = csv_import.read_csv(data, NY, date_order="mdy", now=datetime(2026, 12, 1, tzinfo=timezone.utc))
    assert [d.taken_at.date().isoformat() for _, d in dmy.rows] == ["2026-04-03", "2026-06-05"]
    assert [d.taken_at.date().isoformat() for _, d in mdy.rows] == ["2026-03-04", "2026-05-06"]
    assert "as chosen" in dmy.detected()


def test_a_file_mixing_date_orders_is_refused():
    parsed = csv_import.read_csv(b"taken_at,dose_mg,formulation\n25/03/2026,100,odt\n3/26/2026,100,odt\n", NY)
    assert parsed.file_error and "one order" in parsed.errors[0].reason


def test_a_chosen_order_the_file_contradicts_is_a_row_error():
    parsed = csv_import.read_csv(b"taken_at,dose_mg,formulation\n25/03/2026 10:00,100,odt\n", NY, date_order="mdy")
    assert parsed.errors[0].row == 2 and parsed.errors[0].column == "taken_at"


def test_header_only_file_says_no_rows():
    parsed = csv_import.read_csv(b"taken_at,dose_mg,formulation\r\n", NY)
    assert parsed.file_error and "no rows" in parsed.errors[0].reason


def test_65_columns_are_refused_before_reading():
    header = ",".join(["taken_at", "dose_mg", "formulation"] + [f"extra {i}" for i in range(62)])
    data = (header + "\n" + "2026-03-01 10:00,100,odt" + "," * 62 + "\n").encode()
    problem = csv_import.upload_problem(data)
    assert problem and "65 columns" in problem and "64" in problem
    assert csv_import.read_headers(data) == []
    assert csv_import.read_csv(data, NY).file_error
    ok = ",".join(["taken_at", "dose_mg", "formulation"] + [f"extra {i}" for i in range(61)])
    assert csv_import.upload_problem((ok + "\n").encode()) is None


def test_too_large_upload_is_refused():
    assert "20 MB" in csv_import.upload_problem(b"x", size=20 * 1024 * 1024 + 1)


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e300", "99999999999999999999999"])
def test_non_finite_or_huge_numbers_are_row_errors(value):
    data = (f"taken_at,dose_mg,formulation,heart_rate,nausea\n"
            f"2026-03-01 10:00,100,odt,{value},{value}\n2026-03-01 11:00,{value},odt,,\n").encode()
    parsed = csv_import.read_csv(data, NY)
    assert not parsed.rows and not parsed.file_error
    assert {(e.row, e.column) for e in parsed.errors} == {(2, "heart_rate"), (2, "nausea"), (3, "dose_mg")}


def test_cli_date_order_option(cli, engine, tmp_path, capsys):
    f = tmp_path / "ambiguous.csv"
    f.write_text("taken_at,dose_mg,formulation\n03/04/2026 19:30,100,odt\n", encoding="utf-8")
    assert cli("--patient", "A-001", str(f), "--quiet") == 1
    assert "--date-order" in capsys.readouterr().err and count(engine) == 0
    assert cli("--patient", "A-001", str(f), "--quiet", "--date-order", "dmy") == 0
    with session_scope(engine) as s:
        taken = s.exec(select(DoseEntry)).one().taken_at
    assert (taken.month, taken.day) == (4, 3) or (taken.month, taken.day) == (4, 4)  # 3 April 19:30 New York


@pytest.mark.slow
def test_largest_allowed_upload_stays_under_500_mb(tmp_path):
    """A 20 MB dose-log file (the upload limit) is read and validated within 500 MB of peak memory.

    Measured in a fresh process (peak resident set size, so the test runner itself does not count).
    """
    row = "2026-03-01 10:{m:02d},100,odt,spit,home,3,2,1,0,no,130,80,128,78,72,,a note about the session\n"
    header = ("taken_at,dose_mg,formulation,administration,context,anxiety_before,anxiety_after,dissociation,"
              "nausea,vomited,bp_systolic_pre,bp_diastolic_pre,bp_systolic_post,bp_diastolic_post,heart_rate,"
              "adverse_events,notes\n")
    big = tmp_path / "big.csv"
    with big.open("w") as f:
        f.write(header)
        size, i = len(header), 0
        limit = csv_import.MAX_UPLOAD_BYTES - 200
        while size < limit and i < csv_import.MAX_ROWS:
            line = row.format(m=i % 60)
            f.write(line)
            size += len(line)
            i += 1
    assert big.stat().st_size > 19 * 1024 * 1024 or i == csv_import.MAX_ROWS
    code = ("import sys; from zoneinfo import ZoneInfo; from kapnotes import csv_import; "
            f"p = csv_import.read_csv(open({str(big)!r}, 'rb').read(), ZoneInfo('America/New_York')); "
            "assert p.total_rows > 100000, p.errors[:3]; "
            # VmHWM: this process's own peak. ru_maxrss would not do: Linux carries it across fork and
            # exec, so it reports the test runner's size when the runner has grown past the import's.
            "print([int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0] // 1024)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    peak_mb = int(out.stdout.strip().splitlines()[-1])
    assert peak_mb <= 500, f"peak {peak_mb} MB"
