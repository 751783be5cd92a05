"""``export-pdf``: a treatment-summary PDF for one patient, or for every patient in parallel.

    python -m kapnotes export-pdf --patient MRN [--from DATE] [--to DATE] [--full-dose-log] [--full-notes]
        --out FILE.pdf
    python -m kapnotes export-pdf --all --out-dir DIR [--from DATE] [--to DATE] [--full-dose-log] [--full-notes]
        [--jobs N]

Home doses print by week unless ``--full-dose-log`` (every dose on its own line); signed
notes print as one table row each unless ``--full-notes`` (every note in full).

The command line is the clinic's operator (no signed-in user); every export is audited as
"system". Bulk export runs in worker processes (all cores by default) with a progress bar
on stderr, and is resumable: each PDF has a sidecar ``<name>.pdf.sha256`` holding the
fingerprint of the data it was built from, and a patient whose data has not changed since
is skipped. Files are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import date
from multiprocessing import get_context
from pathlib import Path

from kapnotes.errors import KapError, ValidationError
from kapnotes.exports import file_stem
from kapnotes.timeutil import parse_date

SIDECAR_SUFFIX = ".sha256"


def register(sub) -> None:
    p = sub.add_parser(
        "export-pdf",
        help="export treatment-summary PDFs (one patient, or every patient with --all)",
        description="Export a treatment-summary PDF for one patient (--patient MRN --out FILE.pdf) or for "
        "every patient (--all --out-dir DIR). Default period: the patient's whole record.",
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--patient", metavar="MRN", help="the patient's record number")
    who.add_argument("--all", action="store_true", help="every patient, one PDF each, in --out-dir")
    p.add_argument("--from", dest="date_from", metavar="DATE", help="first day of the period, YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="last day of the period, YYYY-MM-DD")
    p.add_argument("--out", metavar="FILE.pdf", help="output file (with --patient)")
    p.add_argument("--out-dir", metavar="DIR", help="output folder (with --all)")
    p.add_argument("--jobs", type=int, default=0, help="worker processes for --all (default: all cores)")
    p.add_argument("--full-dose-log", action="store_true",
                   help="print every dose on its own line (default: home doses by week; doses that need "
                        "attention are always listed one by one)")
    p.add_argument("--full-notes", action="store_true",
                   help="print every signed note in full (default: one table row per note)")
    p.set_defaults(func=cmd_export_pdf)
    register_interop(sub)


def _dates(args) -> tuple[date | None, date | None]:
    d_from = parse_date(args.date_from, "from") if args.date_from else None
    d_to = parse_date(args.date_to, "to") if args.date_to else None
    if d_from and d_to and d_from > d_to:
        raise ValidationError({"from": f"--from {d_from.isoformat()} is after --to {d_to.isoformat()}."})
    return d_from, d_to


def cmd_export_pdf(args) -> int:
    d_from, d_to = _dates(args)
    if args.all:
        if not args.out_dir:
            raise ValidationError({"out_dir": "--all needs --out-dir DIR."})
        if args.out:
            raise ValidationError({"out": "--out is for one patient; use --out-dir with --all."})
        return export_all(Path(args.out_dir), d_from, d_to, jobs=args.jobs or os.cpu_count() or 1,
                          full_dose_log=args.full_dose_log, full_notes=args.full_notes)
    if not args.out:
        raise ValidationError({"out": "--patient needs --out FILE.pdf."})
    return export_one(args.patient, Path(args.out), d_from, d_to, full_dose_log=args.full_dose_log,
                      full_notes=args.full_notes)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def export_one(mrn: str, out: Path, d_from: date | None, d_to: date | None, full_dose_log: bool = False,
               full_notes: bool = False) -> int:
    from kapnotes import exports
    from kapnotes.db import make_engine, session_scope

    if out.parent and not out.parent.exists():
        raise ValidationError({"out": f"The folder {str(out.parent)!r} does not exist."})
    engine = make_engine()
    with session_scope(engine) as session:
        pid = exports.patient_id_for_mrn(session, mrn)
        data = exports.gather_summary(session, None, pid, d_from, d_to, as_operator=True,
                                      full_dose_log=full_dose_log, full_notes=full_notes)
    pdf = exports.render_summary(data)
    with session_scope(engine) as session:
        exports.record_summary_export(session, None, pid, data)
    _write_atomic(out, pdf)
    print(f"wrote {out} ({len(pdf):,} bytes, {data.date_from.isoformat()} to {data.date_to.isoformat()})")
    return 0


# --- bulk ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    mrn: str
    status: str  # "written" | "skipped" | "failed"
    message: str = ""


def _worker_engine():
    """The process's engine for the configured database: one per URL, kept for the worker's next
    patients (a process that runs the command twice, on two databases, gets the right one each time)."""
    from kapnotes.db import shared_engine

    return shared_engine()


def export_patient(patient_id: int, mrn: str, out_dir: str, d_from: date | None, d_to: date | None,
                   full_dose_log: bool = False, full_notes: bool = False) -> Outcome:
    """One patient's summary (runs in a worker process). Skips it when the data is unchanged."""
    from kapnotes import exports
    from kapnotes.db import session_scope

    try:
        engine = _worker_engine()
        pdf_path = Path(out_dir) / f"{file_stem(mrn)}.pdf"
        sidecar = pdf_path.with_name(pdf_path.name + SIDECAR_SUFFIX)
        with session_scope(engine) as session:
            data = exports.gather_summary(session, None, patient_id, d_from, d_to, as_operator=True,
                                          full_dose_log=full_dose_log, full_notes=full_notes)
        fp = exports.fingerprint(data)
        if pdf_path.exists() and sidecar.exists() and sidecar.read_text(encoding="utf-8").strip() == fp:
            return Outcome(mrn, "skipped")
        pdf = exports.render_summary(data)  # no transaction open while building
        with session_scope(engine) as session:
            exports.record_summary_export(session, None, patient_id, data)
        _write_atomic(pdf_path, pdf)
        _write_atomic(sidecar, (fp + "\n").encode("utf-8"))
        return Outcome(mrn, "written")
    except KapError as exc:
        return Outcome(mrn, "failed", str(exc))
    except Exception as exc:  # noqa: BLE001 - one bad patient must not stop the others
        return Outcome(mrn, "failed", f"{type(exc).__name__}: {exc}")


