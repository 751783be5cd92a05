"""What a note must hold to be saved as a draft, and more to be signed: one function per concern.

``check`` runs them in a fixed order (date, times, modality, text, template fields, dosing
vitals, the integration proposal, required fields, the linked dose) into one dict of errors by
field, so the form can show every problem at once; later checks skip a field that already has
one. Nothing here writes. ``apply_plan_check`` and ``warnings_for`` cover what is allowed but
worth a second look: a dose that differs from the active plan.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlmodel import Session

from kapnotes import vitals
from kapnotes.config import get_settings
from kapnotes.dosing.plans import active_plan
from kapnotes.errors import ValidationError
from kapnotes.models import DoseEntry, Modality, NoteType, SessionNote
from kapnotes.notes import clock
from kapnotes.notes.templates import SYSTEM_KEYS, TIME_RE, is_blank, missing_required, template, validate_fields

FREE_TEXT_MAX = 100_000


def check(session: Session, note: SessionNote, content: dict, for_sign: bool) -> tuple[dict, dict[str, str]]:
    """Validate content for a draft save (``for_sign`` False) or for signing.

    Returns (clean content, errors). Nothing is written here.
    """
    errors: dict[str, str] = {}
    sdate = _session_date(content.get("session_date"), errors)
    start, end = _times(content.get("start_time"), content.get("end_time"), sdate, for_sign, errors)
    clean: dict[str, Any] = {"session_date": sdate, "start_time": start, "end_time": end,
                             "modality": _modality(content.get("modality"), errors),
                             "free_text": clean_text(content.get("free_text"), "free_text", "Free text",
                                                     FREE_TEXT_MAX, errors)}
    fields = _fields(note.note_type, content.get("fields") or {}, errors)
    if note.note_type == NoteType.dosing and fields:
        _dosing_checks(fields, sdate, for_sign, errors)
    if note.note_type == NoteType.integration and for_sign:
        _proposal_checks(fields, errors)
    if for_sign:
        for key, message in missing_required(note.note_type, fields).items():
            errors.setdefault(key, message)
    clean["fields"] = fields
    clean["integrates_dose_id"] = _linked_dose_check(session, note, content.get("integrates_dose_id"), sdate,
                                                     fields, errors)
    return clean, errors


def clean_text(value: Any, name: str, label: str, limit: int, errors: dict[str, str]) -> str | None:
    """Free text as stored (None when empty); NUL characters and over-long text are errors."""
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


# --- the session's date and times ----------------------------------------------------------


def _session_date(value: Any, errors: dict[str, str]) -> date | None:
    """The session date; never "today" in place of one that is missing or unreadable."""
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            errors["session_date"] = f"Session date {value!r} is not a date; use YYYY-MM-DD."
            value = None
    if value is None and "session_date" not in errors:
        errors["session_date"] = "Enter the session date."
    elif isinstance(value, date) and value > clock.local_today():
        errors["session_date"] = f"Session date {value.isoformat()} is in the future."
    return value


def _time_text(value: Any, name: str, label: str, errors: dict[str, str]) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, (time, datetime)):
        return value.strftime("%H:%M")
    if isinstance(value, str) and TIME_RE.match(value):
        return value
    errors[name] = f"{label} must be a time as HH:MM (24-hour), got {value!r}."
    return None


def _times(start: Any, end: Any, sdate: date | None, for_sign: bool,
           errors: dict[str, str]) -> tuple[str | None, str | None]:
    start = _time_text(start, "start_time", "Start time", errors)
    end = _time_text(end, "end_time", "End time", errors)
    if start and end and end < start:
        errors["end_time"] = f"End time {end} is before start time {start}."
    if for_sign and not start and "start_time" not in errors:
        errors["start_time"] = "Enter the session's start time before signing."
    if for_sign and isinstance(sdate, date):  # a signed record says what happened, not what is planned
        _refuse_future_times(sdate, {"start_time": start, "end_time": end}, errors)
    return start, end


def _refuse_future_times(sdate: date, times: dict[str, str | None], errors: dict[str, str]) -> None:
    for name, value in times.items():
        if value and name not in errors and clock.in_future(sdate, value):
            errors[name] = (f"{value} on {sdate.isoformat()} is still in the future; sign the note once "
                            "the session has taken place.")


def _modality(value: Any, errors: dict[str, str]) -> str:
    modality = value or Modality.in_person.value
    if modality not in {m.value for m in Modality}:
        errors["modality"] = f"Modality must be in person or telehealth, got {modality!r}."
    return str(modality)


# --- the template's fields -------------------------------------------------------------------


def _fields(note_type: str, given: dict, errors: dict[str, str]) -> dict:
    """The template's fields, typed and checked; text fields within the free-text limits."""
    try:
        fields = validate_fields(note_type, given)
    except ValidationError as exc:
        errors.update(exc.errors)
        return {}
    for key, value in fields.items():
        if isinstance(value, str):
            clean_text(value, key, template(note_type).field(key).label, FREE_TEXT_MAX, errors)
    return fields


