"""The non-page benchmarks: summary PDF vs bare ReportLab, bulk export, CSV import, engine, memory."""

from __future__ import annotations

import io
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def median_time(fn, runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def available(module: str, *names: str) -> bool:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError:
        return False
    return all(hasattr(mod, n) for n in names)


# --- (c) treatment summary PDF vs a bare ReportLab document of the same rows -----------------


def bare_reportlab(data) -> bytes:
    """The same rows with no styling, chart, escaping or page furniture: ReportLab's floor."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import LongTable, Paragraph, SimpleDocTemplate, Spacer

    styles = getSampleStyleSheet()
    story = [Paragraph("Treatment summary", styles["Title"])]
    story.append(LongTable([["Version", "Effective", "Dose", "Interval", "Approved by"]] +
                           [[p.version, p.effective, p.dose_mg, p.interval_days, p.approved_by] for p in data.plans],
                           repeatRows=1))
    story.append(LongTable([["Date", "Instrument", "Total", "Band"]] +
                           [[str(s.administered_on), s.instrument, s.total, s.band] for s in data.scores],
                           repeatRows=1))
    header = ["Taken", "mg", "Form", "Context", "Anx", "Anx", "Diss", "Naus", "BP pre", "BP post", "HR", "AE"]
    rows = [[d.taken_at, d.dose_mg, d.formulation, d.context, d.anxiety_before, d.anxiety_after, d.dissociation,
             d.nausea, d.bp_pre, d.bp_post, d.heart_rate, d.adverse_events] for d in data.doses]
    story.append(LongTable([header] + rows, repeatRows=1))
    # the summary also lists the doses that need attention on their own (with the reasons)
    attention = [[a.dose.taken_at, a.dose.dose_mg, a.dose.formulation, a.dose.context, a.dose.anxiety_before,
                  a.dose.anxiety_after, a.dose.dissociation, a.dose.nausea, a.dose.bp_pre, a.dose.bp_post,
                  a.dose.heart_rate, "; ".join(a.reasons)] for a in getattr(data, "attention", [])]
    if attention:
        story.append(LongTable([header] + attention, repeatRows=1))
    for a in data.adjustments:
        story.append(Paragraph(f"{a.created} {a.kind} {a.action} {a.status} {' '.join(a.reasons)}", styles["Normal"]))
    for n in data.notes:
        story.append(Spacer(1, 6))
        story.append(Paragraph(f"{n.session_date} {n.note_type} {n.author}", styles["Heading3"]))
        for key, value in n.fields.items():
            story.append(Paragraph(f"{key}: {value}", styles["Normal"]))
        if n.free_text:
            story.append(Paragraph(n.free_text, styles["Normal"]))
        for ad in n.addenda:
            story.append(Paragraph(f"Addendum {ad.signed_at}: {ad.text}", styles["Normal"]))
    buf = io.BytesIO()
    SimpleDocTemplate(buf, pagesize=A4).build(story)
    return buf.getvalue()


def summary_pdf_bench(clinic, runs: int) -> dict:
    if not available("kapnotes.exports", "gather_summary", "render_summary"):
        return {"available": False}
    from kapnotes import exports
    from kapnotes.auth import load_actor
    from kapnotes.db import make_engine, session_scope

    os.environ["KAPNOTES_DATABASE_URL"] = clinic.url
    engine = make_engine(clinic.url)
    today = date.today()
    with session_scope(engine) as s:
        actor = load_actor(s, clinic.users["tsato"])
        t0 = time.perf_counter()
        # the full dose log and the full notes: the summary then prints every dose and every note, the
        # same rows as the bare document below (the default brief form prints far fewer, which would
        # flatter the ratio)
        data = exports.gather_summary(s, actor, clinic.heavy_patient_id, today - timedelta(days=365), today,
                                      full_dose_log=True, full_notes=True)
        gather = time.perf_counter() - t0
    engine.dispose()
    exports.render_summary(data)  # warm: fonts, imports
    bare_reportlab(data)
    pdf_times, bare_times = [], []
    for _ in range(runs):  # interleaved
        t0 = time.perf_counter()
        pdf = exports.render_summary(data)
        pdf_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        bare_reportlab(data)
        bare_times.append(time.perf_counter() - t0)
    from dataclasses import replace

    from pypdf import PdfReader

    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    # for reference, not timed: the default form (home doses by week)
    pages_weekly = len(PdfReader(io.BytesIO(exports.render_summary(replace(data, full_dose_log=False,
                                                                           full_notes=False)))).pages)
    return {"available": True, "pdf_s": statistics.median(pdf_times), "bare_s": statistics.median(bare_times),
            "gather_s": gather, "pages": pages, "pages_weekly": pages_weekly, "doses": len(data.doses),
            "notes": len(data.notes), "scores": len(data.scores), "runs": runs, "form": "full dose log and notes"}


# --- bulk export: all cores vs one worker -------------------------------------------------------


def _cli_help(command: str) -> str:
    out = subprocess.run([sys.executable, "-m", "kapnotes", command, "--help"], cwd=ROOT, capture_output=True,
                         text=True)
    return out.stdout if out.returncode == 0 else ""


def measured_child(cmd: list[str], env: dict) -> tuple[float, float, int, str]:
    """Run ``cmd`` under bench.memprobe: (wall seconds, peak RSS MB of any process, status, stderr)."""
    probe = [sys.executable, "-m", "bench.memprobe", "--", *cmd]
    t0 = time.perf_counter()
    out = subprocess.run(probe, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak = 0.0
    for line in out.stdout.splitlines():
        if line.startswith("MEMPROBE peak_mb="):
            peak = float(line.split("=", 1)[1])
    return wall, peak, out.returncode, out.stderr[-500:]


def bulk_export_bench(clinic, runs: int) -> dict:
    help_text = _cli_help("export-pdf")
    if "--all" not in help_text:
        return {"available": False}
    workers_flag = next((f for f in ("--workers", "--jobs", "--processes") if f in help_text), None)
    env = {**os.environ, "KAPNOTES_DATABASE_URL": clinic.url}
    result: dict = {"available": True, "patients": clinic.patients, "workers_flag": workers_flag, "runs": runs}
    today = date.today()
    rng = ["--from", (today - timedelta(days=365)).isoformat(), "--to", today.isoformat()] \
        if "--from" in help_text else []
    result["range"] = "1 year" if rng else "full record"

    def once(extra: list[str]) -> tuple[float, float]:
        out_dir = tempfile.mkdtemp(prefix="kap-bulk-")
        try:
            wall, peak, status, err = measured_child(
                [sys.executable, "-m", "kapnotes", "export-pdf", "--all", "--out-dir", out_dir, *rng, *extra], env)
            if status != 0:
                raise RuntimeError(f"export-pdf --all failed ({status}): {err}")
            result["files"] = len(list(Path(out_dir).rglob("*.pdf")))
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)
        return wall, peak

    all_runs, one_runs = [], []
    for _ in range(runs):  # interleaved, so machine noise hits both alike
        all_runs.append(once([]))
        if workers_flag:
            one_runs.append(once([workers_flag, "1"]))
    result["all_cores_s"] = statistics.median(w for w, _ in all_runs)
    result["all_cores_peak_mb"] = max(p for _, p in all_runs)
    if one_runs:
        result["one_worker_s"] = statistics.median(w for w, _ in one_runs)
        result["one_worker_peak_mb"] = max(p for _, p in one_runs)
    result["cores"] = os.cpu_count()
    return result


# --- (d) CSV import of 10,000 rows ----------------------------------------------------------------


def _csv_rows(n: int) -> str:
    from kapnotes.doses import CSV_COLUMNS

    start = datetime(2019, 1, 1, 8, 0, tzinfo=timezone.utc)
    values = {
        "dose_mg": "150", "formulation": "odt", "administration": "spit", "context": "home",
        "anxiety_before": "6", "anxiety_after": "3", "dissociation": "4", "nausea": "1", "vomited": "no",
        "bp_systolic_pre": "124", "bp_diastolic_pre": "80", "bp_systolic_post": "136", "bp_diastolic_post": "86",
        "heart_rate": "78", "adverse_events": "", "notes": "imported from the patient's app",
    }
    lines = [",".join(CSV_COLUMNS)]
    for i in range(n):
        row = dict(values, taken_at=(start + timedelta(hours=6 * i)).isoformat())
        lines.append(",".join(row.get(c, "") for c in CSV_COLUMNS))
    return "\n".join(lines) + "\n"


def csv_import_bench(database_url: str | None, runs: int, rows: int = 10_000) -> dict:
    if not available("kapnotes.csv_import", "read_csv", "import_doses"):
        return {"available": False}
    from kapnotes import csv_import
    from kapnotes.auth import load_actor
    from kapnotes.config import get_settings
    from kapnotes.db import make_engine, migrate, session_scope
    from kapnotes.seed import seed_demo

    data = _csv_rows(rows).encode("utf-8")
    tz = get_settings().tz
    times, parse_times = [], []
    for i in range(runs):
        url, cleanup = _scratch_db(database_url, f"csvimp{i}")
        try:
            migrate(url)
            engine = make_engine(url)
            seed_demo(engine, patients=8, years=0.2, seed=1)
            with session_scope(engine) as s:
                from sqlalchemy import select

                from kapnotes.models import Patient, User

                actor = load_actor(s, s.execute(select(User.id).where(User.username == "tsato")).scalar_one())
                pid = s.execute(select(Patient.id).where(Patient.mrn == "KAP-1002")).scalar_one()
            t0 = time.perf_counter()
            parsed = csv_import.read_csv(data, tz)
            t1 = time.perf_counter()
            with session_scope(engine) as s:
                result = csv_import.import_doses(s, actor, pid, parsed, "bench.csv")
            t2 = time.perf_counter()
            imported = getattr(result, "imported", None) or getattr(result, "rows_imported", None)
            if imported is not None and imported != rows:
                raise RuntimeError(f"imported {imported} of {rows} rows")
            parse_times.append(t1 - t0)
            times.append(t2 - t0)
            engine.dispose()
        finally:
            cleanup()
    total = statistics.median(times)
    return {"available": True, "rows": rows, "total_s": total, "parse_s": statistics.median(parse_times),
            "rows_per_s": rows / total, "runs": runs}


def _scratch_db(database_url: str | None, name: str):
    from sqlalchemy.engine import make_url

    if database_url and make_url(database_url).get_backend_name() == "postgresql":
        from bench.clinic import _pg_url, _recreate_pg

        db = f"{make_url(database_url).database or 'kapnotes'}_{name}"
        _recreate_pg(database_url, db)
        return _pg_url(database_url, db), (lambda: None)
    tmp = Path(tempfile.mkdtemp(prefix="kap-bench-"))
    return f"sqlite:///{tmp / 'scratch.db'}", (lambda: shutil.rmtree(tmp, ignore_errors=True))


# --- the rules engine over every patient -------------------------------------------------------------


def engine_bench(clinic, runs: int) -> dict:
    """The rules engine for every patient: ``suggestions.evaluate`` (facts from the database, the
    pure engine) per patient when the workflow exists, else bulk-loaded facts and the pure engine."""
    if available("kapnotes.dosing.suggestions", "evaluate") and available("kapnotes.dosing.protocol", "in_force"):
        return _engine_via_service(clinic, runs)
    return _engine_pure(clinic, runs)


def _engine_via_service(clinic, runs: int) -> dict:
    from sqlalchemy import select

    from kapnotes.db import make_engine
    from kapnotes.dosing import protocol_settings as protocol
    from kapnotes.dosing import suggestions
    from kapnotes.models import Patient

    os.environ["KAPNOTES_DATABASE_URL"] = clinic.url
    db = make_engine(clinic.url)
    result: dict = {}

    def once() -> None:
        from sqlmodel import Session

        with Session(db) as s:
            proto = protocol.in_force(s)
            ids = list(s.execute(select(Patient.id).order_by(Patient.id)).scalars())
            actions: dict[str, int] = {}
            for pid in ids:
                out = suggestions.evaluate(s, pid, proto=proto)
                if out is not None:
                    actions[out[1].action] = actions.get(out[1].action, 0) + 1
                s.expunge_all()
            result.update(patients=len(ids), evaluated=sum(actions.values()), actions=actions)

    med, _ = median_time(once, runs)
    db.dispose()
    return {"available": True, "how": "suggestions.evaluate per patient", "total_s": med,
            "patients": result["patients"], "evaluated": result["evaluated"], "actions": result["actions"],
            "patients_per_s": result["patients"] / med if med else None, "runs": runs}


def _engine_pure(clinic, runs: int) -> dict:
    if not available("kapnotes.dosing.rules", "suggest", "PlanFacts", "DoseFacts", "AssessmentFacts"):
        return {"available": False}
    from kapnotes.db import make_engine
    from kapnotes.dosing import rules
    from kapnotes.dosing.protocol import load_default

    protocol = load_default()
    db = make_engine(clinic.url)
    counts: dict = {}

    def once() -> None:
        from sqlalchemy import func, select

        from kapnotes.models import Assessment, DoseEntry, TreatmentPlan

        today = date.today()
        with db.connect() as conn:
            latest = select(TreatmentPlan.patient_id, func.max(TreatmentPlan.version_number).label("v")) \
                .group_by(TreatmentPlan.patient_id).subquery()
            plans = conn.execute(
                select(TreatmentPlan.patient_id, TreatmentPlan.dose_mg, TreatmentPlan.interval_days,
                       TreatmentPlan.effective_from, TreatmentPlan.status)
                .join(latest, (latest.c.patient_id == TreatmentPlan.patient_id)
                      & (latest.c.v == TreatmentPlan.version_number))).all()
            active = {p.patient_id: p for p in plans if p.status == "active"}
            since = datetime.combine(today - timedelta(days=60), datetime.min.time(), timezone.utc)
            doses: dict[int, list] = {}
            for d in conn.execute(select(DoseEntry.patient_id, DoseEntry.taken_at, DoseEntry.dose_mg,
                                         DoseEntry.vomited, DoseEntry.nausea, DoseEntry.bp_systolic_pre,
                                         DoseEntry.bp_diastolic_pre, DoseEntry.bp_systolic_post,
                                         DoseEntry.bp_diastolic_post, DoseEntry.adverse_events)
                                  .where(DoseEntry.taken_at >= since, DoseEntry.voided_at.is_(None))):
                doses.setdefault(d.patient_id, []).append(rules.DoseFacts(
                    d.taken_at, d.dose_mg, bool(d.vomited), d.nausea, d.bp_systolic_pre, d.bp_diastolic_pre,
                    d.bp_systolic_post, d.bp_diastolic_post,
                    tuple(t for t in (d.adverse_events or "").split(";") if t)))
            scores: dict[int, list] = {}
            for a in conn.execute(select(Assessment.patient_id, Assessment.instrument, Assessment.administered_on,
                                         Assessment.total, Assessment.items).where(Assessment.voided_at.is_(None))):
                scores.setdefault(a.patient_id, []).append(rules.AssessmentFacts(
                    a.instrument, a.administered_on, a.total, tuple(a.items) if a.items else None))
        actions: dict[str, int] = {}
        for pid, plan in active.items():
            facts = rules.PlanFacts(plan.dose_mg, plan.interval_days, plan.effective_from.date())
            s = rules.suggest(facts, doses.get(pid, []), scores.get(pid, []), protocol, today)
            actions[s.action] = actions.get(s.action, 0) + 1
        counts["patients"] = len(active)
        counts["actions"] = actions

    med, _ = median_time(once, runs)
    db.dispose()
    return {"available": True, "how": "bulk-loaded facts, pure engine", "total_s": med,
            "patients": counts["patients"], "actions": counts["actions"],
            "patients_per_s": counts["patients"] / med if med else None, "runs": runs}


# --- (e) peak memory of the app process ---------------------------------------------------------


def app_memory(clinic) -> dict:
    env = {**os.environ, "KAPNOTES_DATABASE_URL": clinic.url}
    wall, peak, status, err = measured_child([sys.executable, "-m", "bench.app_process", clinic.url], env)
    if status != 0:
        return {"available": False, "error": err}
    return {"available": True, "peak_mb": peak, "wall_s": wall}


def self_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
