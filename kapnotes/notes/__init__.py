"""Session notes: drafts (versioned, author-only), signing (hash, immutable), addenda, finding notes.

Rules this module enforces for every caller (pages, CLI, other features):
- Only a therapist on the patient's care team writes notes; a draft is visible to its
  author alone. Signed notes are read by every clinician on the care team.
- A draft carries ``version``. ``save_draft`` with a stale ``expected_version`` raises
  :class:`DraftConflict` (a ``ConflictError``) carrying both versions; nothing is written.
- ``sign`` checks the required fields, records signer, time and the content hash
  (:func:`kapnotes.notes.hashing.content_hash`) and emits ``"note.signed"``. A signed note is
  never changed again (``SignedNoteError`` here; a database trigger for any other path).
- Corrections are addenda: any clinician on the care team (therapist or prescriber) may add
  one to a signed note; each is dated, names its author and carries its own hash.
- A dosing note creates or links exactly one dose-log entry (``context = in_session``,
  ``source = session``) and keeps it in step while the note is a draft.
- Every read of note content, every change and every search is audited, with ids and
  counts only, never note text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy import true as sa_true
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, col, select

from kapnotes import audit, events, vitals
from kapnotes.access import require_patient, require_role, visible_patient_ids
from kapnotes.actor import Actor
from kapnotes.config import get_settings
from kapnotes.dosing.plans import active_plan
from kapnotes.errors import ConflictError, KapError, PermissionDenied, ValidationError
from kapnotes.models import (
    Addendum,
    Assessment,
    AuditEvent,
    DoseContext,
    DoseEntry,
    DoseSource,
    Modality,
    NoteStatus,
    NoteType,
    Patient,
    Role,
    SessionNote,
    User,
)
from kapnotes.notes import hashing as notehash
from kapnotes.notes.hashing import content_hash, text_hash
from kapnotes.notes.templates import (
    CARRY_OVER_KEYS,
    SYSTEM_KEYS,
    TIME_RE,
    is_blank,
    missing_required,
    template,
    validate_fields,
)
from kapnotes.timeutil import utcnow

FREE_TEXT_MAX = 100_000
ADDENDUM_MAX = 20_000
SEARCH_LIMIT = 100


class UnsetType:
    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "UNSET"


UNSET: Any = UnsetType()


class SignedNoteError(KapError):
    """A signed note cannot change: corrections are addenda."""

    def __init__(self, message: str = "This note is signed and can no longer be edited. Add an addendum instead."):
        super().__init__(message)


class DraftConflict(ConflictError):
    """Someone saved this draft since you loaded it. Carries both versions; nothing was written."""

    def __init__(self, note_id: int, my_version: int, their_version: int | None,
                 mine: dict | None, theirs: dict | None):
        super().__init__(
            f"This draft was saved elsewhere (version {their_version}) since you loaded version {my_version}. "
            "Nothing was overwritten: compare both versions and choose.",
            theirs=theirs,
        )
        self.note_id = note_id
        self.my_version = my_version
        self.their_version = their_version
        self.mine = mine
        self.theirs = theirs


# --- content --------------------------------------------------------------------

CONTENT_KEYS = ("session_date", "start_time", "end_time", "modality", "fields", "free_text", "integrates_dose_id")


def content_of(note: SessionNote) -> dict:
    """The editable content of a note as a plain dict (what a conflict shows side by side)."""
    return {
        "session_date": note.session_date,
        "start_time": note.start_time,
        "end_time": note.end_time,
        "modality": note.modality,
        "fields": {k: v for k, v in (note.fields or {}).items() if k not in SYSTEM_KEYS},
        "free_text": note.free_text,
        "integrates_dose_id": note.integrates_dose_id,
    }


def snapshot(note: SessionNote) -> dict:
    return {"version": note.version, "updated_at": note.updated_at, "updated_by_id": note.updated_by_id,
            **content_of(note)}


def _time_text(value: Any, name: str, label: str, errors: dict[str, str]) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, (time, datetime)):
        return value.strftime("%H:%M")
    if isinstance(value, str) and TIME_RE.match(value):
        return value
    errors[name] = f"{label} must be a time as HH:MM (24-hour), got {value!r}."
    return None


def _local_today() -> date:
    return utcnow().astimezone(get_settings().tz).date()


FUTURE_SLACK = timedelta(minutes=5)  # clock skew, as for the dose log


def _in_future(day: date, hhmm: str) -> bool:
    """True when ``hhmm`` (clinic time) on ``day`` is more than a few minutes ahead of now."""
    moment = datetime.combine(day, time.fromisoformat(hhmm), get_settings().tz)
    return moment > utcnow() + FUTURE_SLACK


def _clean_text(value: Any, name: str, label: str, limit: int, errors: dict[str, str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        errors[name] = f"{label} must be text."
        return None
    if "\x00" in value:
        errors[name] = f"{label} contains a NUL character, which cannot be stored."
    elif len(value) > limit:
        errors[name] = f"{label} is too long ({len(value):,} characters; at most {limit:,})."
    return value if value != "" else None


def _bp_errors(fields: dict, when: str, label: str, both_required: bool) -> dict[str, str]:
    """Blood-pressure checks from kapnotes.vitals, reported at this template's field names."""
    s_name, d_name = f"bp_systolic_{when}", f"bp_diastolic_{when}"
    s, d = fields.get(s_name), fields.get(d_name)
    if (s is None or d is None) and not both_required:
        return {}
    raw = vitals.check_bp(s, d, prefix="bp", label=label)
    return {s_name if k == "bp_systolic" else d_name: v for k, v in raw.items()}


