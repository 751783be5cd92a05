"""Notifications: nobody has to go looking for urgent items or decisions (issue 13 §5).

Three things, all scoped by care team like every clinical read:

- ``urgent_counts``: what a prescriber's sidebar shows on every page (urgent items waiting,
  and everything waiting) in one COUNT query, cheap enough for every rerun.
- ``decisions_since_last_visit`` / ``mark_decisions_seen``: the decisions on items a
  therapist sent or proposed since they last marked them seen. A first visit (never marked)
  shows the last ``FIRST_VISIT_DAYS`` days, so a new account is neither flooded with history
  nor left blind to this fortnight's decisions.
- ``urgent_item_created``: optional e-mail to the care team's prescribers when an urgent item
  arrives, through the clinic's SMTP server (``KAPNOTES_SMTP_URL``; unset: nothing is sent or
  attempted). The message carries a count only, never patient information.

When the e-mail goes out: only after the transaction that made the item commits (a session
``after_commit`` hook, registered once per session); a rollback sends nothing. The hook
reads the recipients and their counts in a fresh, short transaction (a session cannot run
SQL inside ``after_commit``), so several urgent items in one transaction give one message per
prescriber with the committed count. The SMTP conversation itself runs in a background thread,
not in the request: a slow or unreachable mail server must not freeze the page that saved a
dose (and the commit has already happened, so there is nothing left for it to protect).
The threads are not daemons (a CLI run that creates urgent items still delivers before the
process exits), and ``wait_for_outbox`` lets tests and scripts wait for them. A failure is
logged with user ids and the error type only, and never reaches the caller.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from sqlalchemy import and_, case, event, literal, or_
from sqlmodel import Session, col, func, select

from kapnotes import audit
from kapnotes.access import require_role, visible_patient_ids
from kapnotes.actor import Actor
from kapnotes.config import SmtpSettings, get_settings
from kapnotes.errors import ValidationError
from kapnotes.models import (
    AdjustmentStatus,
    CareTeamMember,
    DoseAdjustment,
    Patient,
    Role,
    TreatmentPlan,
    User,
    UTCDateTime,
)
from kapnotes.timeutil import utcnow

log = logging.getLogger(__name__)

FIRST_VISIT_DAYS = 14
DECIDED_STATES = (AdjustmentStatus.approved.value, AdjustmentStatus.modified.value, AdjustmentStatus.rejected.value)
SUBJECT = "KAPNotes: urgent items waiting"
SMTP_TIMEOUT_SECONDS = 20


# --- the prescriber's count ------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueCounts:
    urgent: int
    waiting: int


def urgent_counts(session: Session, actor: Actor) -> QueueCounts:
    """Urgent and all pending items of the prescriber's patients: one COUNT query (every rerun)."""
    require_role(actor, Role.prescriber.value)
    waiting, urgent = session.exec(
        select(func.count(), func.coalesce(func.sum(case((col(DoseAdjustment.urgent), 1), else_=0)), 0))
        .select_from(DoseAdjustment)
        .where(DoseAdjustment.status == AdjustmentStatus.pending.value,
               col(DoseAdjustment.patient_id).in_(visible_patient_ids(actor)))
    ).one()
    return QueueCounts(int(urgent), int(waiting))


# --- the therapist's decisions since the last visit ------------------------------------------------


@dataclass(frozen=True)
class Decision:
    adjustment_id: int
    patient_id: int
    patient_name: str
    mrn: str
    status: str  # approved / modified / rejected
    decided_by: str
    decided_at: datetime
    action: str
    proposed_dose_mg: float | None
    proposed_interval_days: int | None
    decided_dose_mg: float | None
    decided_interval_days: int | None
    plan_dose_mg: float | None  # the plan the item was made against
    plan_interval_days: int | None
    rationale: str


def _decisions_filter(actor: Actor, now: datetime):
    seen_at = select(User.decisions_seen_at).where(User.id == actor.id).scalar_subquery()
    return and_(
        col(DoseAdjustment.status).in_(DECIDED_STATES),
        or_(DoseAdjustment.sent_by_id == actor.id, DoseAdjustment.created_by_id == actor.id),
        col(DoseAdjustment.decided_at) > func.coalesce(
            seen_at, literal(now - timedelta(days=FIRST_VISIT_DAYS), UTCDateTime())),
        col(DoseAdjustment.decided_at) <= now,
        col(DoseAdjustment.patient_id).in_(visible_patient_ids(actor)),
    )


