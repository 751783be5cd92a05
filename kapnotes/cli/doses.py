"""``import-doses --patient MRN FILE [--date-order dmy|mdy] [--dry-run] [--skip-invalid] [--user USERNAME]``.

FILE is a CSV (UTF-8, Windows-1252 or Latin-1; ``,`` ``;`` or tab) or an .xlsx workbook.
Slashed dates (``03/04/2026``) are read in the order the file settles (a day above 12);
when every date reads both ways the command stops and asks for ``--date-order``.

Exit 0 when the import (or dry run) went through; exit 1 with every row error on stderr
when a row is invalid and ``--skip-invalid`` was not given (nothing is written). A dose above
the plan's dose or the protocol ceiling is imported as the file says (the file is the record)
with a warning naming its row on stderr; the dose rules then hold the plan. The
whole import is one transaction: a crash or kill part-way leaves nothing behind.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sqlmodel import select

from kapnotes import csv_import, doses
from kapnotes.access import require_patient
from kapnotes.actor import actor_of
from kapnotes.config import get_settings
from kapnotes.db import batch_writer, make_engine, session_scope
from kapnotes.errors import ValidationError
from kapnotes.models import User


def register(sub) -> None:
    p = sub.add_parser("import-doses", help="import a patient's dose log from a CSV file")
    p.add_argument("--patient", required=True, metavar="MRN", help="the patient's MRN")
    p.add_argument("file", metavar="FILE", help="a .csv or .xlsx file")
    p.add_argument("--date-order", choices=sorted(csv_import.DATE_ORDERS), default=None,
                   help="how slashed dates are written: dmy (25/03/2026) or mdy (3/25/2026); "
                        "needed only when the file does not settle it")
    p.add_argument("--dry-run", action="store_true", help="check and count, write nothing")
    p.add_argument("--skip-invalid", action="store_true", help="import the valid rows, report the others")
    p.add_argument("--user", default=None,
                   help="username the entries are recorded for (default: the patient's therapist)")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=cmd_import_doses)


def _progress(quiet: bool):
    last = {"shown": -1}
    tty = sys.stderr.isatty()

    def show(stage: str, done: int, total: int) -> None:
        if quiet or total == 0:
            return
        pct = int(100 * done / total)
        if pct // 10 != last["shown"] // 10 or done == total:
            last["shown"] = pct
            bar = "#" * (pct // 5)
            end = "\n" if done == total or not tty else ""
            print(f"\r{stage}: [{bar:<20}] {done}/{total}" if tty else f"{stage}: {done}/{total} ({pct}%)",
                  end=end, file=sys.stderr, flush=True)

    return show


def cmd_import_doses(args) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise ValidationError({"file": f"No such file: {args.file}"})
    settings = get_settings()
    engine = batch_writer(make_engine(settings.database_url))  # waits its turn for the lock behind a busy clinic
    with session_scope(engine) as session:  # a short read: who, for whom, and the clinic's column mapping
        patient = csv_import.patient_by_mrn(session, args.patient)
        patient_id = patient.id
        actor = None
        entered_by = None
        if args.user:
            user = session.exec(select(User).where(User.username == args.user.strip().lower())).first()
            if user is None or not user.is_active:
                raise ValidationError({"user": f"No active user named {args.user!r}."})
            actor = actor_of(user)
            require_patient(session, actor, patient_id)
        else:
            entered_by = csv_import.default_importer(session, patient).id
        mapping = csv_import.get_mapping(session)
    parsed = csv_import.read_csv(path.read_bytes(), settings.tz, mapping=mapping, date_order=args.date_order)
    if parsed.detected() and not args.quiet:
        print(f"note: {parsed.detected()}", file=sys.stderr)
    if parsed.needs_date_order:
        print("error: every date in the file reads both as day/month/year and as month/day/year; "
              "say which with --date-order dmy or --date-order mdy. Nothing imported.", file=sys.stderr)
        return 1
    for name in parsed.extra_columns:
        print(f"note: extra column {name!r} ignored", file=sys.stderr)
    if not args.quiet:
        print(f"checked {parsed.total_rows} rows: {len(parsed.rows)} valid, {len(parsed.invalid_rows)} invalid",
              file=sys.stderr, flush=True)
    # doses above the plan or the ceiling: recorded as the file says, flagged
    with session_scope(engine, write=False) as session:
        unusual = doses.unusual_rows(session, patient_id, parsed.rows)
    for number, message in unusual:
        print(f"warning: row {number}: {message} It is recorded as the file says; check the file if that is "
              "not what was taken.", file=sys.stderr)
    if parsed.errors and (parsed.file_error or not args.skip_invalid):
        for err in parsed.errors:
            print(f"error: {err.describe()}", file=sys.stderr)
        print(f"nothing imported: {len(parsed.invalid_rows)} invalid row(s)"
              + ("" if parsed.file_error else "; fix them or use --skip-invalid"), file=sys.stderr)
        return 1
    with session_scope(engine) as session:
        result = csv_import.import_doses(
            session, actor, patient_id, parsed, path.name, skip_invalid=args.skip_invalid, dry_run=args.dry_run,
            entered_by_id=entered_by, progress=_progress(args.quiet))
        if args.dry_run:
            session.rollback()
    for err in result.errors:
        print(f"skipped: {err.describe()}", file=sys.stderr)
    prefix = "dry run (nothing written): " if args.dry_run else ""
    print(f"{prefix}imported {result.imported}, duplicates {result.duplicates}, invalid {result.invalid}"
          + ("" if args.dry_run else f" (batch {result.batch_id})"))
    return 0