def _check(session: Session, note: SessionNote, content: dict, for_sign: bool) -> tuple[dict, dict[str, str]]:
    """Validate content for a draft save (``for_sign`` False) or for signing.

    Returns (clean content, errors). Nothing is written here.
    """
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}

    sdate = content.get("session_date")
    if isinstance(sdate, datetime):
        sdate = sdate.date()
    if isinstance(sdate, str):
        try:
            sdate = date.fromisoformat(sdate)
        except ValueError:
            errors["session_date"] = f"Session date {sdate!r} is not a date; use YYYY-MM-DD."
            sdate = None
    if sdate is None and "session_date" not in errors:
        errors["session_date"] = "Enter the session date."
    elif isinstance(sdate, date) and sdate > _local_today():
        errors["session_date"] = f"Session date {sdate.isoformat()} is in the future."
    clean["session_date"] = sdate

    start = _time_text(content.get("start_time"), "start_time", "Start time", errors)
    end = _time_text(content.get("end_time"), "end_time", "End time", errors)
    if start and end and end < start:
        errors["end_time"] = f"End time {end} is before start time {start}."
    if for_sign and not start and "start_time" not in errors:
        errors["start_time"] = "Enter the session's start time before signing."
    if for_sign and isinstance(sdate, date):  # a signed record says what happened, not what is planned
        for name, value in (("start_time", start), ("end_time", end)):
            if value and name not in errors and _in_future(sdate, value):
                errors[name] = (f"{value} on {sdate.isoformat()} is still in the future; sign the note once "
                                "the session has taken place.")
    clean["start_time"], clean["end_time"] = start, end

    modality = content.get("modality") or Modality.in_person.value
    if modality not in {m.value for m in Modality}:
        errors["modality"] = f"Modality must be in person or telehealth, got {modality!r}."
    clean["modality"] = str(modality)

    clean["free_text"] = _clean_text(content.get("free_text"), "free_text", "Free text", FREE_TEXT_MAX, errors)

    try:
        fields = validate_fields(note.note_type, content.get("fields") or {})
    except ValidationError as exc:
        errors.update(exc.errors)
        fields = {}
    for key, value in list(fields.items()):
        if isinstance(value, str):
            _clean_text(value, key, template(note.note_type).field(key).label, FREE_TEXT_MAX, errors)

    if note.note_type == NoteType.dosing and fields:
        if "dose_mg" in fields:
            errors.update(vitals.check_dose(fields.get("dose_mg")))
        errors.update({k: v for k, v in _bp_errors(fields, "pre", "Blood pressure before dosing", for_sign).items()
                       if k not in errors})
        post_given = any(fields.get(k) is not None for k in ("bp_systolic_post", "bp_diastolic_post"))
        errors.update({k: v for k, v in _bp_errors(fields, "post", "Blood pressure after dosing", post_given
                                                   and for_sign).items() if k not in errors})
        if fields.get("booster_mg") is not None and "booster_mg" not in errors:
            errors.update(vitals.check_dose(fields["booster_mg"], "booster_mg"))
        taken = fields.get("time_taken")
        if (isinstance(sdate, date) and isinstance(taken, str) and TIME_RE.match(taken)
                and "time_taken" not in errors and _in_future(sdate, taken)):
            errors["time_taken"] = (f"{taken} on {sdate.isoformat()} is in the future; enter when the dose "
                                    "was actually taken.")
    if note.note_type == NoteType.integration and for_sign:
        has_proposal = fields.get("proposal_dose_mg") is not None or fields.get("proposal_interval_days") is not None
        if has_proposal and is_blank(fields.get("proposal_reason")):
            errors["proposal_reason"] = "Give the reason for the proposed dose or interval."
        if not has_proposal and not is_blank(fields.get("proposal_reason")):
            errors["proposal_dose_mg"] = "Give a proposed dose or interval, or clear the reason for the proposal."
        if fields.get("proposal_dose_mg") is not None and "proposal_dose_mg" not in errors:
            errors.update(vitals.check_dose(fields["proposal_dose_mg"], "proposal_dose_mg"))
    if for_sign:
        for key, message in missing_required(note.note_type, fields).items():
            errors.setdefault(key, message)
    clean["fields"] = fields

    dose_id = content.get("integrates_dose_id")
    if dose_id is not None:
        dose = session.get(DoseEntry, dose_id)
        if dose is None or dose.patient_id != note.patient_id or dose.voided_at is not None:
            errors["integrates_dose_id"] = "The linked dose is not an active dose-log entry of this patient."
        elif isinstance(sdate, date):
            local = dose.taken_at.astimezone(get_settings().tz).date()
            if local > sdate:
                errors["integrates_dose_id"] = "The linked dose was taken after this session."
            elif note.note_type == NoteType.integration:
                clean["fields"]["days_since_dose"] = (sdate - local).days
    clean["integrates_dose_id"] = dose_id
    return clean, errors


def _apply_plan_check(session: Session, note: SessionNote, fields: dict) -> dict:
    """Dosing notes: record whether the dose differs from the active plan (allowed, warned)."""
    fields = {k: v for k, v in fields.items() if k not in SYSTEM_KEYS}
    if note.note_type != NoteType.dosing or fields.get("dose_mg") is None:
        return fields
    plan = active_plan(session, note.patient_id)
    if plan is None:
        fields["dose_differs_from_plan"] = True
        return fields
    if float(fields["dose_mg"]) != float(plan.dose_mg) or (
        fields.get("formulation") and fields["formulation"] != plan.formulation
    ):
        fields["dose_differs_from_plan"] = True
        fields["plan_dose_mg"] = float(plan.dose_mg)
        fields["plan_formulation"] = plan.formulation
    return fields


