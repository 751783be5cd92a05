"""Reading the ``taken_at`` column: ISO times with or without a zone, and slashed dates.

A naive time is the clinic's zone (stored in UTC); a local time that does not exist or is
ambiguous at a clock change is refused, never guessed. Slashed dates (``03/04/2026``) are
read day/month or month/day only when the file settles it (a day above 12) or the user
chose: a date is never silently read the wrong way round.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

import pandas as pd

DATE_ORDERS = {"dmy": "day/month/year", "mdy": "month/day/year"}
_TZ_SUFFIX = re.compile(r"(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)
_SLASHED = re.compile(
    r"^(?P<a>\d{1,2})[/.](?P<b>\d{1,2})[/.](?P<y>\d{4})"
    r"(?:[ T]+(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?\s*(?P<ampm>[AaPp]\.?[Mm]\.?)?)?$")


def detect_date_order(raw: pd.Series) -> tuple[str | None, str]:
    """How slashed dates (``03/04/2026``) in a column are ordered, and why.

    Returns ("iso", …) when none is slashed, ("dmy"|"mdy", reason) when a day above 12
    settles it, (None, …) when every slashed date reads both ways (the user is asked),
    ("mixed", …) when the file contradicts itself.
    """
    parts = raw.str.strip().str.extract(_SLASHED.pattern)
    slashed = parts["a"].notna()
    if not slashed.any():
        return "iso", "dates in ISO form (year-month-day)"
    a = pd.to_numeric(parts.loc[slashed, "a"])
    b = pd.to_numeric(parts.loc[slashed, "b"])
    day_first, month_first = a[a > 12], b[b > 12]
    if len(day_first) and len(month_first):
        return "mixed", (f"some dates are day/month (row {day_first.index[0]}: {raw[day_first.index[0]].strip()}) "
                         f"and some month/day (row {month_first.index[0]}: {raw[month_first.index[0]].strip()})")
    if len(day_first):
        row = day_first.index[0]
        return "dmy", f"dates as day/month/year (row {row}: {raw[row].strip()} has a day above 12)"
    if len(month_first):
        row = month_first.index[0]
        return "mdy", f"dates as month/day/year (row {row}: {raw[row].strip()} has a day above 12)"
    if bool((a == b).all()):
        return "dmy", "dates whose day and month are the same, read either way"
    return None, "dates that read both as day/month/year and as month/day/year"


def _slashed_to_iso(raw: pd.Series, order: str) -> pd.Series:
    """Slashed dates rewritten as ISO text in the given order; others unchanged (wrong ones → '?')."""
    parts = raw.str.strip().str.extract(_SLASHED.pattern)
    hit = parts["a"].notna()
    if not hit.any():
        return raw
    p = parts[hit]
    day, month = (p["a"], p["b"]) if order == "dmy" else (p["b"], p["a"])
    hour = pd.to_numeric(p["h"]).fillna(0).astype(int)
    ampm = p["ampm"].fillna("").str.lower().str.replace(".", "", regex=False)
    bad_clock = (ampm != "") & ((hour < 1) | (hour > 12))
    hour = hour.where(~((ampm == "pm") & (hour < 12)), hour + 12)
    hour = hour.where(~((ampm == "am") & (hour == 12)), 0)
    iso = (p["y"] + "-" + month.str.zfill(2) + "-" + day.str.zfill(2) + " "
           + hour.astype(str).str.zfill(2) + ":" + p["m"].fillna("00") + ":" + p["s"].fillna("00"))
    iso = iso.where(~bad_clock, "?")
    out = raw.copy()
    out.loc[hit] = iso
    return out


def parse_times(raw: pd.Series, tz: ZoneInfo, date_order: str | None = None) -> pd.Series:
    """Aware values as given; naive ones in the clinic's zone. Unparseable → NaT.

    Slashed dates are read in ``date_order`` ("dmy"/"mdy"); without one they stay unparsed.
    """
    if date_order in DATE_ORDERS:
        raw = _slashed_to_iso(raw, date_order)
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us, UTC]")
    stripped = raw.str.strip()
    has_zone = stripped.str.contains(_TZ_SUFFIX) & stripped.str.contains(r"\d[Tt ]\d", regex=True)
    aware = stripped[has_zone & (stripped != "")]
    naive = stripped[~has_zone & (stripped != "")]
    if len(aware):
        out.loc[aware.index] = pd.to_datetime(aware, format="ISO8601", utc=True, errors="coerce")
    if len(naive):
        parsed = pd.to_datetime(naive, format="ISO8601", errors="coerce")
        if len(parsed) and getattr(parsed.dt, "tz", None) is None:
            local = parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
            out.loc[naive.index] = local.dt.tz_convert("UTC")
    return out
