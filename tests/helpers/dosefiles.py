"""Dose CSV files for the import tests."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

from kapnotes import doses


def big_dose_csv(path: Path, n: int, start: datetime, every_hours: int) -> None:
    """Write ``n`` valid dose rows in the import's own columns, one every ``every_hours`` from ``start``."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(doses.CSV_COLUMNS)
        for i in range(n):
            t = (start + timedelta(hours=every_hours * i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            w.writerow([t, 150, "odt", "spit", "home", 6, 2, 5, 1, "no", 120, 80, 130, 85, 70, "", f"row {i}"])
