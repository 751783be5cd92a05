"""``python -m kapnotes export-pdf``: one patient, every patient in worker processes, resumable."""

from __future__ import annotations

import io
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlmodel import select

from kapnotes.cli import main
from kapnotes.cli.export import Outcome, Progress
from kapnotes.db import make_engine, session_scope
from kapnotes.exports import file_stem
from kapnotes.models import AuditEvent, DoseEntry
from tests.helpers.cli import kap, kap_process
from tests.unit.pdf_data import build_world, flat, qpdf_ok

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli_db(db_url, engine, clinic, monkeypatch):
    monkeypatch.setenv("KAPNOTES_DATABASE_URL", db_url)
    build_world(engine, clinic, days=30)
    return db_url


def exports_audited(engine) -> list[AuditEvent]:
    with session_scope(engine) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == "export.summary_pdf")
                           .order_by(AuditEvent.id)).all())


def test_one_patient(cli_db, engine, clinic, tmp_path, capsys):
    out = tmp_path / "a1.pdf"
    assert main(["export-pdf", "--patient", "A-001", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    qpdf_ok(out.read_bytes(), tmp_path)
    text = flat("\n".join(p.extract_text() for p in PdfReader(io.BytesIO(out.read_bytes())).pages))
    assert "Treatment summary" in text and "Alice Able" in text
    assert "Generated" in text and "by KAPNotes operator (command line)" in text
    [ev] = exports_audited(engine)
    assert ev.actor_id is None and ev.actor_username == "system" and ev.patient_id == clinic.a1


def test_date_range(cli_db, engine, tmp_path):
    out = tmp_path / "r.pdf"
    today = datetime.now(UTC).date()
    d_from, d_to = today - timedelta(days=10), today - timedelta(days=1)
    assert main(["export-pdf", "--patient", "A-001", "--from", d_from.isoformat(), "--to", d_to.isoformat(),
                 "--out", str(out)]) == 0
    text = flat("\n".join(p.extract_text() for p in PdfReader(io.BytesIO(out.read_bytes())).pages))
    assert f"Period {d_from.isoformat()} to {d_to.isoformat()}" in text
    [ev] = exports_audited(engine)
    assert f"from={d_from.isoformat()};to={d_to.isoformat()}" in ev.detail


@pytest.mark.slow
def test_full_dose_log_flag(cli_db, engine, clinic, tmp_path):
    """By default home doses print by week; --full-dose-log prints every dose (one patient and --all)."""
    weekly, full = tmp_path / "weekly.pdf", tmp_path / "full.pdf"
    assert main(["export-pdf", "--patient", "A-001", "--out", str(weekly)]) == 0
    assert main(["export-pdf", "--patient", "A-001", "--full-dose-log", "--out", str(full)]) == 0
    text = {p: flat("\n".join(pg.extract_text() for pg in PdfReader(io.BytesIO(p.read_bytes())).pages))
            for p in (weekly, full)}
    with session_scope(engine) as s:
        taken = [t for t in s.exec(select(DoseEntry.taken_at).where(DoseEntry.patient_id == clinic.a1,
                                                                    DoseEntry.voided_at.is_(None))).all()]
    assert "Home doses by week" in text[weekly] and "--full-dose-log" in text[weekly]
    assert "Every dose is listed (the full log)." in text[full] and "Home doses by week" not in text[full]
    # the full log adds exactly one row per dose; the rest (attention table, notes) is the same
    assert text[full].count("ODT, Spit") - text[weekly].count("ODT, Spit") == len(taken) > 0
    out_dir = tmp_path / "bulk"
    assert main(["export-pdf", "--all", "--out-dir", str(out_dir), "--jobs", "1", "--full-dose-log"]) == 0
    bulk = (out_dir / f"{file_stem('A-001')}.pdf").read_bytes()
    assert "Every dose is listed (the full log)." in flat("\n".join(
        pg.extract_text() for pg in PdfReader(io.BytesIO(bulk)).pages))


def _text(path: Path) -> str:
    return flat("\n".join(pg.extract_text() for pg in PdfReader(io.BytesIO(path.read_bytes())).pages))


@pytest.mark.slow
def test_full_notes_flag(cli_db, engine, clinic, tmp_path):
    """By default signed notes print one row each; --full-notes prints them in full (one patient, and
    --all, where a summary made in the other form is not skipped as unchanged; the worker processes of
    --jobs N are tested below)."""
    from kapnotes.models import NoteStatus, SessionNote

    brief, full = tmp_path / "brief.pdf", tmp_path / "full.pdf"
    assert main(["export-pdf", "--patient", "A-001", "--out", str(brief)]) == 0
    assert main(["export-pdf", "--patient", "A-001", "--full-notes", "--out", str(full)]) == 0
    text = {p: _text(p) for p in (brief, full)}
    with session_scope(engine) as s:
        signed = s.exec(select(SessionNote.id).where(SessionNote.patient_id == clinic.a1,
                                                     SessionNote.status == NoteStatus.signed)).all()
    assert len(signed) == 2
    assert "Session notes in brief" in text[brief] and "--full-notes" in text[brief]
    assert text[brief].count("verified") == len(signed) and "KAP dosing session note" not in text[brief]
    assert "Session notes in brief" not in text[full] and "verified" not in text[full]
    assert "KAP dosing session note" in text[full] and "Line one of the free text." in text[full]
    assert "Electronically signed" in text[full]
    assert len(PdfReader(io.BytesIO(full.read_bytes())).pages) > len(PdfReader(io.BytesIO(brief.read_bytes())).pages)
    out_dir = tmp_path / "bulk"
    cmd = ["export-pdf", "--all", "--out-dir", str(out_dir), "--jobs", "1"]
    for extra, written, form in (([], 3, "Session notes in brief"), (["--full-notes"], 3, "KAP dosing session note"),
                                 (["--full-notes"], 0, "KAP dosing session note")):
        run = kap(cli_db, *cmd, *extra)
        assert run.returncode == 0, run.stderr
        assert f"{written} written, {3 - written} unchanged (skipped)" in run.stdout
        assert form in _text(out_dir / f"{file_stem('A-001')}.pdf")


@pytest.mark.parametrize(("argv", "message"), [
    (["--patient", "NOPE", "--out", "x.pdf"], "No patient with MRN 'NOPE'"),
    (["--patient", "A-001", "--from", "2026-13-01", "--out", "x.pdf"], "'2026-13-01' is not a valid date"),
    (["--patient", "A-001", "--from", "2026-05-02", "--to", "2026-05-01", "--out", "x.pdf"], "is after --to"),
    (["--patient", "A-001"], "--patient needs --out FILE.pdf"),
    (["--all"], "--all needs --out-dir DIR"),
])
def test_bad_input_is_refused(cli_db, engine, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(["export-pdf", *argv]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.pdf").exists()
    assert exports_audited(engine) == []


@pytest.mark.slow
def test_all_patients_in_workers_is_resumable(cli_db, engine, clinic, tmp_path):
    out_dir = tmp_path / "bulk"
    cmd = ["export-pdf", "--all", "--out-dir", str(out_dir), "--jobs", "2"]
    first = kap_process(cli_db, *cmd)  # the real command: its own process, then its worker processes
    assert first.returncode == 0, first.stderr
    assert "3 written, 0 unchanged (skipped), 0 failed" in first.stdout
    assert "[##############################] 3/3 patients" in first.stderr  # the progress bar
    pdfs = sorted(out_dir.glob("*.pdf"))
    assert [p.name for p in pdfs] == ["summary-A-001.pdf", "summary-A-002.pdf", "summary-B-001.pdf"]
    for p in pdfs:
        qpdf_ok(p.read_bytes(), tmp_path)
        assert (out_dir / (p.name + ".sha256")).read_text().strip()
    assert len(exports_audited(engine)) == 3
    before = {p.name: p.stat().st_mtime_ns for p in pdfs}

    again = kap(cli_db, *cmd[:-2], "--jobs", "1")  # the same skip, with no worker processes to start
    assert again.returncode == 0, again.stderr
    assert "0 written, 3 unchanged (skipped), 0 failed" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in sorted(out_dir.glob("*.pdf"))} == before
    assert len(exports_audited(engine)) == 3  # nothing exported, nothing audited

    # new data for A-001 only: only its PDF is rebuilt (a dose with vomiting: printed on its own line)
    with session_scope(engine) as s:
        s.add(DoseEntry(patient_id=clinic.a1, taken_at=datetime.now(UTC) - timedelta(hours=2), dose_mg=150,
                        formulation="odt", context="home", vomited=True, entered_by_id=clinic.tina.id,
                        notes="NEW-DOSE-ROW"))
    third = kap(cli_db, *cmd[:-2], "--jobs", "1")
    assert third.returncode == 0, third.stderr
    assert "1 written, 2 unchanged (skipped), 0 failed" in third.stdout
    a1 = out_dir / "summary-A-001.pdf"
    assert a1.stat().st_mtime_ns != before["summary-A-001.pdf"]
    assert "NEW-DOSE-ROW" in "".join(p.extract_text() for p in PdfReader(a1).pages)
    assert (out_dir / "summary-B-001.pdf").stat().st_mtime_ns == before["summary-B-001.pdf"]
    assert not list(out_dir.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_a_stale_or_missing_sidecar_rebuilds(cli_db, tmp_path, capsys):
    out_dir = tmp_path / "bulk"
    assert main(["export-pdf", "--all", "--out-dir", str(out_dir), "--jobs", "1"]) == 0
    (out_dir / "summary-A-002.pdf.sha256").write_text("not-the-fingerprint\n")
    (out_dir / "summary-B-001.pdf").unlink()
    capsys.readouterr()
    assert main(["export-pdf", "--all", "--out-dir", str(out_dir), "--jobs", "1"]) == 0
    assert "2 written, 1 unchanged (skipped), 0 failed" in capsys.readouterr().out


def test_file_names_are_safe_and_distinct():
    assert file_stem("KAP-1001") == "summary-KAP-1001"
    odd = {file_stem(m) for m in ("../etc/passwd", "A/1", "A_1", "A 1", "é")}
    assert len(odd) == 5
    for stem in odd:
        assert "/" not in stem and ".." not in stem and " " not in stem


def test_progress_bar_counts():
    buf = io.StringIO()
    bar = Progress(4, stream=buf)
    for status in ("written", "skipped", "failed", "written"):
        bar.update(Outcome("X", status))
    lines = buf.getvalue().splitlines()
    assert lines[-1].startswith("[##############################] 4/4 patients (2 written, 1 unchanged, 1 failed)")


def test_bulk_chunks_hold_every_patient_exactly_once_heaviest_first():
    from kapnotes.cli.export import plan_chunks

    patients = [(i, f"MRN{i:03d}") for i in range(1, 101)]
    weights = {i: (i * 37) % 101 for i in range(1, 101)}
    for jobs in (1, 2, 3, 8, 64):
        chunks = plan_chunks(patients, weights, jobs)
        flat_ids = [pid for chunk in chunks for pid, _ in chunk]
        assert sorted(flat_ids) == list(range(1, 101)) and len(flat_ids) == 100
        assert all(chunks)
        assert [weights[pid] for pid in flat_ids] == sorted((weights[pid] for pid in flat_ids), reverse=True)
    assert plan_chunks([], {}, 4) == []
    assert plan_chunks(patients[:3], {}, 4) == [[p] for p in patients[:3]]


# --- export-fhir and export-doses ------------------------------------------------------------


def test_export_fhir_one_patient(cli_db, engine, clinic, tmp_path, capsys):
    import json

    from fhir.resources.R4B.bundle import Bundle

    from kapnotes.fhir import unresolved_references

    out = tmp_path / "a1.json"
    assert main(["export-fhir", "--patient", "A-001", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    bundle = json.loads(out.read_text(encoding="utf-8"))
    Bundle.model_validate(bundle)
    assert bundle["type"] == "collection" and unresolved_references(bundle) == []
    assert "PRIVATE-PROCESS-NOTE" not in out.read_text(encoding="utf-8")
    with session_scope(engine) as s:
        [ev] = s.exec(select(AuditEvent).where(AuditEvent.action == "export.fhir")).all()
    assert ev.actor_username == "system" and ev.patient_id == clinic.a1


def test_export_fhir_all(cli_db, engine, tmp_path, capsys):
    out_dir = tmp_path / "fhir"
    assert main(["export-fhir", "--all", "--out-dir", str(out_dir)]) == 0
    assert "3 written, 0 failed" in capsys.readouterr().out
    assert sorted(p.name for p in out_dir.iterdir()) == ["fhir-A-001.json", "fhir-A-002.json", "fhir-B-001.json"]


@pytest.mark.parametrize(("argv", "message"), [
    (["export-fhir", "--patient", "NOPE", "--out", "x.json"], "No patient with MRN 'NOPE'"),
    (["export-fhir", "--patient", "A-001"], "--patient needs --out FILE.json"),
    (["export-fhir", "--all"], "--all needs --out-dir DIR"),
    (["export-fhir", "--patient", "A-001", "--out", "missing/x.json"], "does not exist"),
    (["export-doses", "--patient", "NOPE", "--out", "x.csv"], "No patient with MRN 'NOPE'"),
    (["export-doses", "--patient", "A-001", "--from", "2026-05-02", "--to", "2026-05-01", "--out", "x.csv"],
     "is after --to"),
])
def test_interop_bad_input_is_refused(cli_db, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("x.*"))


def test_export_doses_round_trips(cli_db, engine, clinic, tmp_path, capsys):
    from kapnotes.doses import CSV_COLUMNS

    with session_scope(engine) as s:  # the world logs a home dose at the in-session dose's very minute:
        clash = s.exec(select(DoseEntry).where(DoseEntry.patient_id == clinic.a1, DoseEntry.source == "session")).one()
        home = s.exec(select(DoseEntry).where(DoseEntry.patient_id == clinic.a1, DoseEntry.id != clash.id,
                                             DoseEntry.taken_at == clash.taken_at)).one()
        home.taken_at = home.taken_at + timedelta(hours=5)  # the importer would rightly call it a duplicate
        s.add(home)
    out = tmp_path / "a1.csv"
    assert main(["export-doses", "--patient", "A-001", "--out", str(out)]) == 0
    with session_scope(engine) as s:
        live = s.exec(select(DoseEntry).where(DoseEntry.patient_id == clinic.a1, DoseEntry.voided_at.is_(None))
                      .order_by(DoseEntry.taken_at, DoseEntry.id)).all()
        [ev] = s.exec(select(AuditEvent).where(AuditEvent.action == "export.dose_csv")).all()
    assert f"wrote {out} ({len(live)} doses)" in capsys.readouterr().out
    assert ev.actor_username == "system"
    assert out.read_text(encoding="utf-8").splitlines()[0] == ",".join(CSV_COLUMNS)
    # the operator's import of the file into another patient (the care team's therapist records it)
    assert main(["import-doses", "--patient", "A-002", str(out)]) == 0
    with session_scope(engine) as s:
        copy = s.exec(select(DoseEntry).where(DoseEntry.patient_id == clinic.a2)
                      .order_by(DoseEntry.taken_at, DoseEntry.id)).all()
    assert len(copy) == len(live)
    for x, y in zip(live, copy, strict=True):
        assert [getattr(x, c) for c in CSV_COLUMNS] == [getattr(y, c) for c in CSV_COLUMNS]


def test_one_process_exports_from_each_database_it_is_given(tmp_path, sqlite_clinic_template):
    """The exporting engine is per database: a process that runs the command on two databases (a test
    run, a script) reads each one, not the first one it opened."""
    template, clinic = sqlite_clinic_template
    for name in ("first", "second"):
        path = tmp_path / f"{name}.db"
        shutil.copy(template, path)
        engine = make_engine(f"sqlite:///{path}")
        with session_scope(engine) as s:
            s.add(DoseEntry(patient_id=clinic.a1, taken_at=datetime.now(UTC) - timedelta(hours=2), dose_mg=150,
                            formulation="odt", context="home", vomited=True, entered_by_id=clinic.tina.id,
                            notes=f"FROM-THE-{name.upper()}-DATABASE"))
        engine.dispose()
        done = kap(f"sqlite:///{path}", "export-pdf", "--all", "--out-dir", str(tmp_path / name), "--jobs", "1")
        assert done.returncode == 0, done.stderr
        assert f"FROM-THE-{name.upper()}-DATABASE" in _text(tmp_path / name / "summary-A-001.pdf")
