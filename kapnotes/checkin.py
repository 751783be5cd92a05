"""Patient check-in: a link per patient, and what a patient reports through it.

A clinician on the patient's care team makes a link: a random token (256 bits,
``secrets.token_urlsafe(32)``) of which only the SHA-256 is stored, so the database cannot
give the link away. It is bound to one patient, expires (``KAPNOTES_CHECKIN_DAYS``) and can
be revoked. The patient, who has no account, reaches the check-in page only with it.

A check-in goes into the record through the same services as a clinician's entry
(``doses.add_dose``, ``assessments.record_assessment``), so validation, the audit trail and
the engine's re-evaluation (hold → the prescriber's queue, urgent) are the same. The entry's
source is ``patient``; ``entered_by`` is the clinician who made the link: the patient has no
user, the link is that clinician's act of giving access, and the services keep checking that
the clinician is still on the care team (a clinician who left the team ends their links).

Every refusal of a token (unknown, expired, revoked) is the same ``None``; callers show one
generic page and count the failure per IP (``LIMITER``, in the database).

What the patient enters and its plain-words check live in ``kapnotes.checkin_form``; the
handout's data (``PlanWords``, ``HandoutData``) beside its builder in ``kapnotes.pdf``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from kapnotes import assessments, audit, doses, throttle
from kapnotes.access import require_patient, require_record
from kapnotes.actor import Actor, actor_of
from kapnotes.checkin_form import NOTE_MAX, SIDE_EFFECTS, CheckinInput, validate  # noqa: F401 - re-exported
from kapnotes.config import get_settings
from kapnotes.dosing import protocol_settings
from kapnotes.dosing.plans import current_plan
from kapnotes.errors import PermissionDenied, ValidationError
from kapnotes.models import (
    Assessment,
    CheckinLink,
    CheckinSubmission,
    DoseEntry,
    DoseSource,
    Instrument,
    Patient,
    PlanStatus,
    TreatmentPlan,
    User,
)
from kapnotes.pdf.handout_data import HandoutData, PlanWords
from kapnotes.query import not_voided
from kapnotes.timeutil import fmt_local, utcnow

PATIENT_USERNAME = "checkin-link"  # the audit trail's name for events a patient causes through a link
MAX_DAYS = 365
NAUSEA_WORDS = ("None", "Mild", "Moderate", "Severe")  # 0–3, as the dose log stores it
FORMULATION_WORDS = {
    "odt": "tablet that melts in the mouth (ODT)",
    "sublingual": "tablet that dissolves under the tongue",
    "troche": "lozenge (troche) that dissolves in the mouth",
    "other": "form your prescriber gave you",
}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def link_url(base_url: str, token: str) -> str:
    """The address a patient opens: ``/checkin?t=`` checks the token, keeps it in an HttpOnly
    cookie and sends the browser on to the page with no token in the address (issue 15)."""
    return f"{base_url.rstrip('/')}/checkin?t={token}"


# --- links (clinician side) ------------------------------------------------------------------


def create_link(session: Session, actor: Actor, patient_id: int, days: int | None = None,
                ask_scales: bool = False) -> tuple[CheckinLink, str]:
    """A new link for the patient: (row, token). The token is returned once and never stored."""
    require_patient(session, actor, patient_id)
    days = get_settings().checkin_days if days is None else days
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise ValidationError({"days": f"A link lasts 1 to {MAX_DAYS} days, got {days!r}."})
    token = secrets.token_urlsafe(32)
    now = utcnow()
    link = CheckinLink(patient_id=patient_id, token_hash=hash_token(token), created_by_id=actor.id,
                       created_at=now, expires_at=now + timedelta(days=days), ask_scales=bool(ask_scales))
    session.add(link)
    session.flush()
    audit.record(session, actor, "checkin.link_create", "checkin_link", link.id, patient_id,
                 detail=f"days={days}" + (" scales_requested" if ask_scales else ""))
    return link, token


def list_links(session: Session, actor: Actor, patient_id: int) -> list[CheckinLink]:
    """The patient's links, newest first (revoked and expired ones too)."""
    require_patient(session, actor, patient_id)
    return list(session.exec(select(CheckinLink).where(CheckinLink.patient_id == patient_id)
                             .order_by(col(CheckinLink.id).desc())).all())


