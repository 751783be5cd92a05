"""The dose form (add and edit share it): start values, the ~20 fields, errors at each field, saving.

Start values are set once per form, so an input the user empties or makes invalid stays empty
and is refused at save, never silently replaced by a default. A refusal goes to the field it
is about (kept across the rerun); an unusual dose gets its confirmation box under the dose.
The pure parts (``form_defaults``, ``field_message``, ``read_input``) are tested in
``tests/unit/test_dose_form.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import streamlit as st

from kapnotes import doses, vocab
from kapnotes.errors import ValidationError
from kapnotes.models import TreatmentPlan
from kapnotes.textsafe import md_escape
from kapnotes.ui.feedback import attempt

# Dates outside these bounds are refused by the service with a reason; narrower widget bounds
# would make the browser drop what was typed and keep the old value without a word.
WIDGET_MIN_DATE, WIDGET_MAX_DATE = date(1000, 1, 1), date(9999, 12, 31)
# Field → the words of its label, for messages that do not already name the field.
FIELD_LABELS = {"taken_at": "Date and time taken", "dose_mg": "Dose (mg)", "formulation": "Formulation",
                "administration": "Spat or swallowed", "context": "Context", "vomited": "Vomited",
                "adverse_events": "Adverse events", "notes": "Notes", "_": None}
NUMBERS = (("anxiety_before", "Anxiety before (0–10)"), ("anxiety_after", "Anxiety after (0–10)"),
           ("dissociation", "Dissociation (0–10)"), ("nausea", "Nausea (0 none – 3 severe)"),
           ("bp_systolic_pre", "Blood pressure before the dose: systolic (mmHg)"),
           ("bp_diastolic_pre", "Blood pressure before the dose: diastolic (mmHg)"),
           ("bp_systolic_post", "Blood pressure after the dose: systolic (mmHg)"),
           ("bp_diastolic_post", "Blood pressure after the dose: diastolic (mmHg)"),
           ("heart_rate", "Heart rate (bpm)"))
SHOWN_AT_FIELDS = {"taken_date", "taken_at", "taken_time", "dose_mg", "formulation", "administration", "context",
                   "vomited", "adverse_events", "notes", *(name for name, _label in NUMBERS)}
FormResult = tuple["doses.DoseInput | None", dict, bool]


def field_message(name: str, message: str) -> str:
    """The message in the label's words: ``Dose (mg): …`` (messages naming their field stay as they are)."""
    label = FIELD_LABELS.get(name)
    if not label:
        return message
    if len(message) > 1 and message[1].islower():
        message = message[0].lower() + message[1:]
    return f"{label}: {message}"


def form_defaults(prefix: str, initial: doses.DoseInput | None, plan: TreatmentPlan | None, now: datetime,
                  tz: ZoneInfo) -> dict[str, Any]:
    """The start values of the widgets with state (session-state key → value): the entry being
    edited, else now and the active plan's dose, numbers empty."""
    t0 = initial.taken_at.astimezone(tz) if initial else now.astimezone(tz)
    dose_default = initial.dose_mg if initial else (plan.dose_mg if plan else None)
    values: dict[str, Any] = {f"{prefix}_date": t0.date(), f"{prefix}_time": t0.time().replace(second=0, microsecond=0),
                              f"{prefix}_dose": None if dose_default is None else float(dose_default)}
    for name, _label in NUMBERS:
        values[f"{prefix}_{name}"] = getattr(initial, name) if initial else None
    return values


def choice_defaults(initial: doses.DoseInput | None, plan: TreatmentPlan | None) -> tuple[str, str | None, str]:
    """(formulation, administration, context) the dropdowns start on: the entry, else the plan's."""
    if initial:
        return initial.formulation, initial.administration, initial.context
    if plan:
        return plan.formulation, plan.administration, doses.CONTEXTS[0]
    return "odt", None, doses.CONTEXTS[0]


