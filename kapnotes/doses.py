"""The dose log: add, edit (until a signed note uses the entry), void, list, adherence.

One validation (``validate_dose``) serves the manual form, the CSV import and the notes
feature, using the shared plausible ranges of ``kapnotes.vitals``. Entries are never
deleted: a wrong one is voided with a reason. Every change is audited (ids only) and
emits ``"dose.changed"``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, time, timedelta, timezone

import pandas as pd
from sqlalchemy import func, or_
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, col, select

from kapnotes import audit, events, vitals
from kapnotes.access import require_patient, require_record
from kapnotes.actor import Actor
from kapnotes.adherence import Adherence, adherence, adherence_from, adherences  # noqa: F401  (re-exported)
from kapnotes.dose_columns import CSV_COLUMNS, INT_COLUMNS, LABELS  # noqa: F401  (re-exported)
from kapnotes.dosing import protocol_settings as protocol
from kapnotes.errors import ConflictError, ValidationError
from kapnotes.models import (
    Administration,
    DoseContext,
    DoseEntry,
    DoseSource,
    Formulation,
    NoteStatus,
    SessionNote,
    TreatmentPlan,
)
from kapnotes.query import not_voided
from kapnotes.timeutil import utcnow

FORMULATIONS = tuple(f.value for f in Formulation)
ADMINISTRATIONS = tuple(a.value for a in Administration)
CONTEXTS = tuple(c.value for c in DoseContext)
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
FUTURE_SLACK = timedelta(minutes=5)  # clock skew between a phone, a server and a clinic PC
NOTES_MAX = 4000
TAG_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,39}$")

@dataclass
class DoseInput:
    """One dose as entered or imported; ``taken_at`` must be timezone-aware."""

    taken_at: datetime | None
    dose_mg: float | None
    formulation: str | None
    administration: str | None = None
    context: str = DoseContext.home.value
    anxiety_before: int | None = None
    anxiety_after: int | None = None
    dissociation: int | None = None
    nausea: int | None = None
    vomited: bool = False
    bp_systolic_pre: int | None = None
    bp_diastolic_pre: int | None = None
    bp_systolic_post: int | None = None
    bp_diastolic_post: int | None = None
    heart_rate: int | None = None
    adverse_events: str = ""
    notes: str | None = None

    @classmethod
    def from_entry(cls, entry: DoseEntry) -> DoseInput:
        return cls(**{f.name: getattr(entry, f.name) for f in fields(cls)})


def normalise_tags(raw: str | None) -> str:
    """``"Dizziness; chest pain"`` → ``"dizziness;chest_pain"`` (tags are ``;``-separated)."""
    if raw is None:
        return ""
    tags = []
    for part in str(raw).replace(",", ";").split(";"):
        tag = re.sub(r"[\s\-]+", "_", part.strip().lower())
        if tag and tag not in tags:
            tags.append(tag)
    return ";".join(tags)


def _is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_dose(data: DoseInput, now: datetime | None = None) -> dict[str, str]:
    """Field → plain message for every problem; empty when the dose is acceptable."""
    errors = _time_errors(data.taken_at, now or utcnow())
    if data.dose_mg is not None and isinstance(data.dose_mg, float) and math.isnan(data.dose_mg):
        errors["dose_mg"] = "Enter the dose in mg."
    else:
        errors |= vitals.check_dose(data.dose_mg)
    errors |= _kind_errors(data)
    for name in ("anxiety_before", "anxiety_after", "dissociation"):
        errors |= _whole_in(getattr(data, name), *vitals.RATING_0_10, name)
    errors |= _whole_in(data.nausea, *vitals.NAUSEA_RANGE, "nausea", "(0 none – 3 severe)")
    errors |= _whole_in(data.heart_rate, *vitals.HEART_RATE_RANGE, "heart_rate", "beats per minute")
    for when in ("pre", "post"):
        s, d = getattr(data, f"bp_systolic_{when}"), getattr(data, f"bp_diastolic_{when}")
        label = "Blood pressure before the dose" if when == "pre" else "Blood pressure after the dose"
        for key, message in vitals.check_bp(s, d, prefix=f"bp_{when}", label=label).items():
            errors[key.replace(f"bp_{when}_", "bp_") + f"_{when}"] = message
    return errors | _text_errors(data)


def _time_errors(t, now: datetime) -> dict[str, str]:
    if t is None:
        return {"taken_at": "Enter when the dose was taken."}
    if not isinstance(t, datetime) or t.tzinfo is None:
        return {"taken_at": "The time taken needs a date, time and time zone."}
    if t > now + FUTURE_SLACK:
        return {"taken_at": "This time is in the future; enter when the dose was actually taken."}
    if t < EARLIEST:
        return {"taken_at": "The time taken is before the year 2000."}
    return {}


def _kind_errors(data: DoseInput) -> dict[str, str]:
    """Formulation, administration and context: one of the stored codes."""
    errors: dict[str, str] = {}
    if data.formulation not in FORMULATIONS:
        errors["formulation"] = (
            f"Unknown formulation {data.formulation!r}; use one of {', '.join(FORMULATIONS)}."
            if data.formulation else "Enter the formulation (" + ", ".join(FORMULATIONS) + ")."
        )
    if data.administration is not None and data.administration not in ADMINISTRATIONS:
        errors["administration"] = f"Administration must be spit or swallow, got {data.administration!r}."
    if data.context not in CONTEXTS:
        errors["context"] = f"Unknown context {data.context!r}; use one of {', '.join(CONTEXTS)}."
    return errors


def _text_errors(data: DoseInput) -> dict[str, str]:
    """Vomited, the adverse-event tags and the notes."""
    errors: dict[str, str] = {}
    if not isinstance(data.vomited, bool):
        errors["vomited"] = f"Vomited must be yes or no, got {data.vomited!r}."
    for tag in filter(None, (data.adverse_events or "").split(";")):
        if not TAG_RE.match(tag):
            errors["adverse_events"] = (f"Adverse event tag {tag!r} is not valid; use short words joined by "
                                        "underscores, separated by ';'.")
            break
    if data.notes is not None and len(data.notes) > NOTES_MAX:
        errors["notes"] = f"Notes are limited to {NOTES_MAX} characters."
    return errors


def _whole_in(value, low: int, high: int, name: str, unit: str = "") -> dict[str, str]:
    if value is None:
        return {}
    label = LABELS[name].split(" (")[0]
    if not _is_whole(value):
        return {name: f"{label} must be a whole number {low}–{high}, got {value!r}."}
    return vitals.check_range(value, low, high, name, f"{label} {unit}".strip())


def _values(data: DoseInput) -> dict:
    """The fields as a dict. Not ``dataclasses.asdict``: it deep-copies every value, which was half
    of a large import's time, and every field here is an immutable scalar."""
    return {f.name: getattr(data, f.name) for f in fields(data)}


