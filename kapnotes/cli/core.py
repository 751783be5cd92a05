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
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--if-empty", action="store_true", help="do nothing when the database already has users")
    p.set_defaults(func=cmd_seed_demo)

    p = sub.add_parser("verify-audit", help="check the audit log's hash chain")
    p.set_defaults(func=cmd_verify_audit)


def cmd_init_db(args) -> int:
    url = get_settings().database_url
    migrate(url)
    print("database ready")
    return 0


def _read_password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    second = getpass.getpass("Repeat password: ")
    if first != second:
        raise ValidationError({"password": "The two passwords differ."})
    return first


def cmd_create_user(args) -> int:
    password = _read_password(args)
    with session_scope(make_engine()) as session:
        user = auth.create_user(session, None, args.username, args.role, args.full_name, password, args.credentials)
        print(f"created {user.role} {user.username}")
    return 0


def cmd_add_patient(args) -> int:
    dob = parse_date(args.dob, "dob")
    with session_scope(make_engine()) as session:
        patient = patients.add_patient(session, None, args.mrn, args.name, dob, args.therapist, args.prescriber,
                                       args.diagnosis)
        print(f"added patient {patient.mrn}")
    return 0


def cmd_seed_demo(args) -> int:
    from kapnotes import seed

    engine = make_engine()
    with session_scope(engine) as session:
        if args.if_empty and session.exec(select(func.count()).select_from(User)).one() > 0:
            print("database already has data; demo clinic not seeded")
            return 0
    summary = seed.seed_demo(engine, patients=args.patients, years=args.years, seed=args.seed)
    print(summary.describe())
    return 0


def cmd_verify_audit(args) -> int:
    with session_scope(make_engine()) as session:
        report = audit.verify_chain(session)
    if report.ok:
        print(f"audit chain intact: {report.count} events; head {report.head_hash}")
        return 0
    print(f"audit chain BROKEN at event {report.first_bad_id}: {report.problem} "
          f"({report.count} events checked)", file=sys.stderr)
    return 1