def warnings_for(note: SessionNote) -> dict[str, str]:
    """Warnings shown with a note (allowed but worth a second look)."""
    f = note.fields or {}
    if not f.get("dose_differs_from_plan"):
        return {}
    if f.get("plan_dose_mg") is None:
        return {"dose_mg": "There is no active treatment plan; this dose is recorded without one."}
    return {"dose_mg": f"The dose ({f.get('dose_mg'):g} mg {f.get('formulation') or ''}) differs from the active "
                       f"plan ({f['plan_dose_mg']:g} mg {f.get('plan_formulation', '')}). "
                       "Allowed; recorded in the note."}


# --- loading and access ------------------------------------------------------------


def _load(session: Session, actor: Actor, note_id: int, for_write: bool = False) -> SessionNote:
    if for_write:
        require_role(actor, Role.therapist.value)
        note = session.get(SessionNote, note_id, with_for_update=True, populate_existing=True)
    else:
        require_role(actor, Role.therapist.value, Role.prescriber.value)
        note = session.get(SessionNote, note_id)
    if note is None:
        raise PermissionDenied()
    require_patient(session, actor, note.patient_id)
    if note.status != NoteStatus.signed and note.author_id != actor.id:
        raise PermissionDenied()  # drafts are the author's alone
    if for_write and note.author_id != actor.id:
        raise PermissionDenied("Only the author can change this note.")
    return note


def get_note(session: Session, actor: Actor, note_id: int, audited: bool = True) -> SessionNote:
    """A note the actor may read (signed notes of their patients; their own drafts)."""
    note = _load(session, actor, note_id)
    if audited:
        audit.record(session, actor, "note.read", "session_note", note.id, note.patient_id, f"status={note.status}")
    return note


# --- creating and saving drafts -------------------------------------------------------


def last_signed_note(session: Session, actor: Actor, patient_id: int, note_type: str) -> SessionNote | None:
    require_patient(session, actor, patient_id)
    return session.exec(
        select(SessionNote)
        .where(SessionNote.patient_id == patient_id, SessionNote.note_type == str(note_type),
               SessionNote.status == NoteStatus.signed)
        .order_by(col(SessionNote.session_date).desc(), col(SessionNote.id).desc())
        .limit(1)
    ).first()


def latest_dose(session: Session, patient_id: int, on_or_before: date | None = None) -> DoseEntry | None:
    """The patient's latest non-voided dose (in-session first), for an integration note's link."""
    q = select(DoseEntry).where(DoseEntry.patient_id == patient_id, col(DoseEntry.voided_at).is_(None))
    if on_or_before is not None:
        end = datetime.combine(on_or_before + timedelta(days=1), time(), get_settings().tz)
        q = q.where(DoseEntry.taken_at < end)
    for context in (DoseContext.in_session.value, None):
        qq = q if context is None else q.where(DoseEntry.context == context)
        dose = session.exec(qq.order_by(col(DoseEntry.taken_at).desc()).limit(1)).first()
        if dose is not None:
            return dose
    return None


def _defaults(session: Session, patient_id: int, note_type: str, today: date, now_hhmm: str) -> dict:
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if note_type == NoteType.dosing:
        plan = active_plan(session, patient_id)
        if plan is not None:
            fields.update(dose_mg=float(plan.dose_mg), formulation=plan.formulation,
                          minutes_in_mouth=int(plan.minutes_in_mouth), administration=plan.administration)
        done = session.exec(
            select(func.count()).select_from(SessionNote).where(
                SessionNote.patient_id == patient_id, SessionNote.note_type == NoteType.dosing.value,
                SessionNote.status == NoteStatus.signed)
        ).one()
        fields["session_number"] = int(done) + 1
        fields["time_taken"] = now_hhmm
    elif note_type == NoteType.integration:
        dose = latest_dose(session, patient_id, today)
        if dose is not None:
            extra["integrates_dose_id"] = dose.id
    return {"fields": fields, **extra}


def create_draft(
    session: Session,
    actor: Actor,
    patient_id: int,
    note_type: str,
    *,
    carry_over: bool = False,
    session_date: date | None | Any = UNSET,
    start_time: str | None | Any = UNSET,
    end_time: str | None = None,
    modality: str = Modality.in_person.value,
    fields: dict | None = None,
    free_text: str | None = None,
    integrates_dose_id: int | None | Any = UNSET,
) -> SessionNote:
    """Start a draft, defaulted from the active plan and the clock (and, with ``carry_over``,
    from the patient's previous signed note of the same type). A session date left out starts
    as today; one given as None (an unreadable input) is refused, never replaced by today."""
    require_role(actor, Role.therapist.value)
    require_patient(session, actor, patient_id, Role.therapist.value)
    tpl = template(note_type)
    tz = get_settings().tz
    now_local = utcnow().astimezone(tz)
    today = now_local.date()
    if session_date is UNSET:
        session_date = today
    defaults = _defaults(session, patient_id, tpl.note_type, session_date if isinstance(session_date, date) else today,
                         now_local.strftime("%H:%M"))
    merged_fields = dict(defaults["fields"])
    carried_from = None
    if carry_over:
        last = last_signed_note(session, actor, patient_id, tpl.note_type)
        if last is None:
            raise ValidationError({"carry_over": f"There is no earlier signed {tpl.title.lower()} note to carry over."})
        for key in CARRY_OVER_KEYS:
            if key in tpl.names and not is_blank((last.fields or {}).get(key)):
                merged_fields[key] = last.fields[key]
        carried_from = last.id
    merged_fields.update(fields or {})
    note = SessionNote(patient_id=patient_id, author_id=actor.id, note_type=tpl.note_type, session_date=today,
                       status=NoteStatus.draft.value, carried_over_from_id=carried_from, updated_by_id=actor.id)
    content = {
        "session_date": session_date,
        "start_time": now_local.strftime("%H:%M") if start_time is UNSET else start_time,
        "end_time": end_time,
        "modality": modality,
        "fields": merged_fields,
        "free_text": free_text,
        "integrates_dose_id": defaults.get("integrates_dose_id") if integrates_dose_id is UNSET else integrates_dose_id,
    }
    clean, errors = _check(session, note, content, for_sign=False)
    if errors:
        raise ValidationError(errors)
    for key in CONTENT_KEYS:
        setattr(note, key, clean[key])
    note.fields = _apply_plan_check(session, note, clean["fields"])
    session.add(note)
    session.flush()
    audit.record(session, actor, "note.create", "session_note", note.id, patient_id,
                 f"type={note.note_type} carried_over={carried_from or ''}")
    return note