def decisions_count(session: Session, actor: Actor) -> int:
    """How many decisions on the therapist's items are new since their last visit: one COUNT query."""
    require_role(actor, Role.therapist.value)
    return int(session.exec(
        select(func.count()).select_from(DoseAdjustment).where(_decisions_filter(actor, utcnow()))
    ).one())


def decisions_since_last_visit(session: Session, actor: Actor, limit: int = 50) -> list[Decision]:
    """The decisions themselves, newest first (patients of the therapist's care teams only)."""
    require_role(actor, Role.therapist.value)
    decider = User.__table__.alias("decider")
    rows = session.exec(
        select(DoseAdjustment, Patient.full_name, Patient.mrn, decider.c.full_name, decider.c.credentials,
               TreatmentPlan.dose_mg, TreatmentPlan.interval_days)
        .join(Patient, Patient.id == DoseAdjustment.patient_id)
        .join(decider, decider.c.id == DoseAdjustment.decided_by_id, isouter=True)
        .join(TreatmentPlan, TreatmentPlan.id == DoseAdjustment.plan_id, isouter=True)
        .where(_decisions_filter(actor, utcnow()))
        .order_by(col(DoseAdjustment.decided_at).desc(), col(DoseAdjustment.id).desc())
        .limit(limit)
    ).all()
    out = []
    for adj, name, mrn, by_name, by_cred, plan_dose, plan_interval in rows:
        by = (f"{by_name}, {by_cred}" if by_cred else by_name) if by_name else "a prescriber"
        out.append(Decision(adj.id, adj.patient_id, name, mrn, adj.status, by, adj.decided_at, adj.action,
                            adj.proposed_dose_mg, adj.proposed_interval_days, adj.decided_dose_mg,
                            adj.decided_interval_days, plan_dose, plan_interval, adj.decision_rationale or ""))
    audit.record(session, actor, "decisions.read", "dose_adjustment", None, None, detail=f"items={len(out)}",
                 coalesce=audit.READ_COALESCE)
    return out


def mark_decisions_seen(session: Session, actor: Actor, upto: datetime | None = None) -> datetime:
    """The therapist has seen the decisions up to ``upto`` (the newest one shown; default now).

    Passing the newest decision shown, not "now", keeps a decision that arrived while the
    list was open unseen. Never moves backwards, never into the future.
    """
    require_role(actor, Role.therapist.value)
    now = utcnow()
    upto = min(upto or now, now)
    user = session.get(User, actor.id)
    if user is None:
        raise ValidationError({"user": "No such user."})
    if user.decisions_seen_at is None or upto > user.decisions_seen_at:
        user.decisions_seen_at = upto
        session.add(user)
    audit.record(session, actor, "decisions.seen", "user", actor.id)
    return user.decisions_seen_at


# --- e-mail to prescribers when an urgent item arrives -------------------------------------------

_PENDING_KEY = "kapnotes_notify_patients"
_HOOKED_KEY = "kapnotes_notify_hooked"
_outbox: list[threading.Thread] = []
_outbox_lock = threading.Lock()


def urgent_item_created(session: Session, patient_id: int) -> None:
    """Called by ``suggestions`` inside the transaction that made an urgent queue item.

    Does nothing now but remember the patient; the e-mail (if configured) goes out once
    the transaction commits. Unset ``KAPNOTES_SMTP_URL``: nothing is remembered or sent.
    """
    if get_settings().smtp is None:
        return
    session.info.setdefault(_PENDING_KEY, set()).add(int(patient_id))
    if not session.info.get(_HOOKED_KEY):
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_transaction_end", _after_transaction_end)
        session.info[_HOOKED_KEY] = True


