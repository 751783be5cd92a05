"""``python -m bench`` (``make bench``): every figure a median of several runs, as a ratio
against a baseline measured in the same run, with its target and whether it is met.

Options: ``--quick`` (a smoke run: small clinics, few runs), ``--database-url URL``
(PostgreSQL: the clinics become databases next to URL's), ``--runs N``, ``--out FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("KAPNOTES_FAST_HASH", "0")
os.environ.setdefault("STREAMLIT_LOGGER_LEVEL", "error")
# AppTest has no cookies: the guard takes the session state user (never in production)
os.environ.setdefault("KAPNOTES_APPTEST_SIGN_IN", "1")

ROOT = Path(__file__).resolve().parent.parent
PAGE_TARGET = 3.0
SCALE_TARGET = 1.3
PDF_TARGET = 2.0
# Bulk export runs over its own clinic of similar patients (in the 20-patient clinic, one 3-year
# heaviest patient would dominate and hide the parallel speed-up).
BULK_CLINIC = {False: (100, 1.0), True: (30, 0.5)}
CSV_TARGET_ROWS_S = 2000
ENGINE_TARGET_MS_PER_PATIENT = 25  # it runs inside the save that triggers it: must stay instant
APP_MEMORY_TARGET_MB = 500
EXPORT_MEMORY_TARGET_MB = 500


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: 200 vs 20 patients x 1 year, 3 runs")
    p.add_argument("--database-url", default=None, help="run on this PostgreSQL server (databases <name>_c<N>)")
    p.add_argument("--runs", type=int, default=None, help="timed runs per figure (default 7; quick 3)")
    p.add_argument("--patients", type=int, default=None, help="the big clinic (default 2000)")
    p.add_argument("--small", type=int, default=20, help="the small clinic (default 20)")
    p.add_argument("--years", type=float, default=None, help="years of history (default 3)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", default=None, help="results file (default bench/results.json; "
                                                "-postgresql and/or -quick in the name for those runs)")
    p.add_argument("--skip", default="", help="comma-separated sections to skip: pages,pdf,bulk,csv,engine,memory")
    args = p.parse_args(argv)
    args.runs = args.runs or (3 if args.quick else 7)
    args.patients = args.patients or (200 if args.quick else 2000)
    args.years = args.years or (1.0 if args.quick else 3.0)
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    return args


class Report:
    def __init__(self) -> None:
        self.lines: list[dict] = []

    def add(self, section: str, name: str, value: str, target: str, met: bool | None, **data) -> None:
        value = " ".join(str(value).split())
        self.lines.append({"section": section, "name": name, "value": value, "target": target,
                           "met": met, **data})
        status = "met" if met else ("n/a" if met is None else "NOT MET")
        print(f"  {name:<44} {value:<34} target {target:<14} {status}", flush=True)

    def table(self) -> str:
        rows = [("figure", "value", "target", "status")]
        for line in self.lines:
            status = "met" if line["met"] else ("n/a" if line["met"] is None else "NOT MET")
            rows.append((line["name"], line["value"], line["target"], status))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        out = []
        for i, r in enumerate(rows):
            out.append(" | ".join(c.ljust(w) for c, w in zip(r, widths)))
            if i == 0:
                out.append("-+-".join("-" * w for w in widths))
        return "\n".join(out)


def ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.0f} ms"


def add_ratio(report: Report, section: str, what: str, page: str, runner, baseline, target: float) -> None:
    """One row: a page runner's median over a baseline runner's, met when at most ``target``."""
    ratio = runner.median / baseline.median
    report.add(section, what, f"{ms(runner.median)} / {ms(baseline.median)} = {ratio:.2f}×", f"≤ {target:g}×",
               ratio <= target, page=page, median_s=runner.median, baseline_s=baseline.median, ratio=ratio,
               runs=runner.times, baseline_runs=baseline.times)


def bench_pages(args, big, small, empty_clinic, report: Report) -> None:
    """Each page for the heaviest patient (2,000-patient clinic), timed against (a) the same
    page, same user, with nothing recorded yet (DESIGN §6's "empty page": the page must not
    slow down as a patient's history grows), (b) the same page in the 20-patient clinic, and
    for reference a bare Streamlit page with only a title."""
    from bench.pages import (
        ROLE_USER,
        Runner,
        app_pages,
        empty_page_path,
        role_for,
        runner_for,
        signed_in_page_path,
        time_interleaved,
    )

    pages = []
    for page, title, roles in app_pages():
        who = ROLE_USER[role_for(roles)]
        if (ROOT / page).exists():
            pages.append((page, f"{title} ({who})", roles))
        else:
            report.add("pages", f"{title} ({who}) vs the same page with nothing recorded",
                       "not available yet (no page file)", f"≤ {PAGE_TARGET:g}×", None, page=page)
    bare = Runner(empty_page_path(), big.url, None, None)
    guard = Runner(signed_in_page_path(), big.url, big.users["tsato"], big.heavy_patient_id)
    sets = [(page, title, runner_for(page, roles, big), runner_for(page, roles, small),
             runner_for(page, roles, empty_clinic)) for page, title, roles in pages]
    runners = [bare, guard] + [r for _, _, *rs in sets for r in rs]
    t0 = time.perf_counter()
    time_interleaved(runners, args.runs)
    print(f"  ({len(pages)} pages x 3 clinics + bare page, {args.runs} runs each, "
          f"{time.perf_counter() - t0:.0f} s)", flush=True)
    for page, title, heavy, _light, fresh in sets:
        if heavy.error or fresh.error:
            report.add("pages", f"{title} vs the same page with nothing recorded",
                       f"error: {heavy.error or fresh.error}", f"≤ {PAGE_TARGET:g}×", False, page=page)
            continue
        add_ratio(report, "pages", f"{title} vs the same page with nothing recorded", page, heavy, fresh,
                  PAGE_TARGET)
    for page, title, heavy, light, _fresh in sets:
        if heavy.error or light.error:
            continue
        add_ratio(report, "scale", f"{title}: {big.patients:,} vs {small.patients} patients", page, heavy, light,
                  SCALE_TARGET)
    base = bare.median
    report.add("reference", "bare Streamlit page (st.title only)", ms(base), "—", None, median_s=base,
               runs=bare.times)
    if guard.median:
        report.add("reference", "signed-in bare page (page guard + title)",
                   f"{ms(guard.median)} = {guard.median / base:.2f}×", "—", None, median_s=guard.median,
                   runs=guard.times)
    for page, title, heavy, _light, _fresh in sets:
        if not heavy.error:
            report.add("reference", f"{title} vs the bare page", f"{ms(heavy.median)} = {heavy.median / base:.2f}×",
                       "—", None, page=page, median_s=heavy.median, baseline_s=base, ratio=heavy.median / base)
    bench_floor(args, big, [(page, title, heavy, light) for page, title, heavy, light, _ in sets], report, base)


def bench_floor(args, clinic, pairs, report: Report, page_base: float) -> None:
    """For reference: each page's elements made by Streamlit alone (a replica with the same
    tables, 150-point charts and dummy widgets), against the bare page, in one interleaved run.
    The page's ratio minus this one is what our code and data work add."""
    from bench.pages import Runner, empty_page_path, replica_path, time_interleaved

    replicas = []
    for page, title, heavy, _light in pairs:
        if heavy.error:
            continue
        path, n = replica_path(Path(page).stem, heavy.at)
        replicas.append((title, heavy, n, Runner(path, clinic.url, None, None)))
    empty = Runner(empty_page_path(), clinic.url, None, None)
    time_interleaved([empty] + [r for *_, r in replicas], args.runs)
    base = empty.median
    for title, heavy, n, replica in replicas:
        if replica.error or not replica.median:
            report.add("reference", f"{title}: its {n} elements alone", f"error: {replica.error}", "—", None)
            continue
        report.add("reference", f"{title}: its {n} elements alone",
                   f"{ms(replica.median)} = {replica.median / base:.2f}×"
                   f" (page {heavy.median / page_base:.2f}×)", "—", None,
                   median_s=replica.median, baseline_s=base, elements=n, ratio=replica.median / base)


