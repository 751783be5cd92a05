"""``backup``: a checked copy of the database for the clinic's records and disaster recovery."""

from __future__ import annotations

from pathlib import Path

from kapnotes.backup import create_backup, verify_backup
from kapnotes.cli.core import ready_engine
from kapnotes.config import get_settings


def register(sub) -> None:
    p = sub.add_parser("backup", help="write a consistent, checked backup of the database (owner-only file)")
    p.add_argument("--out-dir", required=True, help="folder for the backup (created if missing)")
    p.add_argument("--keep", type=int, default=None, metavar="N",
                   help="then delete all but the N newest KAPNotes backups in that folder")
    p.add_argument("--trial-restore", action="store_true",
                   help="PostgreSQL: also restore the dump into a scratch database on the same server, check it "
                        "there, and drop it (needs CREATEDB); a SQLite copy is always opened and checked")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("verify-backup", help="check a backup file without changing it")
    p.add_argument("file", help="a kapnotes-*.db (SQLite) or kapnotes-*.dump (PostgreSQL) backup")
    p.add_argument("--trial-restore", metavar="SERVER_URL", nargs="?", const="", default=None,
                   help="PostgreSQL dumps: restore into a scratch database on this server (default: the "
                        "configured database's server), check the audit chain there, then drop it")
    p.set_defaults(func=cmd_verify_backup)


def cmd_backup(args) -> int:
    ready_engine().dispose()  # reachable and migrated, or a plain error
    report = create_backup(get_settings().database_url, Path(args.out_dir), keep=args.keep,
                           trial_restore=args.trial_restore)
    print(f"backup written: {report.path} ({report.bytes / 1_000_000:.1f} MB, {report.engine}); {report.check}"
          + (f": {report.audit_events} events, head {report.audit_head}" if report.audit_events is not None else ""))
    for path in report.removed:
        print(f"removed older backup {path.name}")
    if report.anchor_file is not None:
        print(f"audit chain head appended to {report.anchor_file}")
    print(f"the signing key {report.signing_key} is NOT in this backup: back it up separately (without it, "
          "signed notes restored from this backup cannot be verified)")
    return 0


def cmd_verify_backup(args) -> int:
    server = None if args.trial_restore is None else (args.trial_restore or get_settings().database_url)
    check, events, head = verify_backup(Path(args.file), server)
    print(f"backup ok: {args.file}; {check}" + (f": {events} events, head {head}" if events is not None else ""))
    return 0
