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


def cmd_verify_audit(args) -> int:
    from pathlib import Path

    anchor_path = Path(args.anchor) if args.anchor else None
    anchors = _read_anchors(anchor_path) if anchor_path else []
    with session_scope(ready_engine()) as session:
        report = audit.verify_chain(session)
        problems = audit.check_anchors(session, anchors, report) if anchors and report.ok else []
    if not report.ok:
        print(f"audit chain BROKEN at event {report.first_bad_id}: {report.problem} "
              f"({report.count} events checked)", file=sys.stderr)
        return 1
    if problems:
        for problem in problems:
            print(f"audit chain does NOT match its anchors: {problem}", file=sys.stderr)
        return 1
    print(f"audit chain intact: {report.count} events; head {report.head_hash}")
    if anchor_path:
        print(f"{len(anchors)} anchor{'s' if len(anchors) != 1 else ''} in {anchor_path} match")
        head = audit.anchor_for(report)
        if head is not None and not args.no_append and (not anchors or anchors[-1].event_id != head.event_id
                                                        or anchors[-1].hash != head.hash):
            with anchor_path.open("a", encoding="utf-8") as fh:
                fh.write(head.to_json() + "\n")
            print(f"appended today's head (event {head.event_id}) to {anchor_path}")
    return 0