def _clean(data: DoseInput) -> DoseInput:
    dose, notes = data.dose_mg, data.notes
    return replace(
        data, adverse_events=normalise_tags(data.adverse_events),
        notes=notes.strip() or None if isinstance(notes, str) else None,
        dose_mg=float(dose) if isinstance(dose, int) and not isinstance(dose, bool) else dose)


def plan_at(session: Session, patient_id: int, when: datetime) -> TreatmentPlan | None:
    """The plan version in effect at ``when``."""
    return session.exec(
        select(TreatmentPlan)
        .where(TreatmentPlan.patient_id == patient_id, TreatmentPlan.effective_from <= when)
        .order_by(col(TreatmentPlan.version_number).desc())
        .limit(1)
    ).first()


def _signed_note_using(session: Session, entry: DoseEntry) -> SessionNote | None:
    if entry.session_note_id is None:
        return None
    note = session.get(SessionNote, entry.session_note_id)
    return note if note is not None and note.status == NoteStatus.signed else None


def is_locked(session: Session, entry: DoseEntry) -> bool:
    """True when a signed session note uses this entry (then it cannot change)."""
    return _signed_note_using(session, entry) is not None


def get_dose(session: Session, actor: Actor, dose_id: int) -> DoseEntry:
    return require_record(session, actor, DoseEntry, dose_id)