def read_input(day: date | None, clock: time | None, tz: ZoneInfo, **fields) -> tuple[doses.DoseInput, dict]:
    """The dose as typed, and what the widgets could not read (refused here, never replaced)."""
    here: dict[str, str] = {}
    if day is None:
        here["taken_date"] = "Date taken: enter a valid date (YYYY-MM-DD)."
    if clock is None:
        here["taken_time"] = "Time taken: enter a valid time (HH:MM)."
    taken_at = datetime.combine(day, clock, tz) if day is not None and clock is not None else None
    return doses.DoseInput(taken_at=taken_at, **fields), here


def _prefill(prefix: str, initial: doses.DoseInput | None, plan: TreatmentPlan | None, now: datetime,
             tz: ZoneInfo) -> None:
    if st.session_state.get(f"{prefix}__filled"):
        return
    st.session_state.update(form_defaults(prefix, initial, plan, now, tz))
    st.session_state[f"{prefix}__filled"] = True


def _errors_at(prefix: str, *names: str) -> None:
    errors = st.session_state.get(f"{prefix}__errors") or {}
    for name in names:
        if name in errors:
            st.error(md_escape(field_message(name, errors[name])), icon=":material/error:")


def _when_and_dose(prefix: str, tz: ZoneInfo) -> tuple[date | None, time | None, float | None, float | None, bool]:
    c = st.columns(3)
    with c[0]:
        day = st.date_input("Date taken", value=None, min_value=WIDGET_MIN_DATE, max_value=WIDGET_MAX_DATE,
                            key=f"{prefix}_date", format="YYYY-MM-DD")
        _errors_at(prefix, "taken_date", "taken_at")
    with c[1]:
        clock = st.time_input(f"Time taken ({tz.key})", value=None, key=f"{prefix}_time", step=300)
        _errors_at(prefix, "taken_time")
    with c[2]:
        dose_mg = st.number_input("Dose (mg)", value=None, step=25.0, key=f"{prefix}_dose")
        _errors_at(prefix, "dose_mg")
        pending = st.session_state.get(f"{prefix}__unusual")
        confirmed = False
        if pending is not None:
            confirmed = st.checkbox(f"Yes, {pending:g} mg was taken — record it", key=f"{prefix}_confirm_{pending:g}",
                                    help="A recorded dose is what was taken. The dose rules then hold the plan "
                                         "for the prescriber's review.")
    return day, clock, dose_mg, pending, confirmed


def _kind(prefix: str, initial: doses.DoseInput | None, plan: TreatmentPlan | None) -> dict[str, Any]:
    form_default, adm_default, ctx_default = choice_defaults(initial, plan)
    c = st.columns(3)
    formulation = c[0].selectbox("Formulation", doses.FORMULATIONS, index=doses.FORMULATIONS.index(form_default)
                                 if form_default in doses.FORMULATIONS else 0, format_func=vocab.formulation_word,
                                 key=f"{prefix}_form")
    adm_options = [None, *doses.ADMINISTRATIONS]
    administration = c[1].selectbox("Spat or swallowed", adm_options,
                                    index=adm_options.index(adm_default) if adm_default in adm_options else 0,
                                    format_func=lambda v: ("(not recorded)" if v is None
                                                           else vocab.administration_word(v)),
                                    key=f"{prefix}_adm")
    context = c[2].selectbox("Context", doses.CONTEXTS, index=doses.CONTEXTS.index(ctx_default),
                             format_func=vocab.context_word, key=f"{prefix}_ctx")
    with c[0]:
        _errors_at(prefix, "formulation", "administration", "context")
    return {"formulation": formulation, "administration": administration, "context": context}


def _numbers(prefix: str) -> dict[str, Any]:
    st.caption("Leave a value empty when it was not reported.")
    values = {}
    for row in (NUMBERS[:4], NUMBERS[4:]):
        cols = st.columns(len(row))
        for col, (name, label) in zip(cols, row, strict=True):
            with col:
                values[name] = st.number_input(label, value=None, step=1, key=f"{prefix}_{name}")
                _errors_at(prefix, name)
    return values