def bench_pdf(args, clinic, report: Report) -> None:
    from bench.work import summary_pdf_bench

    r = summary_pdf_bench(clinic, max(3, args.runs // 2))
    if not r["available"]:
        report.add("pdf", "1-year treatment summary PDF vs bare ReportLab", "not available yet",
                   f"≤ {PDF_TARGET:g}×", None)
        return
    ratio = r["pdf_s"] / r["bare_s"]
    report.add("pdf", "1-year treatment summary PDF vs bare ReportLab",
               f"{ms(r['pdf_s'])} / {ms(r['bare_s'])} = {ratio:.2f}×", f"≤ {PDF_TARGET:g}×", ratio <= PDF_TARGET,
               ratio=ratio, **r)
    print(f"    ({r['doses']} doses, {r['notes']} notes, {r['scores']} scores, {r['pages']} pages with the full dose "
          f"log, {r['pages_weekly']} with home doses by week; gathering the data took {ms(r['gather_s'])})")


def bench_bulk(args, clinic, report: Report) -> None:
    from bench.work import bulk_export_bench

    r = bulk_export_bench(clinic, 1 if args.quick else 2)
    if not r["available"]:
        report.add("bulk", "bulk export: all cores vs one worker", "not available yet", "—", None)
        report.add("memory", "peak memory of the bulk export", "not available yet",
                   f"≤ {EXPORT_MEMORY_TARGET_MB} MB", None)
        return
    if r.get("one_worker_s"):
        speedup = r["one_worker_s"] / r["all_cores_s"]
        target = 0.7 * min(r["cores"] or 1, clinic.patients)
        report.add("bulk", f"bulk export ({r['files']} PDFs, {r['range']}): one worker / all {r['cores']} cores",
                   f"{r['one_worker_s']:.1f} s / {r['all_cores_s']:.1f} s = {speedup:.2f}×", f"≥ {target:.1f}×",
                   speedup >= target, speedup=speedup, **r)
    else:
        report.add("bulk", f"bulk export ({r.get('files')} PDFs), all cores", f"{r['all_cores_s']:.1f} s",
                   "one-worker option missing", None, **r)
    peak = max(r["all_cores_peak_mb"], r.get("one_worker_peak_mb") or 0)
    report.add("memory", "peak memory of one bulk-export process", f"{peak:.0f} MB",
               f"≤ {EXPORT_MEMORY_TARGET_MB} MB", peak <= EXPORT_MEMORY_TARGET_MB, peak_mb=peak)


def bench_csv(args, report: Report) -> None:
    from bench.work import csv_import_bench

    r = csv_import_bench(args.database_url, 3 if not args.quick else 1)
    if not r["available"]:
        report.add("csv", "CSV import of 10,000 rows", "not available yet", f"≥ {CSV_TARGET_ROWS_S} rows/s", None)
        return
    report.add("csv", f"CSV import of {r['rows']:,} rows (parse + validate + write)",
               f"{r['total_s']:.2f} s = {r['rows_per_s']:,.0f} rows/s", f"≥ {CSV_TARGET_ROWS_S:,} rows/s",
               r["rows_per_s"] >= CSV_TARGET_ROWS_S, **r)


def bench_engine(args, clinic, report: Report) -> None:
    from bench.work import engine_bench

    r = engine_bench(clinic, 1 if args.quick else 3)
    if not r["available"]:
        report.add("engine", "rules engine over all patients", "not available yet", "—", None)
        return
    per_patient = r["total_s"] / max(1, r["patients"])
    report.add("engine", f"rules engine for each of {r['patients']:,} patients ({r['how']})",
               f"{r['total_s']:.1f} s in all = {per_patient * 1000:.1f} ms per patient",
               f"≤ {ENGINE_TARGET_MS_PER_PATIENT} ms per patient", per_patient * 1000 <= ENGINE_TARGET_MS_PER_PATIENT,
               ms_per_patient=per_patient * 1000, **r)


def bench_memory(args, clinic, report: Report) -> None:
    from bench.work import app_memory

    r = app_memory(clinic)
    if not r["available"]:
        report.add("memory", "peak memory of the app process", f"error: {r.get('error', '')[-120:]}",
                   f"≤ {APP_MEMORY_TARGET_MB} MB", False)
        return
    report.add("memory", "peak memory of the app process (every page, heaviest patient)", f"{r['peak_mb']:.0f} MB",
               f"≤ {APP_MEMORY_TARGET_MB} MB", r["peak_mb"] <= APP_MEMORY_TARGET_MB, **r)


def main(argv=None) -> int:
    args = parse_args(argv if argv is not None else sys.argv[1:])
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    started = time.perf_counter()
    load_at_start = list(os.getloadavg())  # other work on the machine: ratios absorb most of it, not all
    from bench.clinic import ensure_clinic, ensure_empty_clinic

    backend = "postgresql" if args.database_url else "sqlite"
    print(f"KAPNotes benchmark on {backend}: {args.runs} runs per figure"
          f"{' (quick)' if args.quick else ''}", flush=True)
    big = ensure_clinic(args.patients, args.years, args.seed, args.database_url)
    small = ensure_clinic(args.small, args.years, args.seed, args.database_url)
    empty_clinic = ensure_empty_clinic(args.database_url)
    report = Report()
    sections = [
        ("pages", lambda: bench_pages(args, big, small, empty_clinic, report)),
        ("pdf", lambda: bench_pdf(args, small, report)),
        ("engine", lambda: bench_engine(args, big, report)),
        ("memory", lambda: bench_memory(args, big, report)),
        ("bulk", lambda: bench_bulk(args, ensure_clinic(*BULK_CLINIC[args.quick], args.seed, args.database_url),
                                    report)),
        ("csv", lambda: bench_csv(args, report)),
    ]
    for name, fn in sections:
        if name in args.skip:
            continue
        print(f"[{name}]", flush=True)
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others
            report.add(name, f"{name} benchmark", f"error: {type(exc).__name__}: {str(exc)[:120]}", "—", False)
    total = time.perf_counter() - started
    print()
    print(report.table())
    judged = [line for line in report.lines if line["met"] is not None]
    met = sum(1 for line in judged if line["met"])
    print(f"\n{met} of {len(judged)} targets met; {total:.0f} s in all "
          f"(load average {load_at_start[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end on {os.cpu_count()} CPUs).")
    name = "results" + ("-postgresql" if args.database_url else "") + ("-quick" if args.quick else "") + ".json"
    out = Path(args.out) if args.out else ROOT / "bench" / name
    out.write_text(json.dumps({
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backend": backend, "quick": args.quick, "runs": args.runs,
        "clinics": {"big": {"patients": big.patients, "years": big.years, "seed": big.seed,
                            "built_s": big.built_seconds},
                    "small": {"patients": small.patients, "years": small.years, "seed": small.seed,
                              "built_s": small.built_seconds}},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_at_start": load_at_start, "load_average_at_end": list(os.getloadavg())},
        "total_s": total, "targets_met": met, "targets_judged": len(judged), "lines": report.lines,
    }, indent=2, default=str), encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
