"""Session-note templates, defined once as data.

Each note type has a :class:`Template`: an ordered tuple of :class:`FieldSpec`. The form
(``kapnotes/ui/note_form.py``), the validation (a Pydantic model built from the template,
:func:`model_for`), the note viewer, the PDF and the tests all read this one definition.

Stored values are JSON-friendly: times as ``"HH:MM"``, dates as ISO strings, numbers as
numbers, multiselects as lists. Empty values (``None``, ``""``, ``[]``, ``False``) are not
stored: an unticked box and an untouched box look the same on a form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import lru_cache
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic import ValidationError as PydanticValidationError

from kapnotes import vitals, vocab
from kapnotes.errors import ValidationError
from kapnotes.models import Administration, Formulation, NoteType

KINDS = ("text", "textarea", "int", "float", "bool", "time", "date", "select", "multiselect")
TIME_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")

# Adverse-event tags (kapnotes.vocab is their home); the serious ones (DESIGN.md §3 hold rule) first.
ADVERSE_EVENT_TAGS = vocab.NOTE_ADVERSE_EVENT_TAGS
SERIOUS_ADVERSE_EVENTS = tuple(t for t in vocab.SERIOUS_ADVERSE_EVENTS if t in ADVERSE_EVENT_TAGS)

# Keys the service writes into ``fields`` itself (never typed on a form).
SYSTEM_KEYS = ("dose_differs_from_plan", "plan_dose_mg", "plan_formulation")

# What "Load last note" carries into a new note of the same type (when the template has it).
CARRY_OVER_KEYS = ("intention", "homework", "plan")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    kind: str  # "text"|"textarea"|"int"|"float"|"bool"|"time"|"date"|"select"|"multiselect"
    required: bool = False
    help: str = ""
    options: tuple = ()
    unit: str = ""
    min: float | None = None
    max: float | None = None
    section: str = ""


@dataclass(frozen=True)
class Template:
    note_type: str
    title: str
    fields: tuple[FieldSpec, ...]

    def field(self, name: str) -> FieldSpec:
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def sections(self) -> tuple[str, ...]:
        seen: list[str] = []
        for f in self.fields:
            if f.section not in seen:
                seen.append(f.section)
        return tuple(seen)


F = FieldSpec
_SYS, _DIA, _HR = vitals.SYSTOLIC_RANGE, vitals.DIASTOLIC_RANGE, vitals.HEART_RATE_RANGE
_FORMULATIONS = tuple(f.value for f in Formulation)
_ADMIN = tuple(a.value for a in Administration)

DOSING = Template(
    NoteType.dosing.value,
    vocab.NOTE_TYPE_WORDS[NoteType.dosing.value],
    (
        F("session_number", "Session number", "int", True, "Which dosing session of this course.", min=1, max=500,
          section="Session"),
        F("present", "Who was present", "text", True, "Therapist, sitter or monitor, others.", section="Session"),
        F("consent_confirmed", "Consent confirmed for this session", "bool", True, section="Session"),
        F("intention", "Intention", "textarea", True, "The client's intention, in their words.", section="Session"),
        F("fasting_confirmed", "Fasting instructions followed", "bool", section="Pre-checks"),
        F("interacting_medications", "Interacting medications", "text",
          help="Benzodiazepines, stimulants, MAOIs taken today; 'None' if none.", section="Pre-checks"),
        F("consent_to_touch", "Consent to supportive touch", "bool", section="Pre-checks"),
        F("bp_systolic_pre", "Blood pressure before dosing, systolic", "int", True, unit="mmHg",
          min=_SYS[0], max=_SYS[1], section="Pre-checks"),
        F("bp_diastolic_pre", "Blood pressure before dosing, diastolic", "int", True, unit="mmHg",
          min=_DIA[0], max=_DIA[1], section="Pre-checks"),
        F("heart_rate_pre", "Heart rate before dosing", "int", True, unit="bpm", min=_HR[0], max=_HR[1],
          section="Pre-checks"),
        F("mental_status_pre", "Mental status before dosing", "textarea", section="Pre-checks"),
        F("dose_mg", "Dose", "float", True, f"Above 0, at most {vitals.DOSE_MG_MAX} mg. Defaults to the active plan.",
          unit="mg", section="Dose"),
        F("tablets", "Number of tablets", "int", unit="tablets", min=1, max=20, section="Dose"),
        F("formulation", "Formulation", "select", True, options=_FORMULATIONS, section="Dose"),
        F("time_taken", "Time taken", "time", True, "Clinic time, HH:MM.", section="Dose"),
        F("minutes_in_mouth", "Minutes in mouth", "int", unit="min", min=0, max=60, section="Dose"),
        F("administration", "Spat or swallowed", "select", True, options=_ADMIN, section="Dose"),
        F("booster_mg", "Booster dose", "float", help="Leave empty if no booster.", unit="mg", min=0,
          max=vitals.DOSE_MG_MAX, section="Dose"),
        F("booster_time", "Booster time", "time", section="Dose"),
        F("onset_time", "Onset", "time", section="Experience"),
        F("peak_time", "Peak", "time", section="Experience"),
        F("end_time", "Effects ended", "time", section="Experience"),
        F("dissociation", "Dissociation rating", "int", help="0 none – 10 extreme.", unit="0–10",
          min=vitals.RATING_0_10[0], max=vitals.RATING_0_10[1], section="Experience"),
        F("nausea", "Nausea", "int", help="0 none, 1 mild, 2 moderate, 3 severe.", unit="0–3",
          min=vitals.NAUSEA_RANGE[0], max=vitals.NAUSEA_RANGE[1], section="Experience"),
        F("vomited", "Vomited", "bool", section="Experience"),
        F("themes", "Experience themes", "textarea", section="Experience"),
        F("observed_behaviour", "Observed behaviour", "textarea", section="Experience"),
        F("adverse_events", "Adverse events", "multiselect", options=ADVERSE_EVENT_TAGS,
          help="Serious events put dose increases on hold.", section="Experience"),
        F("adverse_events_detail", "Adverse events, details", "textarea", section="Experience"),
        F("bp_systolic_post", "Blood pressure after dosing, systolic", "int", unit="mmHg",
          min=_SYS[0], max=_SYS[1], section="Discharge"),
        F("bp_diastolic_post", "Blood pressure after dosing, diastolic", "int", unit="mmHg",
          min=_DIA[0], max=_DIA[1], section="Discharge"),
        F("heart_rate_post", "Heart rate after dosing", "int", unit="bpm", min=_HR[0], max=_HR[1],
          section="Discharge"),
        F("vitals_ok_at_discharge", "Vital signs acceptable at discharge", "bool", section="Discharge"),
        F("discharge_status", "Discharge and safety status", "textarea", True,
          "Who took the client home; no driving until the next day.", section="Discharge"),
    ),
)

INTEGRATION = Template(
    NoteType.integration.value,
    vocab.NOTE_TYPE_WORDS[NoteType.integration.value],
    (
        F("days_since_dose", "Days since the dose integrated", "int", help="Filled from the linked dose.",
          unit="days", min=0, max=365, section="Context"),
        F("client_account", "Client's account of the experience", "textarea", True, section="Experience"),
        F("emotions_body", "Emotions and body sensations", "textarea", section="Experience"),
        F("themes_insights", "Themes and insights", "textarea", section="Experience"),
        F("challenging_content", "Challenging content", "textarea", section="Experience"),
        F("intention_link", "Link to the intention", "textarea", section="Experience"),
        F("support_system", "Support system", "textarea", section="Support"),
        F("homework", "Homework and practices", "textarea", section="Support"),
        F("risk_check", "Risk check", "textarea", True, "Thoughts of self-harm (PHQ-9 item 9), safety plan.",
          section="Risk"),
        F("scores_since_last", "Scores since last session", "text", help="e.g. GAD-7 8, PHQ-9 6.", section="Risk"),
        F("plan", "Plan", "textarea", True, section="Plan"),
        F("next_dosing_date", "Next dosing session", "date", section="Plan"),
        F("proposal_dose_mg", "Proposed dose", "float", help="Optional: a dose change for the prescriber to review.",
          unit="mg", section="Proposal to the prescriber"),
        F("proposal_interval_days", "Proposed interval", "int", help="Optional: days between doses.", unit="days",
          min=1, max=90, section="Proposal to the prescriber"),
        F("proposal_reason", "Reason for the proposal", "textarea", help="Required with a proposal.",
          section="Proposal to the prescriber"),
    ),
)

PREPARATION = Template(
    NoteType.preparation.value,
    vocab.NOTE_TYPE_WORDS[NoteType.preparation.value],
    (
        F("data", "Data", "textarea", True, "What the client said and what you observed.", section="DAP"),
        F("assessment", "Assessment", "textarea", True, "Your clinical impression; readiness for dosing.",
          section="DAP"),
        F("intention", "Intention", "textarea", help="The intention for the next dosing session.", section="DAP"),
        F("homework", "Homework and practices", "textarea", section="DAP"),
        F("plan", "Plan", "textarea", True, section="DAP"),
    ),
)

CHECK_IN = Template(
    NoteType.check_in.value,
    vocab.NOTE_TYPE_WORDS[NoteType.check_in.value],
    (
        F("data", "Data", "textarea", True, "What the client reported.", section="DAP"),
        F("assessment", "Assessment", "textarea", True, section="DAP"),
        F("risk_check", "Risk check", "textarea", section="DAP"),
        F("homework", "Homework and practices", "textarea", section="DAP"),
        F("plan", "Plan", "textarea", True, section="DAP"),
    ),
)

TEMPLATES: dict[str, Template] = {t.note_type: t for t in (PREPARATION, DOSING, INTEGRATION, CHECK_IN)}


def template(note_type: str) -> Template:
    try:
        return TEMPLATES[str(note_type)]
    except KeyError:
        raise ValidationError({"note_type": f"Unknown note type {note_type!r}."}) from None


# --- validation ---------------------------------------------------------------


def _annotation(spec: FieldSpec) -> Any:
    if spec.kind in ("text", "textarea"):
        return Optional[str]
    if spec.kind == "int":
        return Optional[int]
    if spec.kind == "float":
        return Optional[float]
    if spec.kind == "bool":
        return Optional[bool]
    if spec.kind == "time":
        return Optional[str]
    if spec.kind == "date":
        return Optional[date]
    if spec.kind == "select":
        return Optional[Literal[spec.options]]  # type: ignore[valid-type]
    if spec.kind == "multiselect":
        return Optional[list[Literal[spec.options]]]  # type: ignore[valid-type]
    raise ValueError(f"unknown field kind {spec.kind!r}")


@lru_cache(maxsize=None)
def model_for(note_type: str) -> type[BaseModel]:
    """The Pydantic model of one template: every field optional and typed (drafts may be partial)."""
    tpl = template(note_type)
    definitions: dict[str, Any] = {}
    for spec in tpl.fields:
        constraints: dict[str, Any] = {}
        if spec.kind in ("int", "float"):
            if spec.min is not None:
                constraints["ge"] = spec.min
            if spec.max is not None:
                constraints["le"] = spec.max
        if spec.kind == "time":
            constraints["pattern"] = TIME_RE.pattern
        definitions[spec.name] = (_annotation(spec), Field(default=None, **constraints))
    return create_model(
        f"{tpl.note_type.title().replace('_', '')}Fields",
        __config__=ConfigDict(extra="forbid", strict=False, str_strip_whitespace=False),
        **definitions,
    )


def is_empty(value: Any) -> bool:
    return value is None or value is False or (isinstance(value, (str, list, tuple)) and len(value) == 0)


def is_blank(value: Any) -> bool:
    """Empty, or text made only of whitespace (does not satisfy a required field)."""
    return is_empty(value) or (isinstance(value, str) and not value.strip())


def _pre(spec: FieldSpec, value: Any) -> Any:
    """Turn widget values (time, date, tuples) into what the model expects."""
    if isinstance(value, datetime) and spec.kind == "time":
        return value.strftime("%H:%M")
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, str) and spec.kind in ("int", "float", "date", "time", "select") and not value.strip():
        return None
    return value


def _message(spec: FieldSpec, err: dict) -> str:
    kind = err.get("type", "")
    got = err.get("input")
    unit = f" {spec.unit}" if spec.unit and not spec.unit[0].isdigit() else ""
    in_unit = f" (in {spec.unit})" if unit else ""
    if kind in ("greater_than_equal", "less_than_equal"):
        return f"{spec.label} must be between {spec.min:g} and {spec.max:g}{unit}, got {got!r}." if (
            spec.min is not None and spec.max is not None) else f"{spec.label}: {err.get('msg')}, got {got!r}."
    if kind.startswith("int_"):
        return f"{spec.label} must be a whole number{in_unit}, got {got!r}."
    if kind.startswith("float_"):
        return f"{spec.label} must be a number{in_unit}, got {got!r}."
    if kind.startswith("bool_"):
        return f"{spec.label} must be yes or no."
    if kind == "string_pattern_mismatch":
        return f"{spec.label} must be a time as HH:MM (24-hour), got {got!r}."
    if kind.startswith("date_"):
        return f"{spec.label} must be a date (YYYY-MM-DD), got {got!r}."
    if kind == "literal_error":
        return f"{spec.label} must be one of: {', '.join(map(str, spec.options))}; got {got!r}."
    if kind in ("string_type", "list_type"):
        return f"{spec.label}: unexpected value {got!r}."
    return f"{spec.label}: {err.get('msg', 'invalid value')}."


def validate_fields(note_type: str, raw: dict | None) -> dict:
    """Validate types, options and ranges; return the normalised dict to store.

    Raises ``ValidationError`` mapping each bad field to a plain message. Unknown keys
    are refused. Required fields are not checked here (see :func:`missing_required`):
    a draft may be incomplete.
    """
    tpl = template(note_type)
    raw = dict(raw or {})
    errors: dict[str, str] = {}
    prepared: dict[str, Any] = {}
    for key, value in raw.items():
        if key in SYSTEM_KEYS:
            continue
        if key not in tpl.names:
            errors[key] = f"{key!r} is not a field of the {tpl.title} note."
            continue
        spec = tpl.field(key)
        value = _pre(spec, value)
        if isinstance(value, str) and "\x00" in value:
            errors[key] = f"{spec.label} contains a NUL character, which cannot be stored."
            continue
        prepared[key] = value
    try:
        model = model_for(tpl.note_type).model_validate(prepared)
    except PydanticValidationError as exc:
        for err in exc.errors():
            loc = err.get("loc") or ("_",)
            name = str(loc[0])
            if name in tpl.names and name not in errors:
                errors[name] = _message(tpl.field(name), err)
            elif name not in errors:
                errors[name] = f"{name}: {err.get('msg')}"
        raise ValidationError(errors) from None
    if errors:
        raise ValidationError(errors)
    dumped = model.model_dump(mode="json")
    return {k: v for k, v in dumped.items() if not is_empty(v)}


def missing_required(note_type: str, fields: dict) -> dict[str, str]:
    """Required fields that are empty: ``{name: message}`` (a required box must be ticked)."""
    errors: dict[str, str] = {}
    for spec in template(note_type).fields:
        if spec.required and is_blank(fields.get(spec.name)):
            if spec.kind == "bool":
                errors[spec.name] = f"{spec.label}: tick to confirm before signing."
            else:
                errors[spec.name] = f"{spec.label} is required before signing."
    return errors


def display_value(spec: FieldSpec, value: Any) -> str:
    """A field's value as plain text for the viewer and the PDF (units included)."""
    if spec.kind == "bool":
        return "Yes" if value else "No"
    if is_empty(value):
        return "—"
    if spec.kind == "multiselect":
        return ", ".join(option_word(spec, v) for v in value)
    if spec.kind == "select":
        return option_word(spec, value)
    if spec.kind in ("int", "float"):
        text = f"{value:g}" if isinstance(value, float) else str(value)
        return f"{text} {spec.unit}" if spec.unit and not spec.unit[0].isdigit() else text
    return str(value)


def option_word(spec: FieldSpec, code: Any) -> str:
    """A select or multiselect option in words (``chest_pain`` → "chest pain", ``odt`` → "ODT")."""
    if spec.name in ("adverse_events",):
        return vocab.adverse_event_word(code)
    if spec.name == "formulation":
        return vocab.formulation_word(code)
    if spec.name == "administration":
        return vocab.administration_word(code)
    return str(code).replace("_", " ")