def _mine(note: SessionNote, changes: dict) -> dict:
    base = content_of(note)
    for key, value in changes.items():
        if value is not UNSET:
            base[key] = value
    return base


def save_draft(
    session: Session,
    actor: Actor,
    note_id: int,
    expected_version: int,
    *,
    session_date: date | Any = UNSET,
    start_time: str | None | Any = UNSET,
    end_time: str | None | Any = UNSET,
    modality: str | Any = UNSET,
    fields: dict | Any = UNSET,
    free_text: str | None | Any = UNSET,
    integrates_dose_id: int | None | Any = UNSET,
) -> SessionNote:
    """Save a draft's content (arguments left out stay as they are; ``fields`` replaces the whole dict).

    Stale ``expected_version`` -> :class:`DraftConflict`; bad input -> ``ValidationError``;
    signed note -> :class:`SignedNoteError`. In each case nothing is written.
    """
    note = _load(session, actor, note_id, for_write=True)
    if note.status == NoteStatus.signed:
        raise SignedNoteError()
    changes = dict(session_date=session_date, start_time=start_time, end_time=end_time, modality=modality,
                   fields=fields, free_text=free_text, integrates_dose_id=integrates_dose_id)
    mine = _mine(note, changes)
    if note.version != expected_version:
        raise DraftConflict(note.id, expected_version, note.version, mine, snapshot(note))
    clean, errors = _check(session, note, mine, for_sign=False)
    if errors:
        raise ValidationError(errors)
    _write(session, actor, note, clean, expected_version, mine)
    _sync_dose(session, actor, note)
    audit.record(session, actor, "note.save", "session_note", note.id, note.patient_id, f"version={note.version}")
    return note


def _write(session: Session, actor: Actor, note: SessionNote, clean: dict, expected_version: int, mine: dict) -> None:
    for key in CONTENT_KEYS:
        if key != "fields":
            setattr(note, key, clean[key])
    note.fields = _apply_plan_check(session, note, clean["fields"])
    note.updated_at = utcnow()
    note.updated_by_id = actor.id
    try:
        session.flush()
    except StaleDataError:
        raise DraftConflict(note.id, expected_version, None, mine, None) from None


def discard_draft(session: Session, actor: Actor, note_id: int, expected_version: int) -> None:
    """Delete one's own draft (drafts are not yet part of the record); a dose it created is voided."""
    note = _load(session, actor, note_id, for_write=True)
    if note.status == NoteStatus.signed:
        raise SignedNoteError("A signed note cannot be discarded. Add an addendum instead.")
    if note.version != expected_version:
        raise DraftConflict(note.id, expected_version, note.version, None, snapshot(note))
    for dose in session.exec(select(DoseEntry).where(DoseEntry.session_note_id == note.id)).all():
        if dose.voided_at is None:
            dose.voided_at = utcnow()
            dose.voided_by_id = actor.id
            dose.void_reason = "Session note draft discarded."
            session.flush()
            events.emit(session, "dose.changed", actor, patient_id=note.patient_id, dose_id=dose.id)
        dose.session_note_id = None
    for a in session.exec(select(Assessment).where(Assessment.session_note_id == note.id)).all():
        a.session_note_id = None
    session.flush()
    audit.record(session, actor, "note.discard", "session_note", note.id, note.patient_id)
    session.delete(note)
    session.flush()


# --- the dose-log entry of a dosing note ------------------------------------------------

_DOSE_SYNC = ("taken_at", "dose_mg", "formulation", "administration", "dissociation", "nausea", "vomited",
              "bp_systolic_pre", "bp_diastolic_pre", "bp_systolic_post", "bp_diastolic_post", "heart_rate",
              "adverse_events", "notes", "plan_id")


def linked_dose(session: Session, note_id: int) -> DoseEntry | None:
    return session.exec(
        select(DoseEntry).where(DoseEntry.session_note_id == note_id, col(DoseEntry.voided_at).is_(None))
        .order_by(col(DoseEntry.id)).limit(1)
    ).first()


def _dose_values(session: Session, note: SessionNote) -> dict | None:
    f = note.fields or {}
    if f.get("dose_mg") is None:
        return None
    plan = active_plan(session, note.patient_id)
    tz = get_settings().tz
    hhmm = f.get("time_taken") or note.start_time  # never an invented time: _sync_dose waits for one
    taken = datetime.combine(note.session_date, time.fromisoformat(hhmm), tz)
    booster = f.get("booster_mg")
    return {
        "taken_at": taken,
        "dose_mg": float(f["dose_mg"]),
        "formulation": f.get("formulation") or (plan.formulation if plan else "other"),
        "administration": f.get("administration"),
        "dissociation": f.get("dissociation"),
        "nausea": f.get("nausea"),
        "vomited": bool(f.get("vomited")),
        "bp_systolic_pre": f.get("bp_systolic_pre"),
        "bp_diastolic_pre": f.get("bp_diastolic_pre"),
        "bp_systolic_post": f.get("bp_systolic_post"),
        "bp_diastolic_post": f.get("bp_diastolic_post"),
        "heart_rate": f.get("heart_rate_pre"),
        "adverse_events": ";".join(f.get("adverse_events") or []),
        "notes": (f"Booster {booster:g} mg" + (f" at {f['booster_time']}" if f.get("booster_time") else "")
                  ) if booster else None,
        "plan_id": plan.id if plan else None,
    }