def last_patient_dose(session: Session, actor: Actor, patient_id: int) -> DoseEntry | None:
    """The newest live patient-reported dose (the panel shows it: what came in by check-in)."""
    require_patient(session, actor, patient_id)
    return session.exec(select(DoseEntry).where(
        DoseEntry.patient_id == patient_id, DoseEntry.source == DoseSource.patient.value,
        not_voided(DoseEntry)).order_by(col(DoseEntry.taken_at).desc()).limit(1)).first()


def link_status(link: CheckinLink, now: datetime | None = None) -> str:
    now = now or utcnow()
    if link.revoked_at is not None:
        return "revoked"
    if link.expires_at <= now:
        return "expired"
    return "active"


def revoke_link(session: Session, actor: Actor, link_id: int) -> CheckinLink:
    link = require_record(session, actor, CheckinLink, link_id)
    if link.revoked_at is None:
        link.revoked_at = utcnow()
        link.revoked_by_id = actor.id
        session.add(link)
        session.flush()
        audit.record(session, actor, "checkin.link_revoke", "checkin_link", link.id, link.patient_id)
    return link


def revoke_all(session: Session, actor: Actor, patient_id: int) -> int:
    """End every live link of the patient; returns how many were ended."""
    n = 0
    for link in list_links(session, actor, patient_id):
        if link.revoked_at is None:
            revoke_link(session, actor, link.id)
            n += 1
    return n


def handout_pdf(session: Session, actor: Actor, link: CheckinLink, url: str) -> bytes:
    """The patient handout for this link (plan in plain words, QR code of ``url``); audited."""
    from kapnotes.pdf.handout_pdf import build_handout_pdf  # ReportLab only when a handout is built

    patient = require_patient(session, actor, link.patient_id)
    settings = get_settings()
    proto = protocol_settings.in_force_or_default(session)
    data = HandoutData(settings.clinic_name, first_name(patient.full_name),
                       plan_words(current_plan(session, link.patient_id)), url,
                       fmt_local(link.expires_at, settings.tz, False), settings.crisis_line,
                       bp_hold=(proto.hold_systolic, proto.hold_diastolic))
    audit.record(session, actor, "checkin.handout", "checkin_link", link.id, link.patient_id)
    return build_handout_pdf(data)


# --- the patient's side ------------------------------------------------------------------------


def resolve(session: Session, token: str | None) -> CheckinLink | None:
    """The live link for this token, or None (unknown, expired, revoked: the same None)."""
    if not token or not isinstance(token, str) or len(token) > 200:
        return None
    link = session.exec(select(CheckinLink).where(CheckinLink.token_hash == hash_token(token))).first()
    return link if link is not None and _usable(session, link) else None


def live_link(session: Session, link_id: int | None) -> CheckinLink | None:
    """The link a page remembered by id, if it is still usable (it may have been revoked since)."""
    if link_id is None:
        return None
    link = session.get(CheckinLink, link_id)
    return link if link is not None and _usable(session, link) else None


def _usable(session: Session, link: CheckinLink) -> bool:
    if link_status(link) != "active":
        return False
    return _link_actor(session, link) is not None


def _link_actor(session: Session, link: CheckinLink) -> Actor | None:
    """The clinician who made the link, while still active and on the patient's care team."""
    user = session.get(User, link.created_by_id)
    if user is None or not user.is_active:
        return None
    actor = actor_of(user)
    try:
        require_patient(session, actor, link.patient_id)
    except PermissionDenied:
        return None
    return actor


def note_opened(session: Session, link: CheckinLink) -> None:
    """Audit that the link was opened (once per browser session: the page calls it once)."""
    audit.record(session, None, "checkin.link_open", "checkin_link", link.id, link.patient_id,
                 actor_username=PATIENT_USERNAME)