def _after_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a SAVEPOINT released: the outer transaction may still roll back
    patient_ids = session.info.pop(_PENDING_KEY, None)
    if not patient_ids:
        return
    try:
        smtp = get_settings().smtp
        if smtp is None:
            return
        with Session(session.get_bind()) as fresh:
            messages = _messages(fresh, patient_ids, smtp)
            fresh.rollback()
    except Exception as exc:  # never let a notice break the commit that already happened
        log.warning("Urgent-item notice not prepared: %s", type(exc).__name__)
        return
    if messages:
        _start_sending(smtp, messages)


def _after_transaction_end(session: Session, transaction) -> None:
    if transaction.parent is None:  # the outer transaction is over (committed above, or rolled back)
        session.info.pop(_PENDING_KEY, None)


def _prescribers_to_notify(session: Session, patient_ids) -> list[User]:
    team_ids = select(Patient.care_team_id).where(col(Patient.id).in_(sorted(patient_ids)))
    return list(session.exec(
        select(User)
        .join(CareTeamMember, CareTeamMember.user_id == User.id)
        .where(col(CareTeamMember.team_id).in_(team_ids), User.role == Role.prescriber.value,
               col(User.is_active), col(User.email).is_not(None), User.email != "")
        .distinct()
        .order_by(User.id)
    ).all())


def _urgent_waiting(session: Session, user_id: int) -> int:
    visible = (select(Patient.id).join(CareTeamMember, CareTeamMember.team_id == Patient.care_team_id)
               .where(CareTeamMember.user_id == user_id))
    return int(session.exec(
        select(func.count()).select_from(DoseAdjustment)
        .where(DoseAdjustment.status == AdjustmentStatus.pending.value, col(DoseAdjustment.urgent),
               col(DoseAdjustment.patient_id).in_(visible))
    ).one())


def message_text(count: int) -> str:
    """The whole body: a count and where to look. No patient, dose, flag or link to a record."""
    if count == 1:
        return "1 urgent item is waiting in KAPNotes. Sign in to review it.\n"
    return f"{count} urgent items are waiting in KAPNotes. Sign in to review them.\n"


def _messages(session: Session, patient_ids, smtp: SmtpSettings) -> list[tuple[int, EmailMessage]]:
    out = []
    for user in _prescribers_to_notify(session, patient_ids):
        count = _urgent_waiting(session, user.id)
        if count == 0:  # e.g. the item was in a SAVEPOINT that rolled back, or already decided
            continue
        msg = EmailMessage()
        msg["From"] = smtp.sender
        msg["To"] = user.email
        msg["Subject"] = SUBJECT
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=smtp.sender.rpartition("@")[2] or None)
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(message_text(count))
        out.append((user.id, msg))
    return out


def _start_sending(smtp: SmtpSettings, messages: list[tuple[int, EmailMessage]]) -> None:
    thread = threading.Thread(target=_send, args=(smtp, messages), name="kapnotes-notify")
    with _outbox_lock:
        _outbox[:] = [t for t in _outbox if t.is_alive()]
        _outbox.append(thread)
    thread.start()


def _send(smtp: SmtpSettings, messages: list[tuple[int, EmailMessage]]) -> None:
    try:
        if smtp.tls:
            client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=SMTP_TIMEOUT_SECONDS,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=SMTP_TIMEOUT_SECONDS)
        with client:
            if not smtp.tls:
                client.ehlo()
                if client.has_extn("starttls"):
                    client.starttls(context=ssl.create_default_context())
                    client.ehlo()
            if smtp.username:
                client.login(smtp.username, smtp.password or "")
            for user_id, msg in messages:
                try:
                    client.send_message(msg)
                except (smtplib.SMTPException, OSError) as exc:
                    log.warning("Urgent-item notice to user %s not sent: %s", user_id, type(exc).__name__)
    except Exception as exc:  # an unreachable or refusing server: log, never raise
        log.warning("Urgent-item notices to users %s not sent: %s", [u for u, _ in messages], type(exc).__name__)


def wait_for_outbox(timeout: float = 30.0) -> bool:
    """Wait until every notice handed to the mail server so far is done; False on timeout."""
    deadline = utcnow() + timedelta(seconds=timeout)
    with _outbox_lock:
        threads = list(_outbox)
    for t in threads:
        t.join(max(0.0, (deadline - utcnow()).total_seconds()))
    return not any(t.is_alive() for t in threads)