def _sync_dose(session: Session, actor: Actor, note: SessionNote) -> DoseEntry | None:
    """Create, link, update (or void) the one dose-log entry of a dosing note."""
    if note.note_type != NoteType.dosing:
        return None
    f = note.fields or {}
    hhmm = f.get("time_taken") or note.start_time
    if f.get("dose_mg") is not None and (not hhmm or _in_future(note.session_date, hhmm)):
        return linked_dose(session, note.id)  # no (past) time known yet: the log waits rather than invent one
    values = _dose_values(session, note)
    entry = linked_dose(session, note.id)
    if values is None:
        if entry is not None:  # the dose was cleared from the draft
            entry.voided_at = utcnow()
            entry.voided_by_id = actor.id
            entry.void_reason = "Dose removed from the session note draft."
            _flush_dose(session)
            audit.record(session, actor, "dose.void", "dose_entry", entry.id, note.patient_id, f"note={note.id}")
            events.emit(session, "dose.changed", actor, patient_id=note.patient_id, dose_id=entry.id)
        return None
    action = "dose.update"
    if entry is None:
        tz = get_settings().tz
        day_start = datetime.combine(note.session_date, time(), tz)
        entry = session.exec(  # a dose already logged for this session: link it, never a second one
            select(DoseEntry).where(
                DoseEntry.patient_id == note.patient_id, DoseEntry.context == DoseContext.in_session.value,
                col(DoseEntry.session_note_id).is_(None), col(DoseEntry.voided_at).is_(None),
                DoseEntry.taken_at >= day_start, DoseEntry.taken_at < day_start + timedelta(days=1),
            ).order_by(col(DoseEntry.taken_at)).limit(1)
        ).first()
        if entry is not None:
            entry.session_note_id = note.id
            action = "dose.link"
        else:
            entry = DoseEntry(patient_id=note.patient_id, context=DoseContext.in_session.value,
                              source=DoseSource.session.value, session_note_id=note.id, entered_by_id=note.author_id,
                              **values)
            session.add(entry)
            _flush_dose(session)
            audit.record(session, actor, "dose.create", "dose_entry", entry.id, note.patient_id, f"note={note.id}")
            events.emit(session, "dose.changed", actor, patient_id=note.patient_id, dose_id=entry.id)
            return entry
    changed = action == "dose.link"
    for key in _DOSE_SYNC:
        if getattr(entry, key) != values[key]:
            setattr(entry, key, values[key])
            changed = True
    if changed:
        _flush_dose(session)
        audit.record(session, actor, action, "dose_entry", entry.id, note.patient_id, f"note={note.id}")
        events.emit(session, "dose.changed", actor, patient_id=note.patient_id, dose_id=entry.id)
    return entry


def _flush_dose(session: Session) -> None:
    try:
        session.flush()
    except StaleDataError:
        raise ConflictError("The dose-log entry of this note was changed elsewhere; reload and try again.") from None


# --- signing ------------------------------------------------------------------------------


def sign(session: Session, actor: Actor, note_id: int, expected_version: int, **changes: Any) -> SessionNote:
    """Sign a draft (saving ``changes`` first, in the same transaction).

    Required fields must be filled; records signer, time and content hash; emits
    ``"note.signed"``. Anything wrong -> an error and nothing written.
    """
    unknown = set(changes) - set(CONTENT_KEYS)
    if unknown:
        raise ValidationError({k: "Unknown note attribute." for k in unknown})
    note = _load(session, actor, note_id, for_write=True)
    if note.status == NoteStatus.signed:
        raise SignedNoteError("This note is already signed.")
    mine = _mine(note, changes)
    if note.version != expected_version:
        raise DraftConflict(note.id, expected_version, note.version, mine, snapshot(note))
    clean, errors = _check(session, note, mine, for_sign=True)
    if errors:
        raise ValidationError(errors)
    for key in CONTENT_KEYS:
        if key != "fields":
            setattr(note, key, clean[key])
    note.fields = _apply_plan_check(session, note, clean["fields"])
    _sync_dose(session, actor, note)
    now = utcnow()
    note.status = NoteStatus.signed.value
    note.signed_at = now
    note.signed_by_id = actor.id
    note.updated_at = now
    note.updated_by_id = actor.id
    note.content_hash = content_hash(note)
    note.signature_mac, note.signature_key_id = notehash.make_mac(notehash.note_mac_parts(note))
    try:
        session.flush()
    except StaleDataError:
        raise DraftConflict(note.id, expected_version, None, mine, None) from None
    # the hash (never the text) goes into the chain, so the database's own copy cannot vouch alone
    audit.record(session, actor, "note.sign", "session_note", note.id, note.patient_id,
                 f"type={note.note_type};sha256={note.content_hash}")
    events.emit(session, "note.signed", actor, patient_id=note.patient_id, note_id=note.id, note_type=note.note_type)
    return note


def signature_state(note: SessionNote, ring: notehash.KeyRing | None = None) -> str:
    """``"ok"`` (content, hash and MAC agree), ``"unsealed"`` (signed before MACs and its hash
    matches; hash only), ``"no_key"`` (its key is missing from the key file) or ``"bad"``."""
    if note.status != NoteStatus.signed or note.content_hash != content_hash(note):
        return "bad"
    if ring is None and note.signature_mac:
        try:
            ring = notehash.keyring(create=False)
        except notehash.SigningKeyError:
            return "no_key"
    return notehash.check_mac(notehash.note_mac_parts(note), note.signature_mac, note.signature_key_id, ring)


def verify(note: SessionNote) -> bool:
    """True when a signed note's content matches its hash AND the MAC made at signing
    under the signing key (a rewrite with a recomputed hash fails the MAC)."""
    return signature_state(note) == "ok"