@dataclass(frozen=True)
class PatientView:
    """All the check-in page may show: a first name, the clinic, the plan, what to ask."""

    first_name: str
    clinic_name: str
    plan: PlanWords | None
    ask_gad7: bool
    ask_phq9: bool
    crisis_line: str


def plan_words(plan: TreatmentPlan | None) -> PlanWords | None:
    if plan is None or plan.status != PlanStatus.active:
        return None
    return PlanWords(plan.dose_mg, plan.formulation, FORMULATION_WORDS.get(plan.formulation, plan.formulation),
                     plan.minutes_in_mouth, plan.administration, plan.interval_days, plan.fasting_instructions,
                     plan.instructions)


def first_name(full_name: str) -> str:
    parts = (full_name or "").split()
    return parts[0] if parts else ""


def scales_due(session: Session, link: CheckinLink, today: date | None = None) -> dict[str, bool]:
    """GAD-7 / PHQ-9 → due now: none recorded in ``KAPNOTES_CHECKIN_SCALES_DAYS`` days, or the
    clinician asked on this link and none came in through it yet."""
    settings = get_settings()
    today = today or assessments._today()
    since = today - timedelta(days=settings.checkin_scales_days - 1)
    asked_since = link.created_at.astimezone(settings.tz).date()
    out = {}
    for instrument in (Instrument.gad7.value, Instrument.phq9.value):
        latest = session.exec(
            select(Assessment.administered_on).where(
                Assessment.patient_id == link.patient_id, Assessment.instrument == instrument,
                not_voided(Assessment))
            .order_by(col(Assessment.administered_on).desc()).limit(1)).first()
        due = latest is None or latest < since
        if link.ask_scales and not due:
            due = not _answered_through(session, link, instrument) or latest < asked_since
        out[instrument] = due
    return out


def _answered_through(session: Session, link: CheckinLink, instrument: str) -> bool:
    for ids in session.exec(select(CheckinSubmission.assessment_ids).where(CheckinSubmission.link_id == link.id)):
        for aid in ids or []:
            row = session.get(Assessment, aid)
            if row is not None and row.instrument == instrument:
                return True
    return False


def patient_view(session: Session, link: CheckinLink) -> PatientView:
    patient = session.get(Patient, link.patient_id)
    due = scales_due(session, link)
    settings = get_settings()
    return PatientView(first_name(patient.full_name), settings.clinic_name,
                       plan_words(current_plan(session, link.patient_id)),
                       due[Instrument.gad7.value], due[Instrument.phq9.value], settings.crisis_line)


class AlreadySent(ValidationError):
    """A concurrent submit of the same form won: roll back and call ``submit`` again to read it."""

    def __init__(self):
        super().__init__({"_": "This check-in was already sent."})


@dataclass(frozen=True)
class CheckinResult:
    submission_id: int
    dose_entry_id: int | None
    assessment_ids: tuple[int, ...]
    crisis: bool  # PHQ-9 item 9 above 0: show the crisis resources now
    repeated: bool = False  # this form was already submitted: nothing new was stored