def _events_and_notes(prefix: str, initial: doses.DoseInput | None) -> dict[str, Any]:
    vomited = st.checkbox("Vomited", value=bool(initial.vomited) if initial else False, key=f"{prefix}_vomited")
    tags_now = [t for t in (initial.adverse_events.split(";") if initial and initial.adverse_events else [])]
    options = list(vocab.ADVERSE_EVENT_TAGS) + [t for t in tags_now if t not in vocab.ADVERSE_EVENT_TAGS]
    # no "Select all": one click must never record a seizure and chest pain together
    picked = st.multiselect("Adverse events", options, default=tags_now, format_func=vocab.adverse_event_word,
                            accept_new_options=True, select_all=False, key=f"{prefix}_tags",
                            help="Choose each event that happened, or type another in a few words.")
    _errors_at(prefix, "vomited", "adverse_events")
    notes = st.text_area("Notes", value=(initial.notes or "") if initial else "", key=f"{prefix}_notes")
    others = [k for k in st.session_state.get(f"{prefix}__errors") or {} if k not in SHOWN_AT_FIELDS]
    _errors_at(prefix, "notes", *others)
    return {"vomited": vomited, "adverse_events": ";".join(vocab.adverse_event_tag(t) for t in picked),
            "notes": notes}


def dose_form(prefix: str, initial: doses.DoseInput | None, plan: TreatmentPlan | None, now: datetime,
              tz: ZoneInfo) -> FormResult:
    """The dose fields, errors at each field (call inside ``st.form``); returns (input, refusals
    found here, confirmed) when the form was submitted, (None, {}, False) otherwise."""
    _prefill(prefix, initial, plan, now, tz)
    day, clock, dose_mg, pending, confirmed = _when_and_dose(prefix, tz)
    fields = {"dose_mg": dose_mg, **_kind(prefix, initial, plan), **_numbers(prefix),
              **_events_and_notes(prefix, initial)}
    submitted = st.form_submit_button("Save dose" if initial is None else "Save changes", type="primary")
    if not submitted:
        return None, {}, False
    data, here = read_input(day, clock, tz, **fields)
    return data, here, bool(confirmed and pending is not None and dose_mg == pending)


def _field_errors(data: doses.DoseInput, here: dict, confirmed: bool,
                  save: Callable[[doses.DoseInput, bool], None]) -> tuple[dict, float | None]:
    """(refusals by field, the unusual dose awaiting confirmation); other refusals are raised."""
    errors = dict(here)
    try:
        if here:  # the other fields' reasons too, in one go
            errors |= doses.validate_dose(data)
        else:
            save(data, confirmed)
    except doses.UnusualDose as exc:
        return errors | exc.errors, exc.dose_mg
    except ValidationError as exc:
        return errors | exc.errors, None
    return errors, None


def save_dose(prefix: str, form_result: FormResult, save: Callable[[doses.DoseInput, bool], None]) -> None:
    """Run ``save(data, confirmed)``; refusals go to the fields (kept across the rerun), with the
    confirmation control under the dose when the dose is unusual. Then rerun to show them."""
    data, here, confirmed = form_result
    if data is None:
        return
    with attempt() as done:
        errors, unusual = _field_errors(data, here, confirmed, save)
    if not done:
        return
    st.session_state[f"{prefix}__unusual"] = unusual
    if errors:
        if "taken_date" in errors or "taken_time" in errors:
            errors.pop("taken_at", None)  # the reason is already at the date or time
        st.session_state[f"{prefix}__errors"] = errors
    else:
        for key in [k for k in st.session_state if str(k).startswith(f"{prefix}_")]:
            del st.session_state[key]  # the next dose starts from fresh defaults
    st.rerun()