# --- addenda ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddendumRow:
    id: int
    note_id: int
    author_id: int
    author_name: str
    text: str
    created_at: datetime
    content_hash: str
    verified: bool
    state: str = "ok"  # see ``signature_state``


def addendum_hash(note_id: int, author_id: int, created_at: datetime, text: str) -> str:
    return text_hash(str(note_id), str(author_id), created_at.isoformat(), text)


def add_addendum(session: Session, actor: Actor, note_id: int, text: str) -> Addendum:
    """Append a dated, signed addendum to a signed note (any clinician on the care team)."""
    note = _load(session, actor, note_id)
    if note.status != NoteStatus.signed:
        raise ValidationError({"addendum": "Addenda are for signed notes; edit the draft instead."})
    errors: dict[str, str] = {}
    text = _clean_text(text, "addendum", "Addendum", ADDENDUM_MAX, errors) or ""
    if not errors and not text.strip():
        errors["addendum"] = "Write the addendum text."
    if errors:
        raise ValidationError(errors)
    now = utcnow()
    row = Addendum(note_id=note.id, author_id=actor.id, text=text, created_at=now, signed_at=now,
                   content_hash=addendum_hash(note.id, actor.id, now, text))
    row.signature_mac, row.signature_key_id = notehash.make_mac(notehash.addendum_mac_parts(row))
    session.add(row)
    session.flush()
    audit.record(session, actor, "addendum.create", "addendum", row.id, note.patient_id,
                 f"note={note.id};sha256={row.content_hash}")
    return row


def _ring_or_none() -> notehash.KeyRing | None:
    try:
        return notehash.keyring(create=False)
    except notehash.SigningKeyError:
        return None


def addendum_state(a: Addendum, ring: notehash.KeyRing | None) -> str:
    """Like ``signature_state``, for an addendum."""
    if a.content_hash != addendum_hash(a.note_id, a.author_id, a.created_at, a.text):
        return "bad"
    return notehash.check_mac(notehash.addendum_mac_parts(a), a.signature_mac, a.signature_key_id, ring)


def list_addenda(session: Session, actor: Actor, note_id: int) -> list[AddendumRow]:
    note = _load(session, actor, note_id)
    rows = session.exec(
        select(Addendum, User.full_name, User.credentials).join(User, User.id == Addendum.author_id)
        .where(Addendum.note_id == note.id).order_by(col(Addendum.created_at), col(Addendum.id))
    ).all()
    out = []
    ring = _ring_or_none()
    for a, name, cred in rows:
        state = addendum_state(a, ring)
        out.append(AddendumRow(a.id, a.note_id, a.author_id, f"{name}, {cred}" if cred else name, a.text,
                               a.created_at, a.content_hash, state == "ok", state))
    if out:
        audit.record(session, actor, "addendum.read", "session_note", note.id, note.patient_id, f"count={len(out)}")
    return out


# --- finding notes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteRow:
    id: int
    patient_id: int
    note_type: str
    session_date: date
    status: str
    author_id: int
    author_name: str
    updated_at: datetime
    signed_at: datetime | None
    addenda: int = 0
    carried_over: bool = False
    mrn: str = ""
    patient_name: str = ""


def _author_name(name: str, cred: str) -> str:
    return f"{name}, {cred}" if cred else name


def timeline(session: Session, actor: Actor, patient_id: int, note_types=None, statuses=None,
             limit: int = 500) -> list[NoteRow]:
    """The patient's notes, newest first: signed notes, plus the actor's own drafts."""
    require_patient(session, actor, patient_id)
    # counted per listed note through ix_addenda_note_id (a GROUP BY would read every addendum)
    addenda = (select(func.count()).select_from(Addendum).where(Addendum.note_id == SessionNote.id)
               .correlate(SessionNote).scalar_subquery())
    q = (
        select(SessionNote.id, SessionNote.patient_id, SessionNote.note_type, SessionNote.session_date,
               SessionNote.status, SessionNote.author_id, User.full_name, User.credentials, SessionNote.updated_at,
               SessionNote.signed_at, addenda, SessionNote.carried_over_from_id)
        .join(User, User.id == SessionNote.author_id)
        .where(SessionNote.patient_id == patient_id)
        .where((SessionNote.status == NoteStatus.signed.value) | (SessionNote.author_id == actor.id))
    )
    if note_types:
        q = q.where(col(SessionNote.note_type).in_([str(t) for t in note_types]))
    if statuses:
        q = q.where(col(SessionNote.status).in_([str(s) for s in statuses]))
    q = q.order_by(col(SessionNote.session_date).desc(), col(SessionNote.id).desc()).limit(limit)
    rows = [NoteRow(r[0], r[1], r[2], r[3], r[4], r[5], _author_name(r[6], r[7]), r[8], r[9], r[10] or 0,
                    r[11] is not None) for r in session.exec(q).all()]
    audit.record(session, actor, "note.list", "patient", patient_id, patient_id, f"rows={len(rows)}",
                 coalesce=audit.READ_COALESCE)
    return rows


def my_drafts(session: Session, actor: Actor) -> list[NoteRow]:
    """The actor's drafts across their patients, most recently saved first."""
    require_role(actor, Role.therapist.value)
    q = (
        select(SessionNote.id, SessionNote.patient_id, SessionNote.note_type, SessionNote.session_date,
               SessionNote.status, SessionNote.author_id, SessionNote.updated_at, SessionNote.carried_over_from_id,
               Patient.mrn, Patient.full_name)
        .join(Patient, Patient.id == SessionNote.patient_id)
        .where(SessionNote.author_id == actor.id, SessionNote.status == NoteStatus.draft.value)
        .where(col(SessionNote.patient_id).in_(visible_patient_ids(actor)))
        .order_by(col(SessionNote.updated_at).desc())
    )
    rows = [NoteRow(r[0], r[1], r[2], r[3], r[4], r[5], actor.display_name, r[6], None, 0, r[7] is not None,
                    r[8], r[9]) for r in session.exec(q).all()]
    audit.record(session, actor, "note.drafts", "session_note", None, None, f"rows={len(rows)}",
                 coalesce=audit.READ_COALESCE)
    return rows


