"""The patient handout as plain data: the current plan in a patient's words, and the link.

It lives beside the builder (``handout_pdf``) so the check-in service imports the builder
and the builder never imports the service; the check-in page shows the same ``PlanWords``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlanWords:
    dose_mg: float
    formulation: str
    formulation_words: str
    minutes_in_mouth: int
    administration: str
    interval_days: int
    fasting: str
    instructions: str | None


@dataclass(frozen=True)
class HandoutData:
    clinic_name: str
    first_name: str
    plan: PlanWords | None
    url: str
    expires_on: str  # already formatted in the clinic's zone
    crisis_line: str
    bp_hold: tuple[int, int] = (180, 110)  # the protocol's hold threshold: "call the clinic" at or above it
