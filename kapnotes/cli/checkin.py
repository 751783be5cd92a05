"""``checkin-link --patient MRN [--days N] [--handout FILE.pdf] [--base-url URL] [--ask-scales] [--user U]``
and ``checkin-link --patient MRN --revoke``.

The link is printed once (only its hash is stored). The command acts as a clinician on the
patient's care team: ``--user``, or by default the patient's therapist (as import-doses does).
"""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from kapnotes import checkin, csv_import
from kapnotes.access import require_patient
from kapnotes.actor import actor_of
from kapnotes.cli.core import ready_engine
from kapnotes.db import session_scope
from kapnotes.errors import ValidationError
from kapnotes.models import User

DEFAULT_BASE_URL = "http://localhost:8501"


def register(sub) -> None:
    p = sub.add_parser("checkin-link", help="make (or end) a patient's check-in link, optionally with the handout")
    p.add_argument("--patient", required=True, metavar="MRN", help="the patient's MRN")
    p.add_argument("--days", type=int, default=None, help="how long the link works (default KAPNOTES_CHECKIN_DAYS)")
    p.add_argument("--handout", default=None, metavar="FILE.pdf", help="also write the patient handout here")
    p.add_argument("--base-url", default=DEFAULT_BASE_URL, metavar="URL",
                   help=f"the app's address as the patient reaches it (default {DEFAULT_BASE_URL})")
    p.add_argument("--ask-scales", action="store_true", help="ask for the GAD-7 and PHQ-9 at the next check-in")
    p.add_argument("--user", default=None, help="the clinician making the link (default: the patient's therapist)")
    p.add_argument("--revoke", action="store_true", help="end all of the patient's links instead")
    p.set_defaults(func=cmd_checkin_link)


def _actor(session, patient, username: str | None):
    if username:
        user = session.exec(select(User).where(User.username == username.strip().lower())).first()
        if user is None or not user.is_active:
            raise ValidationError({"user": f"No active user named {username!r}."})
    else:
        user = csv_import.default_importer(session, patient)
    actor = actor_of(user)
    require_patient(session, actor, patient.id)
    return actor


def cmd_checkin_link(args) -> int:
    base = (args.base_url or "").strip()
    if not base.startswith(("http://", "https://")):
        raise ValidationError({"base_url": f"The base URL must start with http:// or https://, got {base!r}."})
    with session_scope(ready_engine()) as session:
        patient = csv_import.patient_by_mrn(session, args.patient)
        actor = _actor(session, patient, args.user)
        if args.revoke:
            n = checkin.revoke_all(session, actor, patient.id)
            print(f"ended {n} check-in link{'s' if n != 1 else ''} of {patient.mrn}")
            return 0
        link, token = checkin.create_link(session, actor, patient.id, args.days, ask_scales=args.ask_scales)
        url = checkin.link_url(base, token)
        pdf = checkin.handout_pdf(session, actor, link, url) if args.handout else None
        expires = link.expires_at
    if pdf is not None:
        Path(args.handout).write_bytes(pdf)
    print(url)
    print(f"expires {expires.isoformat(timespec='minutes')}" + (f"; handout written to {args.handout}"
                                                               if pdf is not None else ""))
    return 0
