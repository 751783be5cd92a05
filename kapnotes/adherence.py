"""Adherence: planned doses against doses taken, for the current plan version.

Two ways to one answer: ``adherences`` counts in SQL (the dose log), ``adherence_from``
counts a frame the caller already loaded (the dashboard); the same window rule in both.
``kapnotes.doses`` re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import case, func
from sqlmodel import Session, select

from kapnotes import vocab
from kapnotes.access import require_patient
from kapnotes.actor import Actor
from kapnotes.dosing.plans import current_plan
from kapnotes.models import DoseEntry, PlanStatus, TreatmentPlan
from kapnotes.query import not_voided
from kapnotes.timeutil import utcnow


@dataclass(frozen=True)
class Adherence:
    plan_id: int
    dose_mg: float
    interval_days: int
    window_start: datetime
    window_end: datetime
    planned: int
    taken: int
    window_days: int = field(default=0)

    @property
    def ratio(self) -> float | None:
        return None if self.planned == 0 else self.taken / self.planned

    def describe(self) -> str:
        if self.planned == 0:
            return f"Too early to tell: the plan started {self.window_days} day(s) ago."
        text = (f"{self.taken} of {self.planned} planned doses taken ({self.ratio:.0%}) "
                f"over {self.window_days} days at {self.dose_mg:g} mg "
                + vocab.every(self.interval_days))
        return text + (" — more doses than planned" if self.taken > self.planned else "")


def adherence_from(plan: TreatmentPlan | None, taken_times: pd.Series, as_of: datetime,
                   window_days: int | None = None) -> Adherence | None:
    """Planned vs taken since the current plan version took effect (or the last ``window_days``).

    Planned = whole intervals in the window (days ÷ interval, rounded down). Pure: the
    dashboard reuses it on the frame it already loaded.
    """
    if plan is None or plan.status != PlanStatus.active:
        return None
    start = plan.effective_from
    if window_days is not None:
        start = max(start, as_of - timedelta(days=window_days))
    days = max(0, (as_of - start).days)
    planned = days // plan.interval_days
    times = pd.to_datetime(taken_times, utc=True) if len(taken_times) else taken_times
    taken = int(((times >= start) & (times <= as_of)).sum()) if len(times) else 0
    return Adherence(plan.id, plan.dose_mg, plan.interval_days, start, as_of, planned, taken, days)


def adherence(session: Session, actor: Actor, patient_id: int, as_of: datetime | None = None,
              window_days: int | None = None) -> Adherence | None:
    """Planned-vs-taken for the current plan; None when there is no active plan."""
    return adherences(session, actor, patient_id, (window_days,), as_of)[0]


def adherences(session: Session, actor: Actor, patient_id: int, windows: tuple[int | None, ...] = (None, 28),
               as_of: datetime | None = None) -> list[Adherence | None]:
    """Planned-vs-taken for the current plan over several windows (None: since the plan
    version took effect), counted in SQL in one query; same rules as ``adherence_from``."""
    require_patient(session, actor, patient_id)
    as_of = as_of or utcnow()
    plan = current_plan(session, patient_id)
    if plan is None or plan.status != PlanStatus.active:
        return [None for _ in windows]
    starts = [plan.effective_from if w is None else max(plan.effective_from, as_of - timedelta(days=w))
              for w in windows]
    row = session.exec(
        select(*[func.coalesce(func.sum(case((DoseEntry.taken_at >= start, 1), else_=0)), 0) for start in starts])
        .where(DoseEntry.patient_id == patient_id, not_voided(DoseEntry),
               DoseEntry.taken_at >= min(starts), DoseEntry.taken_at <= as_of)
    ).one()
    counts = tuple(row) if len(starts) > 1 else (row,)  # sqlmodel returns a bare scalar for one column
    out: list[Adherence | None] = []
    for start, taken in zip(starts, counts, strict=True):
        days = max(0, (as_of - start).days)
        out.append(Adherence(plan.id, plan.dose_mg, plan.interval_days, start, as_of, days // plan.interval_days,
                             int(taken), days))
    return out


