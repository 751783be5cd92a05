"""The patient dashboard's data: four queries, aggregated with pandas.

Plan history, the dose log (only the columns the charts need), the GAD-7/PHQ-9 series
and the latest signed integration note. Everything else (adherence, trends, response
status, dose steps) is derived from those frames, so a patient with 3 years of daily
entries costs the same handful of queries as one with a week.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pandas as pd
from sqlmodel import Session, col, select

from kapnotes import scales
from kapnotes.access import require_patient
from kapnotes.actor import Actor
from kapnotes.assessments import assessment_frame
from kapnotes.doses import Adherence, DoseFilter, adherence_from, dose_frame
from kapnotes.models import Instrument, NoteStatus, NoteType, PlanStatus, SessionNote, TreatmentPlan
from kapnotes.timeutil import utcnow

TREND_COLUMNS = (
    "taken_at", "dose_mg", "context", "anxiety_before", "anxiety_after", "dissociation", "nausea", "vomited",
    "bp_systolic_pre", "bp_diastolic_pre", "bp_systolic_post", "bp_diastolic_post", "heart_rate",
    "adverse_events",
)
PER_DOSE_LIMIT = 180  # more doses than this: the trend charts show weekly means


@dataclass
class LastSession:
    session_date: date
    plan: str | None
    homework: str | None


@dataclass
class DashboardData:
    patient_id: int
    plan: TreatmentPlan | None
    history: list[TreatmentPlan]
    doses: pd.DataFrame
    scores: pd.DataFrame
    as_of: datetime
    adherence_plan: Adherence | None = None
    adherence_28: Adherence | None = None
    last_session: LastSession | None = None
    gad7_baseline: int | None = None
    gad7_current: int | None = None
    phq9_current: int | None = None
    extras: dict = field(default_factory=dict)

    @property
    def dose_count(self) -> int:
        return len(self.doses)

    @property
    def last_dose_at(self) -> datetime | None:
        return None if self.doses.empty else self.doses["taken_at"].max().to_pydatetime()

    @property
    def response_status(self) -> str:
        return scales.status(self.gad7_baseline, self.gad7_current)

    def adverse_recent(self, days: int = 30) -> int:
        if self.doses.empty:
            return 0
        recent = self.doses[self.doses["taken_at"] >= pd.Timestamp(self.as_of - timedelta(days=days))]
        return int(((recent["adverse_events"] != "") | recent["vomited"].astype(bool)).sum())

    def steps(self) -> pd.DataFrame:
        """The planned dose over time (a step line): one row per plan version, plus today."""
        return dose_steps(self.history, self.as_of)

    def trends(self) -> pd.DataFrame:
        return trend_frame(self.doses)


def dose_steps(history: list[TreatmentPlan], as_of: datetime) -> pd.DataFrame:
    rows = []
    for p in sorted(history, key=lambda p: p.version_number):
        dose = p.dose_mg if p.status == PlanStatus.active else None
        rows.append({"date": pd.Timestamp(p.effective_from), "planned_dose_mg": dose,
                     "interval_days": p.interval_days, "status": p.status, "version": p.version_number})
    if rows:
        last = dict(rows[-1])
        last["date"] = max(pd.Timestamp(as_of), rows[-1]["date"])
        rows.append(last)
    frame = pd.DataFrame(rows, columns=["date", "planned_dose_mg", "interval_days", "status", "version"])
    if len(frame):
        frame["date"] = pd.to_datetime(frame["date"], utc=True)
    return frame


def trend_frame(doses: pd.DataFrame) -> pd.DataFrame:
    """Per-dose values, or weekly means when there are many doses (oldest first)."""
    numeric = ["anxiety_before", "anxiety_after", "dissociation", "nausea", "bp_systolic_pre",
               "bp_diastolic_pre", "bp_systolic_post", "bp_diastolic_post", "heart_rate"]
    if doses.empty:
        return pd.DataFrame(columns=["taken_at", *numeric])
    frame = doses[["taken_at", *numeric]].copy()
    try:  # integer columns with gaps (None): a plain cast, the common case
        frame[numeric] = frame[numeric].astype("float64")
    except (TypeError, ValueError):
        frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce").astype("float64")
    frame = frame.sort_values("taken_at")
    if len(frame) > PER_DOSE_LIMIT:
        frame = weekly_means(frame, numeric)
    return frame.reset_index(drop=True)


_DAY_NS = 86_400 * 10**9


def weekly_means(frame: pd.DataFrame, numeric: list[str]) -> pd.DataFrame:
    """Means per UTC week ending on Sunday (the whole Sunday included), labelled with that
    Sunday: what ``resample("W").mean()`` gives, computed with integer day numbers and one
    groupby (the resampler's calendar machinery was most of the dashboard's own time).
    Weeks without doses, or without any value, have no row."""
    utc = pd.to_datetime(frame["taken_at"], utc=True)
    day = utc.to_numpy(dtype="datetime64[ns]").astype("int64") // _DAY_NS
    week_end = (day + (3 - day) % 7) * _DAY_NS  # day 3 (1970-01-04) was a Sunday
    means = frame[numeric].groupby(week_end, sort=True).mean().dropna(how="all")
    out = means.reset_index(names="taken_at")
    out["taken_at"] = pd.to_datetime(out["taken_at"], utc=True).dt.as_unit(utc.dt.unit)
    return out


def load(session: Session, actor: Actor, patient_id: int, as_of: datetime | None = None) -> DashboardData:
    """All the dashboard needs for one patient (the page's open is audited by the banner)."""
    require_patient(session, actor, patient_id)
    as_of = as_of or utcnow()
    history = list(session.exec(
        select(TreatmentPlan).where(TreatmentPlan.patient_id == patient_id)
        .order_by(col(TreatmentPlan.version_number).desc())
    ).all())
    plan = history[0] if history else None
    doses = dose_frame(session, patient_id, DoseFilter(), columns=TREND_COLUMNS).sort_values("taken_at")
    scores = assessment_frame(session, patient_id)
    data = DashboardData(patient_id, plan, history, doses.reset_index(drop=True), scores, as_of)
    data.adherence_plan = adherence_from(plan, doses["taken_at"], as_of)
    data.adherence_28 = adherence_from(plan, doses["taken_at"], as_of, window_days=28)
    gad = scores[scores["instrument"] == Instrument.gad7.value]
    if len(gad):
        data.gad7_baseline = int(gad["total"].iloc[0])
        data.gad7_current = int(gad["total"].iloc[-1])
    phq = scores[scores["instrument"] == Instrument.phq9.value]
    if len(phq):
        data.phq9_current = int(phq["total"].iloc[-1])
    note = session.exec(
        select(SessionNote.session_date, SessionNote.fields)
        .where(SessionNote.patient_id == patient_id, SessionNote.note_type == NoteType.integration.value,
               SessionNote.status == NoteStatus.signed.value)
        .order_by(col(SessionNote.session_date).desc(), col(SessionNote.id).desc())
        .limit(1)
    ).first()
    if note is not None:
        session_date, fields = note
        fields = fields or {}
        data.last_session = LastSession(session_date, _text(fields.get("plan")), _text(fields.get("homework")))
    return data


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):  # a structured plan field (e.g. next date + proposal)
        return "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in value.items() if v not in (None, ""))
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value).strip() or None
