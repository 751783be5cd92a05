"""What a patient enters on the check-in page, and the check of it in plain words.

Every message is one a patient reads on a phone: it names the field the page shows and says
what to do, never a code. ``validate`` only reads; ``kapnotes.checkin.submit`` stores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kapnotes import doses, vocab
from kapnotes.pdf.handout_data import PlanWords
from kapnotes.timeutil import utcnow

NOTE_MAX = 1000

# Side effects in the patient's words → the adverse-event tags of the clinical record (one home: vocab).
SIDE_EFFECTS: dict[str, str] = vocab.PATIENT_SIDE_EFFECTS


@dataclass
class CheckinInput:
    """What the patient entered. ``taken_at`` is timezone-aware; ``dose_mg`` None = the plan's dose."""

    taken_at: datetime | None
    dose_mg: float | None = None
    dose_confirmed: bool = False  # a dose other than the plan's, confirmed by the patient
    minutes_held: int | None = None
    administration: str | None = None  # "spit" | "swallow"
    anxiety_before: int | None = None
    anxiety_after: int | None = None
    dissociation: int | None = None
    nausea: int | None = None  # 0–3
    vomited: bool = False
    bp_systolic: int | None = None
    bp_diastolic: int | None = None
    heart_rate: int | None = None
    side_effects: list[str] = field(default_factory=list)  # keys of SIDE_EFFECTS
    note: str | None = None
    gad7: list[int | None] | None = None  # None: not asked; otherwise 7 answers 0–3
    phq9: list[int | None] | None = None


def _rng(errors: dict, value, low: int, high: int, name: str, message: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors[name] = message


def _check_time(e: dict, t, now: datetime) -> None:
    if t is None or not isinstance(t, datetime) or t.tzinfo is None:
        e["taken_at"] = "Please enter when you took the dose."
    elif t > now + doses.FUTURE_SLACK:
        e["taken_at"] = "That time is in the future. Please enter when you actually took the dose."
    elif t < now - timedelta(days=14):
        e["taken_at"] = "That is more than two weeks ago. Please tell your clinic about older doses at your next visit."


def _check_dose(e: dict, data: CheckinInput, plan: PlanWords | None) -> None:
    dose = data.dose_mg if data.dose_mg is not None else (plan.dose_mg if plan else None)
    if dose is None:
        e["dose_mg"] = "Please enter how many mg you took."
    elif isinstance(dose, bool) or not isinstance(dose, (int, float)) or not 0 < dose <= 1000:
        e["dose_mg"] = "The dose must be more than 0 and at most 1000 mg."
    elif plan is not None and dose != plan.dose_mg and not data.dose_confirmed:
        e["dose_mg"] = (f"{dose:g} mg is not your planned dose of {plan.dose_mg:g} mg. If that is what you took, "
                        "tick the box to confirm it.")
    _rng(e, data.minutes_held, 0, 120, "minutes_held", "Minutes in the mouth must be a whole number from 0 to 120.")
    if data.administration not in (None, "spit", "swallow"):
        e["administration"] = "Please choose spit or swallow."


def _check_feelings(e: dict, data: CheckinInput) -> None:
    for name, what in (("anxiety_before", "Anxiety before"), ("anxiety_after", "Anxiety after"),
                       ("dissociation", "How spaced-out you felt")):
        _rng(e, getattr(data, name), 0, 10, name, f"{what} must be a number from 0 to 10.")
    _rng(e, data.nausea, 0, 3, "nausea", "Please choose how bad the nausea was.")
    if not isinstance(data.vomited, bool):
        e["vomited"] = "Please answer yes or no."


def _check_vitals(e: dict, data: CheckinInput) -> None:
    s, d = data.bp_systolic, data.bp_diastolic
    if (s is None) != (d is None):
        e["bp"] = "Please enter both blood pressure numbers (the top and the bottom one), or neither."
    else:
        _rng(e, s, 60, 260, "bp_systolic", "The top blood pressure number must be from 60 to 260.")
        _rng(e, d, 30, 160, "bp_diastolic", "The bottom blood pressure number must be from 30 to 160.")
        if "bp_systolic" not in e and "bp_diastolic" not in e and s is not None and d >= s:
            e["bp"] = "The top blood pressure number must be bigger than the bottom one."
    _rng(e, data.heart_rate, 30, 220, "heart_rate", "Pulse must be from 30 to 220 beats a minute.")


def _check_words(e: dict, data: CheckinInput) -> None:
    unknown = [x for x in data.side_effects or [] if x not in SIDE_EFFECTS]
    if unknown:
        e["side_effects"] = "Please choose side effects from the list."
    if data.note is not None and len(data.note) > NOTE_MAX:
        e["note"] = f"Your note is too long: please keep it under {NOTE_MAX} characters."


def _check_answers(e: dict, name: str, answers: list | None, n: int) -> None:
    """A questionnaire: not asked (None), all ``n`` answers 0–3, or none of them."""
    if answers is None:
        return
    if len(answers) != n:
        e[name] = "Please answer every question."
        return
    filled = [a for a in answers if a is not None]
    if filled and len(filled) != n:
        missing = ", ".join(str(i) for i, a in enumerate(answers, start=1) if a is None)
        e[name] = f"Please answer every question, or none of them (not answered: {missing})."
    elif any(isinstance(a, bool) or not isinstance(a, int) or not 0 <= a <= 3 for a in filled):
        e[name] = "Please choose one answer for each question."


def validate(data: CheckinInput, plan: PlanWords | None, now: datetime | None = None) -> dict[str, str]:
    """Plain-words messages, one per field the page shows, in the page's order (empty when all is well)."""
    e: dict[str, str] = {}
    _check_time(e, data.taken_at, now or utcnow())
    _check_dose(e, data, plan)
    _check_feelings(e, data)
    _check_vitals(e, data)
    _check_words(e, data)
    _check_answers(e, "gad7", data.gad7, 7)
    _check_answers(e, "phq9", data.phq9, 9)
    return e
