"""The dose-adjustment protocol: a TOML file a clinic edits (DESIGN.md §3).

``kapnotes/protocols/default.toml`` holds the defaults. A clinic may run its own: an
administrator pastes or uploads the TOML on the Protocol page and it is kept as text in the
database (ClinicSetting ``protocol_path``: ``{"text", "sha256"}``; never a server path), or
the deployment sets ``KAPNOTES_PROTOCOL`` to a file; the clinic's text wins over the
environment, the environment over the default.

Every key is required and unknown keys are refused, so a typo never falls back to a
default silently; each message names the bad key (``windows.safety_min_days: ...``);
cross-checks keep the thresholds in order (gate BP ≤ decrease BP ≤ hold BP, ceiling and
steps at most the hard maximum of ``kapnotes.models.HARD_MAX_DOSE_MG``).
A protocol is identified by its ``name`` and the SHA-256 of the file's bytes, stored
on every suggestion so a later reader knows which rules produced it.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from kapnotes.errors import ValidationError
from kapnotes.models import HARD_MAX_DOSE_MG

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "protocols" / "default.toml"
SETTING_KEY = "protocol_path"  # the ClinicSetting that holds a clinic's own protocol (protocol_settings)
ENV_VAR = "KAPNOTES_PROTOCOL"  # a deployment's protocol file (protocol_settings.configured_path)


class ProtocolError(ValidationError):
    """A protocol file that cannot be read or does not validate. ``errors`` maps key → message."""


@dataclass(frozen=True)
class Protocol:
    name: str
    sha256: str
    source: str  # the file it came from ("default" for the bundled one)
    # [doses]
    steps_mg: tuple[float, ...]
    ceiling_mg: float
    intervals_days: tuple[int, ...]
    # [windows]
    recent_doses: int
    hold_window_days: int  # the minimum safety window (14): see safety_window_days()
    safety_interval_multiple: int
    plan_window_days: int
    # [hold]
    hold_systolic: int
    hold_diastolic: int
    serious_adverse_events: tuple[str, ...]
    overuse_margin: int
    # [decrease]
    decrease_min_count: int
    severe_nausea: int
    decrease_systolic: int
    decrease_diastolic: int
    # [review]
    review_phq9_total: int
    review_phq9_rise: int
    # [data]
    too_soon_days: int
    min_doses_at_current_dose: int
    gad7_max_age_days: int
    phq9_max_age_days: int
    # [adherence]
    adherence_min_planned: int
    adherence_min_fraction: Fraction
    # [efficacy]
    remission_below: int
    remission_confirm_days: int
    response_improvement: Fraction
    partial_improvement: Fraction
    low_baseline_below: int
    # [gate]
    gate_nausea: int
    gate_dissociation: int
    gate_systolic: int
    gate_diastolic: int
    gate_any_adverse_event: bool

    def safety_window_days(self, interval_days: int) -> int:
        """The safety window for a plan: max(minimum days, multiple × interval) (DESIGN.md §3)."""
        return max(self.hold_window_days, self.safety_interval_multiple * int(interval_days))

    @property
    def short_hash(self) -> str:
        return self.sha256[:12]

    @property
    def lowest_step(self) -> float:
        return self.steps_mg[0]

    def label(self) -> str:
        return f"{self.name} (sha256 {self.short_hash})"


# --- validation ----------------------------------------------------------------------


def _int(low: int, high: int):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return None, f"must be a whole number from {low} to {high}, got {value!r}"
        return value, None
    return check


def _fraction(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        return None, f"must be a fraction between 0 and 1 (e.g. 0.25), got {value!r}"
    return Fraction(str(value)), None


def _mg(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= HARD_MAX_DOSE_MG:
        return None, (f"must be a dose in mg above 0 and at most {HARD_MAX_DOSE_MG} (the hard maximum), "
                      f"got {value!r}")
    return float(value), None


def _bool(value):
    if not isinstance(value, bool):
        return None, f"must be true or false, got {value!r}"
    return value, None


def _ascending(item_check, what: str):
    def check(value):
        if not isinstance(value, list) or not value:
            return None, f"must be a non-empty list of {what}, got {value!r}"
        out = []
        for i, v in enumerate(value):
            parsed, err = item_check(v)
            if err:
                return None, f"item {i + 1} {err}"
            out.append(parsed)
        if any(b <= a for a, b in zip(out, out[1:])):
            return None, f"must be strictly ascending, got {value!r}"
        return tuple(out), None
    return check


def _tags(value):
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        return None, f"must be a non-empty list of tag names, got {value!r}"
    return tuple(normalise_tag(v) for v in value), None


def _name(value):
    if not isinstance(value, str) or not value.strip() or len(value) > 120:
        return None, f"must be a text of 1–120 characters, got {value!r}"
    return value.strip(), None


# section → key → (field name on Protocol, checker)
SCHEMA: dict[str, dict[str, tuple[str, object]]] = {
    "doses": {
        "steps_mg": ("steps_mg", _ascending(_mg, "doses in mg")),
        "ceiling_mg": ("ceiling_mg", _mg),
        "intervals_days": ("intervals_days", _ascending(_int(1, 90), "days")),
    },
    "windows": {
        "recent_doses": ("recent_doses", _int(1, 30)),
        "safety_min_days": ("hold_window_days", _int(1, 90)),
        "safety_interval_multiple": ("safety_interval_multiple", _int(1, 10)),
        "plan_window_days": ("plan_window_days", _int(1, 365)),
    },
    "hold": {
        "systolic_at_or_above": ("hold_systolic", _int(60, 260)),
        "diastolic_at_or_above": ("hold_diastolic", _int(30, 160)),
        "serious_adverse_events": ("serious_adverse_events", _tags),
        "overuse_margin": ("overuse_margin", _int(0, 30)),
    },
    "decrease": {
        "min_count": ("decrease_min_count", _int(1, 30)),
        "severe_nausea": ("severe_nausea", _int(1, 3)),
        "systolic_at_or_above": ("decrease_systolic", _int(60, 260)),
        "diastolic_at_or_above": ("decrease_diastolic", _int(30, 160)),
    },
    "review": {
        "phq9_total_at_or_above": ("review_phq9_total", _int(1, 27)),
        "phq9_rise_at_least": ("review_phq9_rise", _int(1, 27)),
    },
    "data": {
        "too_soon_days": ("too_soon_days", _int(0, 365)),
        "min_doses_at_current_dose": ("min_doses_at_current_dose", _int(1, 30)),
        "gad7_max_age_days": ("gad7_max_age_days", _int(1, 365)),
        "phq9_max_age_days": ("phq9_max_age_days", _int(1, 365)),
    },
    "adherence": {
        "min_planned": ("adherence_min_planned", _int(1, 365)),
        "min_taken_fraction": ("adherence_min_fraction", _fraction),
    },
    "efficacy": {
        "remission_below": ("remission_below", _int(1, 21)),
        "remission_confirm_days": ("remission_confirm_days", _int(0, 365)),
        "response_improvement": ("response_improvement", _fraction),
        "partial_improvement": ("partial_improvement", _fraction),
        "low_baseline_below": ("low_baseline_below", _int(0, 21)),
    },
    "gate": {
        "nausea_at_or_above": ("gate_nausea", _int(1, 3)),
        "dissociation_at_or_above": ("gate_dissociation", _int(1, 10)),
        "systolic_at_or_above": ("gate_systolic", _int(60, 260)),
        "diastolic_at_or_above": ("gate_diastolic", _int(30, 160)),
        "any_adverse_event": ("gate_any_adverse_event", _bool),
    },
}
TOP_LEVEL = {"name": _name}
OPTIONAL_TOP_LEVEL = {"description"}


def normalise_tag(tag: str) -> str:
    """Adverse-event tags compare case- and spacing-insensitively: "Chest pain" == "chest_pain"."""
    return "_".join(tag.strip().lower().replace("-", " ").split())


def _cross_check(values: dict, errors: dict[str, str]) -> None:
    """Thresholds in order: ceiling over the lowest step, gate BP ≤ decrease BP ≤ hold BP, and so on."""
    if values["ceiling_mg"] < values["steps_mg"][0]:
        errors["doses.ceiling_mg"] = (f"must be at least the lowest step ({values['steps_mg'][0]:g} mg), "
                                      f"got {values['ceiling_mg']:g}.")
    if values["partial_improvement"] >= values["response_improvement"]:
        errors["efficacy.partial_improvement"] = "must be below efficacy.response_improvement."
    for what in ("systolic", "diastolic"):
        if values[f"decrease_{what}"] > values[f"hold_{what}"]:
            errors[f"decrease.{what}_at_or_above"] = f"must not be above hold.{what}_at_or_above."
        if values[f"gate_{what}"] > values[f"decrease_{what}"]:
            errors[f"gate.{what}_at_or_above"] = f"must not be above decrease.{what}_at_or_above."
    if values["decrease_min_count"] > values["recent_doses"]:
        errors["decrease.min_count"] = "must not be above windows.recent_doses."
    if values["gate_nausea"] > values["severe_nausea"]:
        errors["gate.nausea_at_or_above"] = "must not be above decrease.severe_nausea."


def parse(data: bytes, source: str = "default") -> Protocol:
    """Validate a protocol file's bytes; every problem is reported under its key."""
    sha = hashlib.sha256(data).hexdigest()
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProtocolError({"file": "is not UTF-8 text."}) from None
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolError({"file": f"is not valid TOML ({exc})."}) from None
    errors: dict[str, str] = {}
    values: dict[str, object] = {}
    known = set(TOP_LEVEL) | OPTIONAL_TOP_LEVEL | set(SCHEMA)
    for key in doc:
        if key not in known:
            errors[key] = "is not a protocol key (check the spelling against the default protocol)."
    for key, check in TOP_LEVEL.items():
        if key not in doc:
            errors[key] = "is missing."
        else:
            parsed, err = check(doc[key])
            if err:
                errors[key] = err + "."
            values[key] = parsed
    for section, keys in SCHEMA.items():
        table = doc.get(section)
        if table is None:
            errors[section] = "section is missing."
            continue
        if not isinstance(table, dict):
            errors[section] = "must be a [section] table."
            continue
        for key in table:
            if key not in keys:
                errors[f"{section}.{key}"] = "is not a protocol key (check the spelling against the default protocol)."
        for key, (attr, check) in keys.items():
            if key not in table:
                errors[f"{section}.{key}"] = "is missing."
                continue
            parsed, err = check(table[key])
            if err:
                errors[f"{section}.{key}"] = err + "."
            values[attr] = parsed
    if not errors:
        _cross_check(values, errors)
    if errors:
        raise ProtocolError(errors)
    return Protocol(sha256=sha, source=source, **values)


