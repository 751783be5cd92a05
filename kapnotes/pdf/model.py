"""Plain data the PDF builders print: gathered by ``kapnotes.exports``, no database here.

Times are already converted to the clinic's zone and formatted, so the builders only lay
out text. Every string here may hold anything a user typed: the builders escape it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True)
class PatientInfo:
    name: str
    mrn: str
    date_of_birth: date
    diagnosis: str = ""
    status: str = ""


@dataclass(frozen=True)
class DoseRow:
    id: int
    taken_at: str  # clinic time, formatted
    taken_on: date
    dose_mg: float
    formulation: str
    administration: str | None = None
    context: str = ""
    anxiety_before: int | None = None
    anxiety_after: int | None = None
    dissociation: int | None = None
    nausea: int | None = None
    vomited: bool = False
    bp_pre: str = ""
    bp_post: str = ""
    heart_rate: int | None = None
    adverse_events: str = ""
    notes: str = ""


@dataclass(frozen=True)
class ScoreRow:
    id: int
    instrument: str
    administered_on: date
    total: int
    band: str
    item9: int | None = None


@dataclass(frozen=True)
class AddendumRow:
    id: int
    author: str
    signed_at: str
    text: str
    content_hash: str


@dataclass(frozen=True)
class NoteData:
    id: int
    note_type: str
    status: str
    session_date: date
    start_time: str | None
    end_time: str | None
    modality: str
    author: str  # name with credentials
    fields: dict
    free_text: str | None
    signed_by: str | None = None
    signed_at: str | None = None
    content_hash: str | None = None
    hash_verified: bool | None = None  # recomputed hash matches the stored one
    carried_over: bool = False
    doses: tuple[DoseRow, ...] = ()
    scores: tuple[ScoreRow, ...] = ()
    addenda: tuple[AddendumRow, ...] = ()


@dataclass(frozen=True)
class PlanRow:
    version: int
    effective_from: datetime  # aware UTC, for the chart
    effective: str  # clinic date, formatted
    dose_mg: float
    formulation: str
    interval_days: int
    administration: str
    minutes_in_mouth: int
    status: str
    approved_by: str
    approved_at: str
    rationale: str = ""
    superseded: bool = False  # a later version exists
    override: str = ""  # the override its decision carried, in words, with the prescriber's reason


@dataclass(frozen=True)
class AdjustmentRow:
    id: int
    created: str
    kind: str
    action: str
    status: str
    proposed: str  # "200 mg every 7 days" or "—"
    reasons: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    therapist_note: str = ""
    decided_by: str = ""
    decided_at: str = ""
    decision: str = ""  # "200 mg every 7 days"
    rationale: str = ""
    protocol: str = ""


# The safety rules and override conditions in words (never their codes) for the summary.
SAFETY_WORDS = {
    "suicidality": "Suicidality (PHQ-9 item 9 above 0)",
    "hypertension_severe": "Severe hypertension (blood pressure at or above the hold threshold)",
    "serious_adverse_event": "Serious adverse event",
    "overuse": "Overuse (more doses taken than the plan allows)",
    "dose_above_plan": "Dose above the plan's dose",
    "vomiting": "Vomiting after a dose",
    "severe_nausea": "Severe nausea on repeated doses",
    "hypertension": "High blood pressure on repeated doses",
    "depression_worsening": "Worsening depression (PHQ-9)",
    "too_soon": "Too soon after the last plan change",
    "too_few_doses": "Too few doses at the current dose",
    "stale_assessment": "No recent GAD-7",
    "stale_phq9": "No recent PHQ-9",
    "adherence": "Low adherence",
    "no_recent_vitals": "No recent blood pressure reading",
    "tolerability": "Poor tolerability on recent doses",
    "above_ceiling": "Above the protocol's ceiling",
    "off_steps": "A dose off the protocol's steps",
    "off_step": "A dose off the protocol's steps",
    "off_interval": "An interval off the protocol's intervals",
    "off_intervals": "An interval off the protocol's intervals",
    "hard_maximum": "Above the hard maximum",
}
# the flags that stop dosing (DESIGN.md §3 rule 1), shown as "active safety flags"
ACTIVE_SAFETY_CODES = ("suicidality", "hypertension_severe", "serious_adverse_event", "overuse", "dose_above_plan")


def safety_words(code: str) -> str:
    """A rule or condition in words; an unknown code still reads as words, not as a code."""
    code = str(code)
    return SAFETY_WORDS.get(code) or code.replace("_", " ").strip().capitalize()


@dataclass(frozen=True)
class SafetyItem:
    """One line of the safety section: when, what (in words), the detail and who."""

    when: str
    what: str
    detail: str = ""
    who: str = ""


@dataclass
class SafetyData:
    """The opening section: what a reader must see before anything else."""

    as_of: str  # the clinic day the active flags are for
    active: list[str] = field(default_factory=list)  # in words, with the facts when known
    holds: list[SafetyItem] = field(default_factory=list)  # engine holds and held plan versions in the period
    overrides: list[SafetyItem] = field(default_factory=list)  # decisions with a safety override in the period
    waiting: list[SafetyItem] = field(default_factory=list)  # urgent items still waiting (now)


@dataclass(frozen=True)
class WeekRow:
    """One week of doses (Monday to Sunday, clinic days) for the summary's weekly table."""

    start: date  # the Monday
    label: str  # "2026-W14, 30 Mar – 5 Apr"
    taken: int  # doses taken (not voided), home and in session
    planned: int  # doses the active plan called for on the week's days in the period
    doses: str  # "150 mg ×6, 200 mg ×1" or "—"
    anxiety: str  # mean before → mean after, or "—"
    dissociation_max: int | None = None
    nausea_max: int | None = None
    vomited: int = 0  # doses followed by vomiting
    bp_max: str = ""  # the highest reading (by systolic, then diastolic), before or after
    adverse: str = ""  # tags in words with counts
    voided: int = 0  # entries voided (never printed themselves)


