"""Foundation commands: init-db, create-user, add-patient, seed-demo, verify-audit."""

from __future__ import annotations

import getpass
import sys

from sqlalchemy import func
from sqlmodel import select

from kapnotes import audit, auth, patients
from kapnotes.config import get_settings
from kapnotes.db import make_engine, migrate, session_scope
from kapnotes.errors import ValidationError
from kapnotes.models import Role, User
from kapnotes.timeutil import parse_date


def register(sub) -> None:
    p = sub.add_parser("init-db", help="create or upgrade the database schema (safe to run twice)")
    p.set_defaults(func=cmd_init_db)

    p = sub.add_parser("create-user", help="create an account")
    p.add_argument("username")
    p.add_argument("--role", required=True, choices=[r.value for r in Role])
    p.add_argument("--full-name", required=True)
    p.add_argument("--credentials", default="", help="e.g. LMFT, PsyD, MD, NP")
    p.add_argument("--email", default=None, metavar="ADDRESS",
                   help="where urgent-item notices go (prescribers; optional; they never carry patient information)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.set_defaults(func=cmd_create_user)

    p = sub.add_parser("add-patient", help="register a patient with a therapist and a prescriber")
    p.add_argument("--mrn", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--dob", required=True, help="date of birth, YYYY-MM-DD")
    p.add_argument("--therapist", required=True, help="therapist's username")
    p.add_argument("--prescriber", required=True, help="prescriber's username")
    p.add_argument("--diagnosis", default="F41.1", help="ICD-10 code (default F41.1)")
    p.set_defaults(func=cmd_add_patient)

    p = sub.add_parser("seed-demo", help="fill an empty database with a demo clinic")
    p.add_argument("--patients", type=int, default=8)
    p.add_argument("--years", type=float, default=0.35)
    p.add_argument("--seed", type=int, default=7, help="same seed (and --today) gives the same clinic")
    p.add_argument("--today", default=None, help="date the history ends, YYYY-MM-DD (default: today)")
    p.add_argument("--if-empty", action="store_true", help="do nothing when the database already has users")
    p.set_defaults(func=cmd_seed_demo)

    p = sub.add_parser("verify-audit", help="check the audit log's hash chain (and anchors kept elsewhere)")
    p.add_argument("--anchor", metavar="FILE", default=None,
                   help="a file of past chain heads kept outside the database (e.g. on another host): every "
                        "head in it must still be in the log with the same hash; when all is well, today's "
                        "head is appended to it")
    p.add_argument("--no-append", action="store_true", help="with --anchor: check only, do not append the head")
    p.set_defaults(func=cmd_verify_audit)

    p = sub.add_parser("seal-legacy-signatures",
                       help="one-off: add keyed signatures (MACs) to notes and addenda signed before MACs existed, "
                            "after checking each against its hash and the audit log")
    p.set_defaults(func=cmd_seal_legacy)

    p = sub.add_parser("rotate-signing-key", help="add a new signing key; new signatures use it, older ones keep "
                                                  "verifying with the key they name")
    p.set_defaults(func=cmd_rotate_key)

    p = sub.add_parser("grant-runtime-role",
                       help="PostgreSQL, run as the owner after init-db: give ROLE the rights the app needs and "
                            "no more (no DDL; audit events INSERT/SELECT only)")
    p.add_argument("role", help="the (existing) role the app connects as; not the owner")
    p.set_defaults(func=cmd_grant_runtime_role)


def cmd_init_db(args) -> int:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from kapnotes.errors import KapError

    url = get_settings().database_url
    try:
        migrate(url)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        shown = make_url(url).render_as_string(hide_password=True)
        raise KapError(f"Cannot prepare the database {shown}: {reason}") from None
    print("database ready")
    from kapnotes.notes import hashing as notehash

    key_path, created = notehash.ensure_key_file(notehash.default_key_path(url))
    print(f"signing key {'created' if created else 'found'}: {key_path} (back it up apart from the database; "
          "without it signatures cannot be verified)")
    from kapnotes import csv_import

    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            removed = csv_import.cleanup_abandoned_imports(session)
    finally:
        engine.dispose()
    if removed:
        print(f"removed {removed} import{'s' if removed != 1 else ''} left unfinished by a stopped process")
    return 0


def ready_engine():
    """The configured database, checked to be reachable and migrated (else a plain error)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from kapnotes.db import current_revision
    from kapnotes.errors import KapError

    url = get_settings().database_url
    shown = make_url(url).render_as_string(hide_password=True)
    engine = make_engine(url)
    try:
        revision = current_revision(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise KapError(f"Cannot open the database {shown}: {reason}") from None
    if revision is None:
        engine.dispose()
        raise KapError(f"The database {shown} has no KAPNotes tables yet. "
                       "Run `python -m kapnotes init-db` first.")
    return engine


def _read_password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    second = getpass.getpass("Repeat password: ")
    if first != second:
        raise ValidationError({"password": "The two passwords differ."})
    return first


def cmd_create_user(args) -> int:
    from kapnotes import admin

    admin.validate_email(args.email)  # a typo is refused before the password prompt
    engine = ready_engine()
    password = _read_password(args)
    with session_scope(engine) as session:
        user = auth.create_user(session, None, args.username, args.role, args.full_name, password, args.credentials)
        if args.email is not None:
            admin.set_email(session, None, user.id, args.email)
        print(f"created {user.role} {user.username}")
    return 0


def cmd_add_patient(args) -> int:
    dob = parse_date(args.dob, "dob")
    with session_scope(ready_engine()) as session:
        patient = patients.add_patient(session, None, args.mrn, args.name, dob, args.therapist, args.prescriber,
                                       args.diagnosis)
        print(f"added patient {patient.mrn}")
    return 0


def cmd_seed_demo(args) -> int:
    from kapnotes import seed

    engine = ready_engine()
    with session_scope(engine) as session:
        if args.if_empty and session.exec(select(func.count()).select_from(User)).one() > 0:
            print("database already has data; demo clinic not seeded")
            demo = [(u, r) for u, r, _, _ in seed.DEMO_USERS
                    if session.exec(select(User.id).where(User.username == u)).first() is not None]
            if demo:
                print("demo sign-ins (unless their passwords were changed):")
                for username, role in demo:
                    print(f"  {role:<10} {username:<10} password: {seed.DEMO_PASSWORD}")
            return 0
    today = parse_date(args.today, "today") if args.today else None
    summary = seed.seed_demo(engine, patients=args.patients, years=args.years, seed=args.seed, today=today)
    print(summary.describe())
    _seal(engine, quiet=True)  # the seeder writes signed history directly: give it keyed signatures
    return 0


def _read_anchors(path) -> list:
    from kapnotes.errors import KapError

    anchors = []
    if not path.exists():
        return anchors
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            anchors.append(audit.Anchor.from_json(line))
        except ValueError as exc:
            raise KapError(f"{path}: line {n} is not an audit anchor ({exc}); the file was not changed.") from None
    return anchors


def _ring_or_none():
    from kapnotes.notes import hashing as notehash

    try:
        return notehash.keyring(create=False)
    except notehash.SigningKeyError as exc:
        print(f"warning: {exc}", file=sys.stderr)
        return None


def cmd_verify_audit(args) -> int:
    from pathlib import Path

    from kapnotes import notes

    anchor_path = Path(args.anchor) if args.anchor else None
    anchors = _read_anchors(anchor_path) if anchor_path else []
    with session_scope(ready_engine(), write=False) as session:
        report = audit.verify_chain(session)
        problems = audit.check_anchors(session, anchors, report) if anchors and report.ok else []
        signatures = notes.verify_signatures(session, _ring_or_none()) if report.ok else None
    if not report.ok:
        print(f"audit chain BROKEN at event {report.first_bad_id}: {report.problem} "
              f"({report.count} events checked)", file=sys.stderr)
        return 1
    if problems:
        for problem in problems:
            print(f"audit chain does NOT match its anchors: {problem}", file=sys.stderr)
        return 1
    if signatures.problems:
        print(f"signed record ALTERED: {signatures.problems[0]}"
              + (f" (and {len(signatures.problems) - 1} more)" if len(signatures.problems) > 1 else ""),
              file=sys.stderr)
        return 1
    print(f"audit chain intact: {report.count} events; head {report.head_hash}")
    print(f"signatures intact: {signatures.notes} signed notes, {signatures.addenda} addenda"
          + (f"; {signatures.unsealed} signed before MACs; hash only (run seal-legacy-signatures)"
             if signatures.unsealed else ""))
    if anchor_path:
        print(f"{len(anchors)} anchor{'s' if len(anchors) != 1 else ''} in {anchor_path} match")
        head = audit.anchor_for(report)
        if head is not None and not args.no_append and (not anchors or anchors[-1].event_id != head.event_id
                                                        or anchors[-1].hash != head.hash):
            with anchor_path.open("a", encoding="utf-8") as fh:
                fh.write(head.to_json() + "\n")
            print(f"appended today's head (event {head.event_id}) to {anchor_path}")
    return 0


def _seal(engine, quiet: bool = False) -> int:
    from kapnotes import notes
    from kapnotes.errors import KapError
    from kapnotes.notes import hashing as notehash

    ring = notehash.keyring(create=True)
    with session_scope(engine) as session:
        chain = audit.verify_chain(session)
        if not chain.ok:
            raise KapError(f"The audit chain is broken at event {chain.first_bad_id}; nothing was sealed. "
                           "Run verify-audit.")
        sealed, refused = notes.seal_legacy_signatures(session, ring)
    if not quiet or refused:
        print(f"sealed {sealed} signature{'s' if sealed != 1 else ''} with key {ring.current}")
    for problem in refused:
        print(f"NOT sealed: {problem}", file=sys.stderr)
    return 1 if refused else 0


def cmd_seal_legacy(args) -> int:
    engine = ready_engine()
    try:
        return _seal(engine)
    finally:
        engine.dispose()


def cmd_rotate_key(args) -> int:
    from kapnotes.notes import hashing as notehash

    key_id = notehash.rotate_key()
    print(f"new signing key {key_id} added to {notehash.default_key_path()}; back the file up again")
    return 0


def cmd_grant_runtime_role(args) -> int:
    from kapnotes.db import grant_runtime_role

    engine = ready_engine()
    try:
        grant_runtime_role(engine, args.role)
    finally:
        engine.dispose()
    print(f"role {args.role} may now run the app: data rights on every table, audit events insert/select only, "
          "no DDL")
    return 0