_CACHE: dict[tuple[str, str], Protocol] = {}


def load(path: str | os.PathLike | None = None) -> Protocol:
    """Load and validate a protocol file (the bundled default when ``path`` is None)."""
    file = Path(path) if path else DEFAULT_PATH
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ProtocolError({"file": f"cannot read protocol file {str(file)!r} ({exc.strerror or exc})."}) from None
    source = "default" if file.resolve() == DEFAULT_PATH else str(file)
    key = (source, hashlib.sha256(data).hexdigest())
    if key not in _CACHE:
        _CACHE[key] = parse(data, source)
    return _CACHE[key]


def load_default() -> Protocol:
    return load(None)


def env_path() -> str | None:
    """The protocol file a deployment names in ``KAPNOTES_PROTOCOL`` (None: the default)."""
    return os.environ.get(ENV_VAR) or None


CLINIC_SOURCE = "clinic"  # Protocol.source of the text an administrator saved on the Protocol page
MAX_TEXT_BYTES = 64_000


def parse_text(text: str | bytes) -> Protocol:
    """Validate protocol text (pasted or uploaded) as the clinic's; cached by content."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    if len(data) > MAX_TEXT_BYTES:
        raise ProtocolError({"file": f"is too large ({len(data)} bytes; a protocol is a few kilobytes)."})
    key = (CLINIC_SOURCE, hashlib.sha256(data).hexdigest())
    if key not in _CACHE:
        _CACHE[key] = parse(data, CLINIC_SOURCE)
    return _CACHE[key]


__all__ = ["Protocol", "ProtocolError", "load", "load_default", "parse", "parse_text", "normalise_tag", "env_path",
           "DEFAULT_PATH", "SETTING_KEY", "ENV_VAR", "CLINIC_SOURCE"]