def find_duplicate(session: Session, patient_id: int, taken_at: datetime, dose_mg: float) -> DoseEntry | None:
    """A live entry with the same time (to the second) and dose: the import's duplicate rule."""
    second = taken_at.replace(microsecond=0)
    return session.exec(
        select(DoseEntry).where(
            DoseEntry.patient_id == patient_id, not_voided(DoseEntry),
            DoseEntry.taken_at >= second, DoseEntry.taken_at < second + timedelta(seconds=1),
            DoseEntry.dose_mg == float(dose_mg))
        .limit(1)
    ).first()


class UnusualDose(ValidationError):
    """A dose above the plan's dose or the protocol ceiling, not confirmed: nothing was saved.

    Such a dose stays recordable (the log is the truth of what was taken, up to
    ``vitals.DOSE_MG_MAX``) once the caller confirms it; the engine then holds.
    """

    def __init__(self, message: str, dose_mg: float):
        super().__init__({"dose_mg": message})
        self.dose_mg = dose_mg


def unusual_dose(session: Session, patient_id: int, dose_mg: float, taken_at: datetime) -> str | None:
    """Why this dose needs a confirmation (above the plan in effect then, or above the
    protocol ceiling), in plain words; None when it does not."""
    return _above(plan_at(session, patient_id, taken_at), _ceiling(session), dose_mg)


def _ceiling(session: Session) -> float:
    try:
        return protocol.in_force(session).ceiling_mg
    except protocol.ProtocolError:  # a broken clinic file must not block documenting: the bundled ceiling
        return protocol.load_default().ceiling_mg


def _above(plan: TreatmentPlan | None, ceiling: float, dose_mg: float) -> str | None:
    """The one wording of "above the plan and/or the ceiling"; None when the dose is neither."""
    reasons = []
    if plan is not None and dose_mg > plan.dose_mg:
        reasons.append(f"the plan's {plan.dose_mg:g} mg")
    if dose_mg > ceiling:
        reasons.append(f"the protocol's {ceiling:g} mg ceiling")
    if not reasons:
        return None
    return f"{dose_mg:g} mg is above {' and '.join(reasons)}."


def unusual_rows(session: Session, patient_id: int, rows) -> list[tuple[int, str]]:
    """(row number, reason) for each imported dose above the plan or the ceiling. An import
    records them as the file says (the file is the record); the caller warns per row."""
    rows = list(rows)
    if len(rows) < 50:
        return [(n, m) for n, data in rows
                if (m := unusual_dose(session, patient_id, float(data.dose_mg), data.taken_at)) is not None]
    # a large file: the plan history and the ceiling read once (same rule as ``unusual_dose``)
    history = session.exec(select(TreatmentPlan).where(TreatmentPlan.patient_id == patient_id)
                           .order_by(col(TreatmentPlan.version_number).desc())).all()
    ceiling = _ceiling(session)
    out = []
    for number, data in rows:
        plan = next((p for p in history if p.effective_from <= data.taken_at), None)
        if (message := _above(plan, ceiling, float(data.dose_mg))) is not None:
            out.append((number, message))
    return out


def _require_confirmation(session: Session, patient_id: int, data: DoseInput, confirmed: bool) -> bool:
    """Raise ``UnusualDose`` for an unconfirmed unusual dose; True when a confirmed one goes through."""
    message = unusual_dose(session, patient_id, data.dose_mg, data.taken_at)
    if message is None:
        return False
    if not confirmed:
        raise UnusualDose(f"{message} Check the number; if that is what was taken, confirm it.", data.dose_mg)
    return True