@dataclass(frozen=True)
class SearchHit:
    note_id: int
    patient_id: int
    mrn: str
    patient_name: str
    note_type: str
    session_date: date
    snippet: str


def _haystack(note_type: str, fields: dict, free_text: str | None) -> str:
    tpl = template(note_type)
    parts = []
    for spec in tpl.fields:
        v = (fields or {}).get(spec.name)
        if isinstance(v, str):
            parts.append(v)
        elif isinstance(v, list):
            parts.append(" ".join(map(str, v)))
    if free_text:
        parts.append(free_text)
    return "\n".join(parts)


def _snippet(text: str, term: str, width: int = 80) -> str:
    pos = text.casefold().find(term)
    if pos < 0:
        return text[: 2 * width]
    start = max(0, pos - width)
    end = min(len(text), pos + len(term) + width)
    return ("…" if start else "") + text[start:end].replace("\n", " ") + ("…" if end < len(text) else "")


def search(session: Session, actor: Actor, query: str, patient_id: int | None = None,
           limit: int = SEARCH_LIMIT) -> list[SearchHit]:
    """Full-text search over the signed notes of the actor's patients (all words must appear).

    Case-insensitive, Unicode-aware (``casefold``). The query text is never audited.
    """
    require_role(actor, Role.therapist.value, Role.prescriber.value)
    terms = [t.casefold() for t in (query or "").split() if t.strip()]
    if not terms:
        raise ValidationError({"query": "Enter a word to search for."})
    q = (
        select(SessionNote.id, SessionNote.patient_id, SessionNote.note_type, SessionNote.session_date,
               SessionNote.fields, SessionNote.free_text, Patient.mrn, Patient.full_name)
        .join(Patient, Patient.id == SessionNote.patient_id)
        .where(SessionNote.status == NoteStatus.signed.value)
        .where(col(SessionNote.patient_id).in_(visible_patient_ids(actor)))
        .order_by(col(SessionNote.session_date).desc(), col(SessionNote.id).desc())
    )
    if patient_id is not None:
        require_patient(session, actor, patient_id)
        q = q.where(SessionNote.patient_id == patient_id)
    hits: list[SearchHit] = []
    for nid, pid, ntype, sdate, fields, free_text, mrn, pname in session.exec(q).all():
        text = _haystack(ntype, fields, free_text)
        folded = text.casefold()
        if all(t in folded for t in terms):
            hits.append(SearchHit(nid, pid, mrn, pname, ntype, sdate, _snippet(text, terms[0])))
            if len(hits) >= limit:
                break
    audit.record(session, actor, "note.search", "session_note", None, patient_id,
                 f"terms={len(terms)} hits={len(hits)}")
    return hits


@dataclass
class NoteView:
    """Everything the note viewer shows (built by :func:`view_note`)."""

    note: SessionNote
    author_name: str
    signer_name: str | None
    addenda: list[AddendumRow] = field(default_factory=list)
    carried_over_from: SessionNote | None = None
    linked_dose: DoseEntry | None = None
    hash_ok: bool | None = None  # the keyed signature (MAC) and the hash both match
    signature_state: str | None = None  # see ``signature_state``; None for drafts
    warnings: dict[str, str] = field(default_factory=dict)


