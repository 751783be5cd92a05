"""The engine's vocabulary: its inputs (plan, doses, scores), its output (a suggestion with
reasons and checks), the codes of its actions, flags and rules, and how it writes numbers.

Pure data and formatting, shared by every rule module and by the services that store a
suggestion, so a code or a threshold's wording has one home.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from fractions import Fraction
from typing import Any

from kapnotes.dosing.protocol import Protocol

# actions
HOLD = "hold"
DECREASE = "decrease"
REVIEW = "review"
INSUFFICIENT = "insufficient_data"
CONTINUE = "continue"
SPACE_OUT = "space_out"
INCREASE = "increase"
ACTIONS = (HOLD, DECREASE, REVIEW, INSUFFICIENT, CONTINUE, SPACE_OUT, INCREASE)

HOLD_FLAGS = ("suicidality", "hypertension_severe", "serious_adverse_event", "overuse", "dose_above_plan")
DECREASE_FLAGS = ("vomiting", "severe_nausea", "hypertension")
INSUFFICIENT_FLAGS = ("too_soon", "too_few_doses", "stale_assessment", "stale_phq9")
FLAG_CODES = HOLD_FLAGS + DECREASE_FLAGS + ("lowest_step", "depression_worsening") + INSUFFICIENT_FLAGS + (
    "adherence", "remission", "response", "partial_response", "non_response", "at_ceiling", "low_baseline",
    "no_recent_vitals", "tolerability", "above_ceiling",
)
RULE_NAMES = ("hold", "decrease", "review", "insufficient-data", "adherence", "efficacy")
MINUS = "\u2212"
ARROW = "\u2192"


# --- inputs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanFacts:
    dose_mg: float
    interval_days: int
    effective_from: date


@dataclass(frozen=True)
class DoseFacts:
    """The dose-log fields the rules read (DESIGN.md §2)."""

    taken_at: datetime | date
    dose_mg: float
    vomited: bool = False
    nausea: int | None = None
    dissociation: int | None = None
    bp_systolic_pre: int | None = None
    bp_diastolic_pre: int | None = None
    bp_systolic_post: int | None = None
    bp_diastolic_post: int | None = None
    adverse_events: tuple[str, ...] = ()

    @property
    def day(self) -> date:
        return self.taken_at.date() if isinstance(self.taken_at, datetime) else self.taken_at


@dataclass(frozen=True)
class AssessmentFacts:
    instrument: str  # "GAD-7" | "PHQ-9"
    date: date
    total: int
    items: tuple[int, ...] | None = None
    item9: int | None = None  # PHQ-9 item 9; taken from ``items`` when they are given

    def __post_init__(self):
        if self.instrument == "PHQ-9" and self.items is not None and len(self.items) == 9:
            object.__setattr__(self, "item9", self.items[8])
        elif self.instrument != "PHQ-9":
            object.__setattr__(self, "item9", None)


# --- output -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    code: str
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "text": self.text}


@dataclass(frozen=True)
class Check:
    """One rule of rules 1–5 or the increase gate: what the engine found for it."""

    rule: str
    status: str  # FIRED | PASSED | NOT_EVALUABLE
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "status": self.status, "text": self.text}


FIRED, PASSED, NOT_EVALUABLE = "fired", "passed", "not_evaluable"

# The rule codes of rules 1–4 (DESIGN.md §3): while any fires, nothing moves toward more drug
# without a prescriber's explicit override. The gate's codes only stop the engine's own increase.
SAFETY_RULE_CODES = (
    "suicidality", "hypertension_severe", "serious_adverse_event", "overuse", "dose_above_plan",
    "vomiting", "severe_nausea", "hypertension", "depression_worsening",
    "too_soon", "too_few_doses", "stale_assessment", "stale_phq9",
)
GATE_CODES = ("no_recent_vitals", "tolerability")
CHECK_CODES = SAFETY_RULE_CODES[:13] + ("adherence",) + GATE_CODES


@dataclass(frozen=True)
class Suggestion:
    action: str
    dose_mg: float
    interval_days: int
    flags: tuple[str, ...]
    reasons: tuple[Reason, ...]
    facts: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    protocol_name: str = ""
    protocol_hash: str = ""
    checks: tuple[Check, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The ``suggest`` command's output (DESIGN.md §3)."""
        return {
            "action": self.action,
            "dose_mg": mg_value(self.dose_mg),
            "interval_days": self.interval_days,
            "flags": list(self.flags),
            "reasons": [r.as_dict() for r in self.reasons],
            "checks": [c.as_dict() for c in self.checks],
        }

    @property
    def hold(self) -> bool:
        return any(f in HOLD_FLAGS for f in self.flags)

    @property
    def safety_codes(self) -> tuple[str, ...]:
        """The rules of 1–4 that fired: a change toward more drug then needs an override."""
        return tuple(c.rule for c in self.checks if c.status == FIRED and c.rule in SAFETY_RULE_CODES)


# --- formatting ---------------------------------------------------------------------------


def tag_words(tag: str) -> str:
    """An adverse-event tag as a clinician reads it ("chest_pain" -> "chest pain")."""
    return tag.replace("_", " ")


def mg_value(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(float(value), 3)


def mg(value: float) -> str:
    return f"{mg_value(value)} mg"


def pct(fr: Fraction) -> str:
    return f"{round(fr * 100)} %"


def signed_pct(fr: Fraction) -> str:
    v = round(fr * 100)
    if v < 0:
        return f"{MINUS}{-v} %"
    return f"+{v} %" if v > 0 else "0 %"


def bp(s: int | None, d: int | None) -> str:
    return f"{s if s is not None else '?'}/{d if d is not None else '?'}"


# --- steps --------------------------------------------------------------------------------


def step_above(protocol: Protocol, dose: float) -> float | None:
    """The smallest step above ``dose`` (a dose between steps moves to its neighbour)."""
    for s in protocol.steps_mg:
        if s > dose + 1e-9:
            return s
    return None


def step_below(protocol: Protocol, dose: float) -> float | None:
    """The largest step below ``dose``."""
    for s in reversed(protocol.steps_mg):
        if s < dose - 1e-9:
            return s
    return None


def longer_interval(protocol: Protocol, interval: int) -> int | None:
    for i in protocol.intervals_days:
        if i > interval:
            return i
    return None


def same_dose(a: float, b: float) -> bool:
    return abs(float(a) - float(b)) < 1e-6