def add_dose(
    session: Session,
    actor: Actor,
    patient_id: int,
    data: DoseInput,
    source: str = DoseSource.manual.value,
    session_note_id: int | None = None,
    allow_duplicate: bool = False,
    confirm_unusual_dose: bool = False,
) -> DoseEntry:
    """Record one dose. Bad input raises ``ValidationError`` and writes nothing.

    The same dose at the same time twice is refused (a double submit, or an entry that an
    import already brought in) unless ``allow_duplicate``. A dose above the plan's dose or
    the protocol ceiling is refused (``UnusualDose``) unless ``confirm_unusual_dose``: a
    typo of 900 for 90 must not pass silently, a dose really taken must stay recordable.
    """
    require_patient(session, actor, patient_id)
    data = _clean(data)
    vitals.raise_if(validate_dose(data))
    confirmed = _require_confirmation(session, patient_id, data, confirm_unusual_dose)
    if source not in {s.value for s in DoseSource}:
        raise ValidationError({"source": f"Unknown source {source!r}."})
    if not allow_duplicate:
        twin = find_duplicate(session, patient_id, data.taken_at, data.dose_mg)
        if twin is not None:
            raise ValidationError({"taken_at": f"A {data.dose_mg:g} mg dose at this time is already in the log; "
                                               "edit that entry instead."})
    plan = plan_at(session, patient_id, data.taken_at)
    entry = DoseEntry(patient_id=patient_id, plan_id=plan.id if plan else None, source=source,
                      session_note_id=session_note_id, entered_by_id=actor.id, **_values(data))
    session.add(entry)
    session.flush()
    audit.record(session, actor, "dose.add", "dose_entry", entry.id, patient_id,
                 detail=f"source={source}" + (" unusual_dose_confirmed" if confirmed else ""))
    events.emit(session, "dose.changed", actor, patient_id=patient_id, dose_id=entry.id)
    return entry


def _check_version(entry: DoseEntry, expected_version: int | None) -> None:
    if expected_version is not None and entry.version != expected_version:
        raise ConflictError(
            "Someone else changed this dose entry while you were editing it; nothing was overwritten. "
            "Reload to see their version.", theirs=entry.id)


def _flush(session: Session) -> None:
    try:
        session.flush()
    except StaleDataError:
        raise ConflictError("Someone else changed this dose entry at the same time; nothing was overwritten. "
                            "Reload and try again.") from None


def edit_dose(session: Session, actor: Actor, dose_id: int, data: DoseInput,
              expected_version: int | None = None, confirm_unusual_dose: bool = False) -> DoseEntry:
    """Change an entry that is not voided and not used by a signed note.

    A change of dose or time that makes it unusual (see ``add_dose``) needs ``confirm_unusual_dose``."""
    entry = get_dose(session, actor, dose_id)
    if entry.voided_at is not None:
        raise ValidationError({"_": "This dose entry was voided and can no longer be edited."})
    if _signed_note_using(session, entry) is not None:
        raise ValidationError({"_": "This dose entry is part of a signed session note and can no longer be "
                                    "edited. Correct it with an addendum to that note."})
    _check_version(entry, expected_version)
    data = _clean(data)
    vitals.raise_if(validate_dose(data))
    changed = [name for name, value in _values(data).items() if getattr(entry, name) != value]
    if not changed:
        return entry
    confirmed = False
    if "dose_mg" in changed or "taken_at" in changed:
        confirmed = _require_confirmation(session, entry.patient_id, data, confirm_unusual_dose)
    plan = plan_at(session, entry.patient_id, data.taken_at) if "taken_at" in changed else None
    with session.no_autoflush:
        for name in changed:
            setattr(entry, name, getattr(data, name))
        if "taken_at" in changed:
            entry.plan_id = plan.id if plan else None
        session.add(entry)
    _flush(session)
    audit.record(session, actor, "dose.edit", "dose_entry", entry.id, entry.patient_id,
                 detail="fields=" + ",".join(changed) + (" unusual_dose_confirmed" if confirmed else ""))
    events.emit(session, "dose.changed", actor, patient_id=entry.patient_id, dose_id=entry.id)
    return entry


