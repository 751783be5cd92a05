"""Markdown tables of the latest results: ``python -m bench.report [bench/results.json ...]``.

Used to refresh the figures in the README's Performance section.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def table(path: Path) -> str:
    data = json.loads(path.read_text(encoding="utf-8"))
    big, small = data["clinics"]["big"], data["clinics"]["small"]
    head = (f"**{data['backend']}** — {data['generated_at']}, {data['machine']['cpus']} CPUs, "
            f"Python {data['machine']['python']}; clinics of {big['patients']:,} and {small['patients']} patients "
            f"× {big['years']:g} years (seed {big['seed']}); {data['runs']} runs per figure (median); "
            f"{data['targets_met']} of {data['targets_judged']} targets met; whole run {data['total_s'] / 60:.1f} min"
            + (f"; load average {data['machine']['load_average_at_start'][0]:.1f} at start"
               if data["machine"].get("load_average_at_start") else "") + ".")
    rows = ["| figure | value | target | status |", "| --- | --- | --- | --- |"]
    for line in data["lines"]:
        status = "met" if line["met"] else ("—" if line["met"] is None else "**not met**")
        rows.append(f"| {line['name']} | {line['value']} | {line['target']} | {status} |")
    return head + "\n\n" + "\n".join(rows)


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or [p for p in (ROOT / "bench" / "results.json",
                                                    ROOT / "bench" / "results-postgresql.json") if p.exists()]
    print("\n\n".join(table(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