def _bp_errors(fields: dict, when: str, label: str, both_required: bool) -> dict[str, str]:
    """Blood-pressure checks from kapnotes.vitals, reported at this template's field names."""
    s_name, d_name = f"bp_systolic_{when}", f"bp_diastolic_{when}"
    s, d = fields.get(s_name), fields.get(d_name)
    if (s is None or d is None) and not both_required:
        return {}
    raw = vitals.check_bp(s, d, prefix="bp", label=label)
    return {s_name if k == "bp_systolic" else d_name: v for k, v in raw.items()}


def _dosing_checks(fields: dict, sdate: date | None, for_sign: bool, errors: dict[str, str]) -> None:
    """A dosing note: dose and booster within limits, blood pressure plausible, dose time not ahead."""
    if "dose_mg" in fields:
        errors.update(vitals.check_dose(fields.get("dose_mg")))
    post_given = any(fields.get(k) is not None for k in ("bp_systolic_post", "bp_diastolic_post"))
    for when, label, required in (("pre", "Blood pressure before dosing", for_sign),
                                  ("post", "Blood pressure after dosing", post_given and for_sign)):
        for key, message in _bp_errors(fields, when, label, required).items():
            errors.setdefault(key, message)
    if fields.get("booster_mg") is not None and "booster_mg" not in errors:
        errors.update(vitals.check_dose(fields["booster_mg"], "booster_mg"))
    taken = fields.get("time_taken")
    if (isinstance(sdate, date) and isinstance(taken, str) and TIME_RE.match(taken)
            and "time_taken" not in errors and clock.in_future(sdate, taken)):
        errors["time_taken"] = (f"{taken} on {sdate.isoformat()} is in the future; enter when the dose "
                                "was actually taken.")


def _proposal_checks(fields: dict, errors: dict[str, str]) -> None:
    """An integration note being signed: a proposed dose or interval comes with its reason."""
    has_proposal = fields.get("proposal_dose_mg") is not None or fields.get("proposal_interval_days") is not None
    if has_proposal and is_blank(fields.get("proposal_reason")):
        errors["proposal_reason"] = "Give the reason for the proposed dose or interval."
    if not has_proposal and not is_blank(fields.get("proposal_reason")):
        errors["proposal_dose_mg"] = "Give a proposed dose or interval, or clear the reason for the proposal."
    if fields.get("proposal_dose_mg") is not None and "proposal_dose_mg" not in errors:
        errors.update(vitals.check_dose(fields["proposal_dose_mg"], "proposal_dose_mg"))


def _linked_dose_check(session: Session, note: SessionNote, dose_id: int | None, sdate: date | None,
                       fields: dict, errors: dict[str, str]) -> int | None:
    """The dose a note integrates: an active entry of this patient, taken on or before the session.
    An integration note records the days since that dose in ``fields``."""
    if dose_id is None:
        return None
    dose = session.get(DoseEntry, dose_id)
    if dose is None or dose.patient_id != note.patient_id or dose.voided_at is not None:
        errors["integrates_dose_id"] = "The linked dose is not an active dose-log entry of this patient."
    elif isinstance(sdate, date):
        local = dose.taken_at.astimezone(get_settings().tz).date()
        if local > sdate:
            errors["integrates_dose_id"] = "The linked dose was taken after this session."
        elif note.note_type == NoteType.integration:
            fields["days_since_dose"] = (sdate - local).days
    return dose_id


# --- allowed, with a warning -----------------------------------------------------------------


def apply_plan_check(session: Session, note: SessionNote, fields: dict) -> dict:
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