def void_dose(session: Session, actor: Actor, dose_id: int, reason: str,
              expected_version: int | None = None) -> DoseEntry:
    """Mark an entry as void (never deleted); a reason is required."""
    entry = get_dose(session, actor, dose_id)
    if not (reason or "").strip():
        raise ValidationError({"reason": "Give the reason for voiding this dose entry."})
    if entry.voided_at is not None:
        raise ValidationError({"_": "This dose entry is already voided."})
    if _signed_note_using(session, entry) is not None:
        raise ValidationError({"_": "This dose entry is part of a signed session note and cannot be voided. "
                                    "Correct it with an addendum to that note."})
    _check_version(entry, expected_version)
    entry.voided_at = utcnow()
    entry.voided_by_id = actor.id
    entry.void_reason = reason.strip()
    session.add(entry)
    _flush(session)
    audit.record(session, actor, "dose.void", "dose_entry", entry.id, entry.patient_id)
    events.emit(session, "dose.changed", actor, patient_id=entry.patient_id, dose_id=entry.id)
    return entry


# --- reading -------------------------------------------------------------------------------

LIST_COLUMNS = ("id", *CSV_COLUMNS, "source", "import_batch_id", "session_note_id", "plan_id",
                "voided_at", "void_reason", "version")


@dataclass(frozen=True)
class DoseFilter:
    date_from: date | None = None  # clinic calendar days, inclusive
    date_to: date | None = None
    contexts: tuple[str, ...] = ()
    adverse_only: bool = False
    include_voided: bool = False
    limit: int | None = None  # the newest N only (pickers, a page of the log), read in SQL rather than sliced after
    offset: int = 0  # rows skipped before the page (the log's paging), in SQL too


STAGING_REASON = "import in progress"  # csv_import: staged rows wait, voided, until their batch is published


def active_filter():
    """The doses that count: not voided. A long import stages its rows as voided (reason
    ``STAGING_REASON``) and publishes them in one short final transaction, so every query
    with this filter (or the plain ``voided_at IS NULL``) never sees half an import."""
    return not_voided(DoseEntry)


def visible_filter():
    """Doses a list may show, voided ones included: everything except an import's staged rows."""
    return or_(not_voided(DoseEntry), col(DoseEntry.void_reason).is_(None),
               DoseEntry.void_reason != STAGING_REASON)


def dose_frame(session: Session, patient_id: int, flt: DoseFilter = DoseFilter(), tz=None,
               columns: tuple[str, ...] = LIST_COLUMNS) -> pd.DataFrame:
    """The patient's doses as a DataFrame (one query, no access check: callers check)."""
    q = _filtered(select(*[getattr(DoseEntry, c) for c in columns]), patient_id, flt, tz)
    q = q.order_by(col(DoseEntry.taken_at).desc(), col(DoseEntry.id).desc())
    if flt.offset:
        q = q.offset(flt.offset)
    if flt.limit is not None:
        q = q.limit(flt.limit)
    rows = session.exec(q).all()
    frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=list(columns))
    if "taken_at" in frame:
        frame["taken_at"] = pd.to_datetime(frame["taken_at"], utc=True)
    return frame


def _filtered(q, patient_id: int, flt: DoseFilter, tz):
    q = q.where(DoseEntry.patient_id == patient_id)
    q = q.where(active_filter() if not flt.include_voided else visible_filter())  # never an import's staged rows
    tz = tz or timezone.utc
    if flt.date_from:
        q = q.where(DoseEntry.taken_at >= datetime.combine(flt.date_from, time(), tz))
    if flt.date_to:
        q = q.where(DoseEntry.taken_at < datetime.combine(flt.date_to + timedelta(days=1), time(), tz))
    if flt.contexts:
        q = q.where(col(DoseEntry.context).in_(flt.contexts))
    if flt.adverse_only:
        q = q.where(DoseEntry.adverse_events != "")
    return q


def count_doses(session: Session, actor: Actor, patient_id: int, flt: DoseFilter = DoseFilter(), tz=None) -> int:
    """How many doses the filter matches, counted in SQL (the log pages; its cost stays flat)."""
    require_patient(session, actor, patient_id)
    return int(session.exec(_filtered(select(func.count()).select_from(DoseEntry), patient_id, flt,
                                      tz or timezone.utc)).one())


def list_doses(session: Session, actor: Actor, patient_id: int, flt: DoseFilter = DoseFilter(),
               tz=None) -> pd.DataFrame:
    """The dose log table, newest first, filtered. The page's open is audited by the banner."""
    require_patient(session, actor, patient_id)
    return dose_frame(session, patient_id, flt, tz)

