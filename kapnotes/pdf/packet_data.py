"""The records-request packet as plain data: what the service gathers and the PDF prints.

It lives beside the builder (``packet_pdf``) so the service imports the builder and the
builder never imports the service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from kapnotes.pdf.model import ScoreRow, SummaryData

SECTIONS: tuple[str, ...] = ("summary", "scores", "doses", "plans", "notes")
SECTION_LABELS = {
    "summary": "Treatment summary (diagnosis, care team, response and remission, suggestions and decisions)",
    "scores": "GAD-7 and PHQ-9 scores",
    "doses": "Dose log",
    "plans": "Treatment plan history",
    "notes": "Signed session notes",
}


@dataclass(frozen=True)
class PacketRequest:
    recipient: str  # name and address of the person or organisation receiving the records
    purpose: str  # e.g. "Continuity of care", "At the patient's request"
    date_from: date | None = None
    date_to: date | None = None
    sections: tuple[str, ...] = SECTIONS


@dataclass(frozen=True)
class ClinicInfo:
    name: str
    address: str
    phone: str
    npi: str


@dataclass(frozen=True)
class DoseStep:
    dose_mg: float
    first: str  # clinic dates
    last: str
    count: int


@dataclass(frozen=True)
class Trend:
    instrument: str
    first: ScoreRow | None
    last: ScoreRow | None
    count: int

    @property
    def words(self) -> str:
        if self.first is None or self.last is None:
            return "no scores in the period"
        if self.count == 1:
            return "one score only"
        diff = self.last.total - self.first.total
        if diff == 0:
            return "unchanged"
        pct = f" ({diff / self.first.total:+.0%})" if self.first.total else ""
        return f"{'lower (better)' if diff < 0 else 'higher (worse)'} by {abs(diff)} points{pct}"


@dataclass
class Course:
    """The one-page course of treatment (referrals)."""

    plan_now: str
    steps: list[DoseStep] = field(default_factory=list)
    trends: list[Trend] = field(default_factory=list)
    safety_events: list[str] = field(default_factory=list)
    bp_hold: str = "180/110"  # the protocol's hold threshold, for "none recorded"


@dataclass
class PacketData:
    summary: SummaryData
    request: PacketRequest
    clinic: ClinicInfo
    exporter: str  # the clinician attesting (name, credentials)
    course: Course
