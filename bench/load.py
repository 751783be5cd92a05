"""``python -m bench.load``: simulated clinicians over Streamlit's own WebSocket protocol against
one app process (SQLite) and two behind nginx (PostgreSQL), with the issue-19 targets as ratios
measured in one run, the database checked against what the generator saved, the audit chain
verified, and one of the two processes killed mid-run. Loopback only; bounded in clinicians and
seconds. Writes ``bench/load-results.json`` and ``bench/load-results.png``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.load_actions import Clinician, Ledger, Timings
from bench.load_check import check_database, database_counts
from bench.load_cluster import ROOT, Cluster, prepare_database
from bench.load_report import plot, summarise, targets
from bench.st_client import ProtocolError, Session, sign_in

RESULTS = ROOT / "bench" / "load-results.json"
PASSWORD = "kapnotes-demo-2026"  # kapnotes.seed.DEMO_PASSWORD


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    p.add_argument("--clinicians", type=int, default=30, help="concurrent clinicians in the loaded runs")
    p.add_argument("--seconds", type=float, default=60,
                   help="no action starts after this many seconds of a run (actions in flight finish)")
    p.add_argument("--patients", type=int, default=33, help="demo clinic size (33: 3 therapists, 2 prescribers)")
    p.add_argument("--postgres-url", default=os.environ.get("KAPNOTES_BENCH_POSTGRES_URL")
                   or os.environ.get("KAPNOTES_TEST_POSTGRES_URL"),
                   help="an expendable PostgreSQL database for the two-process runs (it is emptied)")
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def accounts(url: str) -> dict[str, list[str]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT username, role FROM users WHERE is_active")).all()
        plans = dict(conn.execute(
            text("SELECT patient_id, dose_mg FROM treatment_plans WHERE status = 'active' ORDER BY id")).all())
    engine.dispose()
    found = {"therapist": sorted(u for u, r in rows if r == "therapist"),
             "prescriber": sorted(u for u, r in rows if r == "prescriber"), "plans": plans}
    return found


async def _clinician(n: int, role: str, username: str, base: str, deadline: float, shared: dict) -> None:
    from kapnotes.config import get_settings

    cookies: dict = {}
    timings, ledger, faults = shared["timings"], shared["ledger"], shared["faults"]
    try:
        await asyncio.to_thread(sign_in, base, username, PASSWORD, cookies)
    except (ProtocolError, OSError) as exc:
        timings.fail("sign in", str(exc))
        return
    session = Session(base, cookies)
    who = Clinician(n, role, session, ledger, timings, get_settings().tz, shared["run_id"], shared["plans"])
    who.faults, who.deadline = faults, deadline
    while time.perf_counter() < deadline:
        try:
            if session.ws is None:
                await session.connect()
                await session.run()
                if faults["connected_once"].get(n):
                    faults["reconnects"] += 1
                    signed_in = "dose_log" in session.pages or "review_queue" in session.pages  # a clinician's menu
                    faults["reconnected_signed_in"] += int(signed_in)
                    who.draft_open = False
                faults["connected_once"][n] = True
            await who.one_round()
        except asyncio.TimeoutError:
            timings.fail("run took over 60 s", "no script_finished within 60 s; the tab reconnects")
            await session.close()
            session.ws = None
        except Exception as exc:  # noqa: BLE001 - a dropped socket, or a protocol surprise (counted)
            if type(exc).__module__.startswith("websockets") or isinstance(exc, OSError):
                faults["disconnects"] += 1
                session.ws = None
                await asyncio.sleep(0.5)
                continue
            timings.fail("protocol", f"{type(exc).__name__}: {exc}")
            session.ws = None
    await session.close()


async def _drive(base: str, clinicians: int, seconds: float, shared: dict, users: dict,
                 on_halfway=None) -> float:
    t0 = time.perf_counter()
    deadline = t0 + seconds
    tasks = []
    for n in range(clinicians):
        role = "prescriber" if n % 5 == 4 else "therapist"
        pool = users[role]
        tasks.append(asyncio.create_task(_clinician(n, role, pool[n % len(pool)], base, deadline, shared)))
        await asyncio.sleep(0.05)  # a morning, not a single instant
    if on_halfway is not None:
        await asyncio.sleep(seconds / 2)
        await asyncio.to_thread(on_halfway)
    await asyncio.gather(*tasks)
    return time.perf_counter() - t0


def run_scenario(name: str, cluster: Cluster, clinicians: int, seconds: float, users: dict, log,
                 kill_halfway: bool = False) -> dict:
    run_id = f"{name}-{int(time.time())}"
    shared = {"timings": Timings(), "ledger": Ledger(), "run_id": run_id, "plans": users["plans"],
              "faults": {"disconnects": 0, "reconnects": 0, "reconnected_signed_in": 0,
                         "in_flight_writes_found_saved": 0, "connected_once": {}}}
    before = database_counts(cluster.url)
    killed = {}

    def _kill():
        port = cluster.ports[-1]
        cluster.kill(port)
        killed.update(port=port, at=round(seconds / 2, 1))
        log(f"    killed the app process on port {port} (SIGKILL) half-way")

    log(f"  {name}: {clinicians} clinician(s), {seconds:.0f} s, {len(cluster.ports)} process(es)"
        f"{' behind nginx' if cluster.behind_nginx else ''}")
    elapsed = asyncio.run(_drive(cluster.base, clinicians, seconds, shared, users, _kill if kill_halfway else None))
    result = summarise(shared["timings"], elapsed)
    result.update(name=name, clinicians=clinicians, processes=len(cluster.ports), behind_nginx=cluster.behind_nginx,
                  database=cluster.url.split(":", 1)[0])
    result["integrity"] = check_database(cluster.url, shared["ledger"], before)
    faults = {k: v for k, v in shared["faults"].items() if k != "connected_once"}
    if killed:
        faults.update(killed)
    result["faults"] = faults
    log(f"    {result['actions']} actions, {result['actions_per_second']:.2f}/s, errors {result['errors_total']}, "
        f"integrity {'ok' if result['integrity']['ok'] else 'NOT OK'}")
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    log = lambda *a: print(*a, flush=True)  # noqa: E731
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="kapnotes-load-") as tmp:
        work = Path(tmp)
        sqlite_url = f"sqlite:///{work / 'load.db'}"
        prepare_database(sqlite_url, args.patients, log)
        users = accounts(sqlite_url)
        one = Cluster(sqlite_url, 1, work, behind_nginx=False).start()
        try:
            runs["one_clinician"] = run_scenario("one_clinician", one, 1, args.seconds, users, log)
            runs["one_process"] = run_scenario("one_process", one, args.clinicians, args.seconds, users, log)
        finally:
            one.stop()
        if args.postgres_url:
            prepare_database(args.postgres_url, args.patients, log)
            users = accounts(args.postgres_url)
            two = Cluster(args.postgres_url, 2, work, behind_nginx=True).start()
            try:
                runs["two_processes"] = run_scenario("two_processes", two, args.clinicians, args.seconds, users, log)
                runs["kill_one_process"] = run_scenario("kill_one_process", two, args.clinicians, args.seconds,
                                                        users, log, kill_halfway=True)
            finally:
                two.stop()
        else:
            log("  two processes: NOT MEASURED (no --postgres-url / KAPNOTES_BENCH_POSTGRES_URL)")
    report = {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cores": os.cpu_count(),
              "seconds_per_run": args.seconds, "runs": runs, "targets": targets(runs),
              "wall_seconds": round(time.perf_counter() - started, 1),
              "how": "Streamlit's protobuf BackMsg/ForwardMsg over /_stcore/stream, signed in through /auth/sign-in; "
                     "each action timed from the rerun message sent to script_finished"}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out.with_suffix(".png"))
    for t in report["targets"]:
        why = f" ({t['why']})" if t.get("why") else ""
        log(f"  {'MET    ' if t['met'] else 'NOT MET'} {t['target']}: {t['figure']}{why}")
    log(f"wrote {args.out} and {args.out.with_suffix('.png')} in {report['wall_seconds']} s")
    return 0 if all(t["met"] for t in report["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