def export_chunk(items: list[tuple[int, str]], out_dir: str, d_from: date | None,
                 d_to: date | None, full_dose_log: bool = False, full_notes: bool = False) -> list[Outcome]:
    """Several patients in one worker call: one round trip to the pool per chunk, not per patient."""
    return [export_patient(pid, mrn, out_dir, d_from, d_to, full_dose_log, full_notes) for pid, mrn in items]


def plan_chunks(patients: list[tuple[int, str]], weights: dict[int, int], jobs: int,
                per_worker: int = 6) -> list[list[tuple[int, str]]]:
    """Split the patients into chunks for ``jobs`` workers, heaviest records first.

    Every patient lands in exactly one chunk. Patients are ordered by weight (heaviest
    first, then by MRN) and cut into about ``jobs * per_worker`` chunks of consecutive
    patients, so the big summaries start early and the small ones fill in at the end,
    while each worker still gets several tasks to balance on.
    """
    ordered = sorted(patients, key=lambda p: (-weights.get(p[0], 0), p[1]))
    if not ordered:
        return []
    n_chunks = max(1, min(len(ordered), jobs * per_worker))
    size, extra = divmod(len(ordered), n_chunks)
    chunks, start = [], 0
    for i in range(n_chunks):
        end = start + size + (1 if i < extra else 0)
        chunks.append(ordered[start:end])
        start = end
    return chunks


def _warm_worker() -> None:
    """Worker start-up: import what an export needs once, before the first chunk arrives."""
    from kapnotes import exports  # noqa: F401  (database models, ReportLab, the PDF modules)
    from kapnotes.pdf import summary_pdf  # noqa: F401


class Progress:
    """A one-line progress bar on stderr (a line per 10 % when stderr is not a terminal)."""

    def __init__(self, total: int, stream=None, width: int = 30):
        self.total, self.width = total, width
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done = self.written = self.skipped = self.failed = 0
        self.start = time.monotonic()
        self._last_decile = -1

    def update(self, outcome: Outcome) -> None:
        self.done += 1
        setattr(self, outcome.status, getattr(self, outcome.status) + 1)
        frac = self.done / self.total if self.total else 1.0
        filled = int(self.width * frac)
        line = (f"[{'#' * filled}{'-' * (self.width - filled)}] {self.done}/{self.total} patients "
                f"({self.written} written, {self.skipped} unchanged, {self.failed} failed) "
                f"{time.monotonic() - self.start:.1f}s")
        if self.tty:
            self.stream.write("\r" + line)
            if self.done == self.total:
                self.stream.write("\n")
        else:
            decile = int(frac * 10)
            if decile != self._last_decile or self.done == self.total:
                self._last_decile = decile
                self.stream.write(line + "\n")
        self.stream.flush()