def _user_name(session: Session, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    u = session.get(User, user_id)
    return _author_name(u.full_name, u.credentials) if u else None


def view_note(session: Session, actor: Actor, note_id: int) -> NoteView:
    note = get_note(session, actor, note_id)
    state = signature_state(note) if note.status == NoteStatus.signed else None
    carried = session.get(SessionNote, note.carried_over_from_id) if note.carried_over_from_id else None
    dose = linked_dose(session, note.id) if note.note_type == NoteType.dosing else (
        session.get(DoseEntry, note.integrates_dose_id) if note.integrates_dose_id else None)
    return NoteView(
        note=note,
        author_name=_user_name(session, note.author_id) or "",
        signer_name=_user_name(session, note.signed_by_id),
        addenda=list_addenda(session, actor, note.id) if note.status == NoteStatus.signed else [],
        carried_over_from=carried,
        linked_dose=dose,
        hash_ok=(state == "ok") if state is not None else None,
        signature_state=state,
        warnings=warnings_for(note),
    )


def can_add_addendum(actor: Actor, note: SessionNote) -> bool:
    return note.status == NoteStatus.signed and actor.role in (Role.therapist.value, Role.prescriber.value)


def dose_choices(session: Session, actor: Actor, patient_id: int, limit: int = 30) -> list[tuple[int, str]]:
    """Recent non-voided doses of the patient as (id, label), newest first, for linking a note."""
    require_patient(session, actor, patient_id)
    tz = get_settings().tz
    rows = session.exec(
        select(DoseEntry).where(DoseEntry.patient_id == patient_id, col(DoseEntry.voided_at).is_(None))
        .order_by(col(DoseEntry.taken_at).desc()).limit(limit)
    ).all()
    return [(d.id, f"{d.taken_at.astimezone(tz):%Y-%m-%d %H:%M} · {d.dose_mg:g} mg {d.formulation} · "
                   f"{d.context.replace('_', ' ')}") for d in rows]


# --- whole-record verification (``verify-audit``) and sealing pre-MAC signatures ------------------

_SIGN_ACTIONS = {"note.sign": "session_note", "note.seal": "session_note",
                 "addendum.create": "addendum", "addendum.seal": "addendum"}


@dataclass(frozen=True)
class SignatureReport:
    notes: int = 0
    addenda: int = 0
    unsealed: int = 0  # signed before MACs: checked against the hash only
    problems: tuple[str, ...] = ()  # in note id order, then addendum id order; the first is named


def _recorded_hashes(session: Session) -> dict[tuple[str, str], str]:
    """(record type, record id) -> the sha256 the audit chain recorded when it was signed (or sealed)."""
    t = AuditEvent.__table__
    out: dict[tuple[str, str], str] = {}
    rows = session.execute(select(t.c.action, t.c.record_id, t.c.detail)
                           .where(t.c.action.in_(list(_SIGN_ACTIONS))).order_by(t.c.id))
    for action, record_id, detail in rows:
        for part in (detail or "").split(";"):
            if part.startswith("sha256="):
                out.setdefault((_SIGN_ACTIONS[action], record_id), part[7:])
    return out


def _stream(session: Session, model, where, batch: int = 2000):
    last = 0
    while True:
        rows = session.exec(select(model).where(where, col(model.id) > last).order_by(col(model.id))
                            .limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id
        session.expunge_all()


def _judge(kind: str, rid: int, stored: str | None, actual: str, recorded: str | None, mac_state: str) -> str | None:
    if stored != actual:
        return f"{kind} {rid}: its content no longer matches its stored hash (it was altered)"
    if recorded is not None and recorded != actual:
        return f"{kind} {rid}: its content differs from the hash the audit log recorded when it was signed"
    if mac_state == "bad":
        return f"{kind} {rid}: its keyed signature (MAC) does not match (the content and its hash were rewritten)"
    if mac_state == "no_key":
        return f"{kind} {rid}: it was signed with a key that is not in the signing key file"
    if mac_state == "ok" and recorded is None:
        return f"{kind} {rid}: the audit log holds no record of its signature's hash"
    return None


def verify_signatures(session: Session, ring: notehash.KeyRing | None) -> SignatureReport:
    """Re-check every signed note and addendum against its MAC and the hash in the audit chain.

    Signatures from before MACs (none stored) are checked against their hash and the audit
    chain only, and counted as ``unsealed``. Reads the database as it is (no audit event).
    """
    recorded = _recorded_hashes(session)
    problems: list[str] = []
    n_notes = n_add = unsealed = 0
    for note in _stream(session, SessionNote, SessionNote.status == NoteStatus.signed.value):
        n_notes += 1
        actual = content_hash(note)
        mac = notehash.check_mac(notehash.note_mac_parts(note), note.signature_mac, note.signature_key_id, ring)
        unsealed += mac == "unsealed"
        bad = _judge("note", note.id, note.content_hash, actual, recorded.get(("session_note", str(note.id))), mac)
        if bad:
            problems.append(bad)
    for a in _stream(session, Addendum, sa_true()):
        n_add += 1
        actual = addendum_hash(a.note_id, a.author_id, a.created_at, a.text)
        mac = notehash.check_mac(notehash.addendum_mac_parts(a), a.signature_mac, a.signature_key_id, ring)
        unsealed += mac == "unsealed"
        bad = _judge("addendum", a.id, a.content_hash, actual, recorded.get(("addendum", str(a.id))), mac)
        if bad:
            problems.append(bad)
    return SignatureReport(n_notes, n_add, unsealed, tuple(problems))


def seal_legacy_signatures(session: Session, ring: notehash.KeyRing) -> tuple[int, list[str]]:
    """MAC the signatures made before MACs existed, after checking each against its stored hash
    and the hash the audit log recorded (when it recorded one). Each seal is an audit event
    carrying the hash, so from then on the chain vouches for it. Returns (sealed, refused)."""
    recorded = _recorded_hashes(session)
    sealed, refused = 0, []
    notes_t, add_t = SessionNote.__table__, Addendum.__table__
    todo = list(session.exec(select(SessionNote).where(SessionNote.status == NoteStatus.signed.value,
                                                       col(SessionNote.signature_mac).is_(None))
                             .order_by(col(SessionNote.id))).all())
    for note in todo:
        actual = content_hash(note)
        bad = _judge("note", note.id, note.content_hash, actual, recorded.get(("session_note", str(note.id))), "")
        if bad:
            refused.append(bad)
            continue
        mac, key_id = notehash.make_mac(notehash.note_mac_parts(note), ring)
        session.execute(notes_t.update().where(notes_t.c.id == note.id, notes_t.c.signature_mac.is_(None))
                        .values(signature_mac=mac, signature_key_id=key_id))
        audit.record(session, None, "note.seal", "session_note", note.id, note.patient_id,
                     f"sha256={actual}", actor_username="system")
        sealed += 1
    adds = session.exec(select(Addendum, SessionNote.patient_id).join(SessionNote, SessionNote.id == Addendum.note_id)
                        .where(col(Addendum.signature_mac).is_(None)).order_by(col(Addendum.id))).all()
    for a, patient_id in adds:
        actual = addendum_hash(a.note_id, a.author_id, a.created_at, a.text)
        bad = _judge("addendum", a.id, a.content_hash, actual, recorded.get(("addendum", str(a.id))), "")
        if bad:
            refused.append(bad)
            continue
        mac, key_id = notehash.make_mac(notehash.addendum_mac_parts(a), ring)
        session.execute(add_t.update().where(add_t.c.id == a.id, add_t.c.signature_mac.is_(None))
                        .values(signature_mac=mac, signature_key_id=key_id))
        audit.record(session, None, "addendum.seal", "addendum", a.id, patient_id,
                     f"note={a.note_id};sha256={actual}", actor_username="system")
        sealed += 1
    return sealed, refused
