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
