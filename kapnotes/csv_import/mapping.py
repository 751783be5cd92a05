"""Which of the file's columns is which dose-log field, and the clinic's remembered mapping.

A header is matched after normalising (``"Taken at"`` → ``taken_at``), through the mapping the
user chose (remembered per clinic, so the next file from the same spreadsheet maps itself);
columns that are no dose-log field are ignored and reported.
"""

from __future__ import annotations

import pandas as pd
from sqlmodel import Session

from kapnotes import audit
from kapnotes.access import require_role
from kapnotes.actor import Actor
from kapnotes.csv_import.decoding import normalise_header
from kapnotes.csv_import.parsed import ParsedFile, RowError
from kapnotes.dose_columns import CSV_COLUMNS, LABELS
from kapnotes.errors import ValidationError
from kapnotes.models import ClinicSetting, Role
from kapnotes.timeutil import utcnow

REQUIRED_COLUMNS = ("taken_at", "dose_mg", "formulation")
MAPPING_KEY = "csv_mapping"


def map_columns(frame: pd.DataFrame, mapping: dict[str, str] | None, result: ParsedFile) -> dict[str, str]:
    """{file column: dose-log field}; the other columns go to ``result.extra_columns``, a field
    given twice or a required one missing to ``result.errors`` (a file error)."""
    wanted = {normalise_header(k): v for k, v in (mapping or {}).items() if v}
    rename: dict[str, str] = {}
    seen: dict[str, str] = {}
    for original in frame.columns:
        key = normalise_header(original)
        target = wanted.get(key, key)
        if target not in CSV_COLUMNS:
            result.extra_columns.append(str(original).strip())
        elif target in seen:
            result.errors.append(RowError(1, target, str(original),
                                          f"Two columns give {LABELS[target]} ({seen[target]!r} and "
                                          f"{original!r})."))
        else:
            seen[target] = str(original)
            rename[original] = target
    for c in REQUIRED_COLUMNS:
        if c not in seen:
            result.errors.append(RowError(1, c, "", f"The file has no {c} column (required: "
                                                    + ", ".join(REQUIRED_COLUMNS) + ")."))
    return rename


def get_mapping(session: Session) -> dict[str, str]:
    row = session.get(ClinicSetting, MAPPING_KEY)
    return dict((row.value or {}).get("columns", {})) if row else {}


def save_mapping(session: Session, actor: Actor, mapping: dict[str, str]) -> dict[str, str]:
    require_role(actor, Role.therapist.value, Role.prescriber.value)
    bad = {k: v for k, v in mapping.items() if v and v not in CSV_COLUMNS}
    if bad:
        raise ValidationError({"mapping": f"Unknown target column(s): {', '.join(sorted(set(bad.values())))}."})
    clean = {normalise_header(k): v for k, v in mapping.items() if v and normalise_header(k) != v}
    merged = get_mapping(session) | clean
    row = session.get(ClinicSetting, MAPPING_KEY) or ClinicSetting(key=MAPPING_KEY, value={})
    row.value = {"columns": merged}
    row.updated_at = utcnow()
    row.updated_by_id = actor.id
    session.add(row)
    session.flush()
    audit.record(session, actor, "settings.csv_mapping", "clinic_setting", MAPPING_KEY, detail=f"columns={len(merged)}")
    return merged