def submit(session: Session, link_id: int, nonce: str, data: CheckinInput) -> CheckinResult:
    """Store one check-in: a patient-reported dose and the answered scales, in one transaction.

    ``nonce`` identifies the form render: the same nonce again (a double tap, a resubmit)
    returns the first result and stores nothing. Bad input raises ``ValidationError`` (plain
    words, field by field) and writes nothing. A link that is no longer usable raises
    ``PermissionDenied``.
    """
    if not nonce or len(nonce) > 64:
        raise ValidationError({"_": "This form has expired. Please reload the page."})
    link = session.get(CheckinLink, link_id)
    if link is None or not _usable(session, link):
        raise PermissionDenied("This check-in link is not valid.")
    earlier = session.exec(select(CheckinSubmission).where(CheckinSubmission.nonce == nonce)).first()
    if earlier is not None:
        if earlier.link_id != link.id:
            raise PermissionDenied("This check-in link is not valid.")
        return _result(earlier, repeated=True)
    actor = _link_actor(session, link)
    plan = plan_words(current_plan(session, link.patient_id))
    errors = validate(data, plan)
    if errors:
        raise ValidationError(errors)
    # claim the nonce first: a concurrent double tap fails here (unique) rather than adding a second dose
    sub = CheckinSubmission(link_id=link.id, nonce=nonce)
    session.add(sub)
    try:
        session.flush()
    except IntegrityError:  # the transaction is spoilt: the caller rolls back and asks again
        raise AlreadySent() from None
    dose_mg = float(data.dose_mg if data.dose_mg is not None else plan.dose_mg)
    tags = ";".join(SIDE_EFFECTS[x] for x in data.side_effects or [])
    note_parts = []
    if data.minutes_held is not None:
        note_parts.append(f"Held in the mouth {data.minutes_held} minutes.")
    if data.note and data.note.strip():
        note_parts.append(data.note.strip())
    entry = doses.add_dose(
        session, actor, link.patient_id,
        doses.DoseInput(
            taken_at=data.taken_at, dose_mg=dose_mg,
            formulation=plan.formulation if plan else "other", administration=data.administration,
            anxiety_before=data.anxiety_before, anxiety_after=data.anxiety_after, dissociation=data.dissociation,
            nausea=data.nausea, vomited=bool(data.vomited), bp_systolic_post=data.bp_systolic,
            bp_diastolic_post=data.bp_diastolic, heart_rate=data.heart_rate, adverse_events=tags,
            notes=" ".join(note_parts) or None),
        source=DoseSource.patient.value, allow_duplicate=False, confirm_unusual_dose=bool(data.dose_confirmed))
    ids = []
    crisis = False
    today = assessments._today()
    for instrument, answers in ((Instrument.gad7.value, data.gad7), (Instrument.phq9.value, data.phq9)):
        if answers is None or all(a is None for a in answers):
            continue
        row = assessments.record_assessment(session, actor, link.patient_id, instrument, today, items=list(answers))
        ids.append(row.id)
        crisis = crisis or bool(row.item9)
    sub.dose_entry_id = entry.id
    sub.assessment_ids = ids
    sub.crisis = crisis
    link.last_used_at = utcnow()
    link.use_count = (link.use_count or 0) + 1
    session.add(sub)
    session.add(link)
    session.flush()
    audit.record(session, None, "checkin.submit", "checkin_link", link.id, link.patient_id,
                 detail=f"dose={entry.id} assessments={len(ids)}", actor_username=PATIENT_USERNAME)
    return _result(sub)


def _result(sub: CheckinSubmission, repeated: bool = False) -> CheckinResult:
    return CheckinResult(sub.id, sub.dose_entry_id, tuple(sub.assessment_ids or ()), sub.crisis, repeated)


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


# --- abuse: failed tokens per IP ------------------------------------------------------------------


# Wrong tokens per client address, counted in the database (``kapnotes.throttle``) so that every
# app process behind the balancer, and both ways in (the /checkin route and this page), share one count.
LIMITER = throttle.RateLimiter("checkin_ip", limit=10, window=600)


def client_key(headers: dict | None, remote_ip: str | None, trust_proxy: bool | None = None) -> str:
    """The client's IP: behind a trusted proxy (``KAPNOTES_TRUST_PROXY=1``) the LAST
    ``X-Forwarded-For`` address (the one our proxy appended; earlier ones are whatever the client
    sent), else the connection's address. Same rule as the sign-in limit (``kapnotes.asgi``)."""
    if trust_proxy is None:
        trust_proxy = get_settings().trust_proxy
    if trust_proxy and headers:
        forwarded = {str(k).lower(): v for k, v in headers.items()}.get("x-forwarded-for", "")
        last = forwarded.split(",")[-1].strip() if isinstance(forwarded, str) else ""
        if last:
            return last[:64]
    return remote_ip[:64] if isinstance(remote_ip, str) and remote_ip else "unknown"
