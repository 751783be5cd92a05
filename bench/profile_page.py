"""Profile one page's reruns and list its SQL: ``python -m bench.profile_page pages/x.py [--patients N]``.

Uses the benchmark clinic in bench/out/ (run ``make bench`` or ``python -m bench --quick`` first).
Prints the slowest statements (time per statement) and cProfile's top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

os.environ.setdefault("STREAMLIT_LOGGER_LEVEL", "critical")


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("page")
    p.add_argument("--patients", type=int, default=2000)
    p.add_argument("--years", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--database-url", default=None)
    p.add_argument("--top", type=int, default=30)
    args = p.parse_args(argv)
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from bench.clinic import ensure_clinic
    from bench.pages import app_pages, runner_for

    clinic = ensure_clinic(args.patients, args.years, args.seed, args.database_url)
    roles = next((r for page, _t, r in app_pages() if page == args.page), ("therapist",))
    runner = runner_for(args.page, roles, clinic)
    runner.run(timed=False)
    stats: dict[str, list[float]] = {}
    starts: dict[int, float] = {}

    def before(conn, cursor, statement, parameters, context, executemany):
        starts[id(cursor)] = time.perf_counter()

    def after(conn, cursor, statement, parameters, context, executemany):
        stats.setdefault(" ".join(statement.split())[:150], []).append(time.perf_counter() - starts.pop(id(cursor), 0))

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    prof = cProfile.Profile()
    from streamlit.runtime.scriptrunner import script_runner

    original = script_runner.exec_func_with_error_handling

    def profiled(func, ctx):  # the page runs in Streamlit's script thread: profile it there
        prof.enable()
        try:
            return original(func, ctx)
        finally:
            prof.disable()

    script_runner.exec_func_with_error_handling = profiled
    for _ in range(args.runs):
        runner.run()
    script_runner.exec_func_with_error_handling = original
    if runner.error:
        print("page error:", runner.error)
    print(f"{args.page}: median {runner.median * 1000:.0f} ms over {len(runner.times)} reruns")
    per_run = sum(len(v) for v in stats.values()) / max(1, args.runs)
    print(f"{per_run:.0f} statements per rerun; slowest (total ms over all reruns, count):")
    for stmt, times in sorted(stats.items(), key=lambda kv: -sum(kv[1]))[:12]:
        print(f"  {sum(times) * 1000:8.1f} ms  x{len(times):<4} {stmt}")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