def export_all(out_dir: Path, d_from: date | None, d_to: date | None, jobs: int, full_dose_log: bool = False,
               full_notes: bool = False) -> int:
    from kapnotes import exports
    from kapnotes.db import make_engine, session_scope

    out_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine()
    with session_scope(engine) as session:
        patients = exports.all_patient_ids(session)
        weights = exports.patient_export_weights(session) if jobs > 1 else {}
    engine.dispose()
    progress = Progress(len(patients))
    failures: list[Outcome] = []
    jobs = max(1, min(jobs, len(patients) or 1))
    if jobs == 1:
        results = (export_patient(pid, mrn, str(out_dir), d_from, d_to, full_dose_log, full_notes)
                   for pid, mrn in patients)
        for outcome in results:
            progress.update(outcome)
            if outcome.status == "failed":
                failures.append(outcome)
    else:
        # spawn: fresh interpreters, no database connections inherited across fork
        # chunks of patients, heaviest first, so workers neither wait on the pool nor finish unevenly
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"),
                                 initializer=_warm_worker) as pool:
            futures = [pool.submit(export_chunk, chunk, str(out_dir), d_from, d_to, full_dose_log, full_notes)
                       for chunk in plan_chunks(patients, weights, jobs)]
            for fut in as_completed(futures):
                for outcome in fut.result():
                    progress.update(outcome)
                    if outcome.status == "failed":
                        failures.append(outcome)
    for f in failures:
        print(f"error: {f.mrn}: {f.message}", file=sys.stderr)
    print(f"{progress.written} written, {progress.skipped} unchanged (skipped), {progress.failed} failed "
          f"in {out_dir}")
    return 1 if failures else 0


# --- FHIR and dose-log CSV ------------------------------------------------------------------


def register_interop(sub) -> None:
    p = sub.add_parser(
        "export-fhir",
        help="export FHIR R4 Bundles (JSON; one patient, or every patient with --all)",
        description="Export a patient's record as one FHIR R4 Bundle (type collection): Patient, Practitioners, "
        "CareTeam, GAD-7/PHQ-9 and vital-sign Observations, MedicationAdministrations (doses), "
        "MedicationRequests (plan versions, pending proposals), DocumentReferences (signed notes) with Provenance.",
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--patient", metavar="MRN", help="the patient's record number")
    who.add_argument("--all", action="store_true", help="every patient, one JSON file each, in --out-dir")
    p.add_argument("--out", metavar="FILE.json", help="output file (with --patient)")
    p.add_argument("--out-dir", metavar="DIR", help="output folder (with --all)")
    p.set_defaults(func=cmd_export_fhir)

    d = sub.add_parser(
        "export-doses",
        help="export a patient's dose log as CSV in the canonical columns",
        description="Write the patient's dose log (voided entries left out) as CSV in the canonical columns of "
        "the import, so the file re-imports unchanged.",
    )
    d.add_argument("--patient", metavar="MRN", required=True, help="the patient's record number")
    d.add_argument("--from", dest="date_from", metavar="DATE", help="first day, YYYY-MM-DD")
    d.add_argument("--to", dest="date_to", metavar="DATE", help="last day, YYYY-MM-DD")
    d.add_argument("--out", metavar="FILE.csv", required=True, help="output file")
    d.set_defaults(func=cmd_export_doses)


def _check_parent(out: Path, field: str = "out") -> None:
    if out.parent and not out.parent.exists():
        raise ValidationError({field: f"The folder {str(out.parent)!r} does not exist."})


def _fhir_bytes(engine, patient_id: int) -> tuple[bytes, dict]:
    import json

    from kapnotes import fhir
    from kapnotes.db import session_scope

    with session_scope(engine) as session:
        bundle = fhir.build_bundle(session, None, patient_id, as_operator=True)
    return (json.dumps(bundle, ensure_ascii=False, indent=1) + "\n").encode("utf-8"), fhir.bundle_counts(bundle)


def cmd_export_fhir(args) -> int:
    from kapnotes import exports, fhir
    from kapnotes.db import make_engine, session_scope

    engine = make_engine()
    if args.all:
        if not args.out_dir or args.out:
            raise ValidationError({"out_dir": "--all needs --out-dir DIR (and no --out)."})
        out_dir = Path(args.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        with session_scope(engine) as session:
            patients = exports.all_patient_ids(session)
        failed = 0
        for pid, mrn in patients:
            try:
                data, _ = _fhir_bytes(engine, pid)
                _write_atomic(out_dir / fhir.file_name(mrn), data)
            except KapError as exc:
                failed += 1
                print(f"error: {mrn}: {exc}", file=sys.stderr)
        print(f"{len(patients) - failed} written, {failed} failed in {out_dir}")
        return 1 if failed else 0
    if not args.out:
        raise ValidationError({"out": "--patient needs --out FILE.json."})
    out = Path(args.out)
    _check_parent(out)
    with session_scope(engine) as session:
        pid = exports.patient_id_for_mrn(session, args.patient)
    data, counts = _fhir_bytes(engine, pid)
    _write_atomic(out, data)
    print(f"wrote {out} ({len(data):,} bytes; " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")")
    return 0


def cmd_export_doses(args) -> int:
    from kapnotes import dose_csv, exports
    from kapnotes.db import make_engine, session_scope

    d_from, d_to = _dates(args)
    out = Path(args.out)
    _check_parent(out)
    with session_scope(make_engine()) as session:
        pid = exports.patient_id_for_mrn(session, args.patient)
        _, data = dose_csv.dose_log_csv(session, None, pid, d_from, d_to, as_operator=True)
    _write_atomic(out, data)
    import csv
    import io

    rows = sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8")))) - 1
    print(f"wrote {out} ({rows} dose{'s' if rows != 1 else ''})")
    return 0