@dataclass(frozen=True)
class AttentionRow:
    """A dose printed on its own line: in session, or with a safety-relevant finding."""

    dose: DoseRow
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class DocMeta:
    clinic_name: str
    generated_at: str  # clinic time, formatted
    generated_by: str


@dataclass
class SummaryData:
    meta: DocMeta
    patient: PatientInfo
    date_from: date
    date_to: date
    care_team: list[str] = field(default_factory=list)
    plans: list[PlanRow] = field(default_factory=list)  # every version up to date_to (history)
    scores: list[ScoreRow] = field(default_factory=list)  # in range
    baseline: dict[str, ScoreRow] = field(default_factory=dict)  # earliest on record, per instrument
    doses: list[DoseRow] = field(default_factory=list)  # in range, not voided
    adjustments: list[AdjustmentRow] = field(default_factory=list)
    notes: list[NoteData] = field(default_factory=list)
    include_drafts: bool = False
    safety: SafetyData | None = None
    # doses whose blood pressure meets the protocol's thresholds, tagged or not: {dose id: words}
    bp_alerts: dict[int, str] = field(default_factory=dict)
    bp_thresholds: str = ""  # "160/100 (decrease) and 180/110 (hold)"
    bp_hold: tuple[int, int] = (180, 110)  # the protocol's hold threshold (systolic, diastolic)
    serious_events: tuple[str, ...] = ()  # the protocol's serious adverse events (empty: the defaults)
    # the dose log's form: weekly (default; short) or every dose (``full_dose_log``)
    full_dose_log: bool = False
    weeks: list[WeekRow] = field(default_factory=list)
    attention: list[AttentionRow] = field(default_factory=list)
    voided: int = 0  # voided entries in the period (counted, never printed)
    # the notes' form: one table row per note (default; short) or every note in full (``full_notes``)
    full_notes: bool = False
