"""One evaluation's shared view of the record: the windows, the recent doses, the sorted scores,
and the checks the rules report as they go (see ``rules`` for the words' exact meanings).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from kapnotes.dosing.protocol import Protocol
from kapnotes.dosing.rule_facts import Check, DoseFacts, PlanFacts, Reason, bp
from kapnotes.vocab import days_text


@dataclass
class Fired:
    """What a rule decides: its action, the flags and reasons it adds, and any new dose or interval."""

    action: str | None
    flags: list[str]
    reasons: list[Reason]
    dose_mg: float | None = None
    interval_days: int | None = None


def _sort_key(d: DoseFacts) -> datetime:
    """Doses in the order they were taken (a naive time or a bare date counts as UTC)."""
    t = d.taken_at
    if not isinstance(t, datetime):
        t = datetime.combine(t, datetime.min.time())
    return t.astimezone(timezone.utc) if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def doses_text(n: int) -> str:
    return "1 dose" if n == 1 else f"{n} doses"


def readings(d: DoseFacts) -> list[tuple[str, int | None, int | None]]:
    """The dose's BP readings that were taken (either figure recorded): (where, systolic, diastolic)."""
    out = []
    for where, s, dia in (("pre-dose", d.bp_systolic_pre, d.bp_diastolic_pre),
                          ("post-dose", d.bp_systolic_post, d.bp_diastolic_post)):
        if s is not None or dia is not None:
            out.append((where, s, dia))
    return out


def meeting(d: DoseFacts, systolic: int, diastolic: int) -> list[tuple[str, int | None, int | None]]:
    """The dose's readings that *meet* S/D: systolic ≥ S or diastolic ≥ D (pre- or post-dose)."""
    return [(w, s, dia) for w, s, dia in readings(d)
            if (s is not None and s >= systolic) or (dia is not None and dia >= diastolic)]


def reading_text(d: DoseFacts, reading) -> str:
    where, s, dia = reading
    return f"{bp(s, dia)} {where} on {d.day.isoformat()}"


class Evaluation:
    """One evaluation's shared facts: windows, recent doses, sorted assessments; collects checks."""

    def __init__(self, plan: PlanFacts, doses, assessments, p: Protocol, as_of: date):
        self.p, self.plan, self.as_of = p, plan, as_of
        self.eff = plan.effective_from.date() if isinstance(plan.effective_from, datetime) else plan.effective_from
        self.interval = max(1, int(plan.interval_days))
        self.doses = sorted((d for d in doses if d.day <= as_of), key=_sort_key)
        ordered = sorted((a for a in assessments if a.date <= as_of), key=lambda a: a.date)
        self.gad = [a for a in ordered if a.instrument == "GAD-7"]
        self.phq = [a for a in ordered if a.instrument == "PHQ-9"]
        self.recent = self.doses[-p.recent_doses:] if self.doses else []
        # safety window: max(minimum, multiple × interval) days up to as_of
        self.sw_days = p.safety_window_days(self.interval)
        self.sw_start = as_of - timedelta(days=self.sw_days)
        self.safety = [d for d in self.doses if d.day >= self.sw_start]
        # plan window: from the later of effective_from and as_of − plan_window_days, to as_of
        self.pw_start = max(self.eff, as_of - timedelta(days=p.plan_window_days))
        self.pw_days = max(0, (as_of - self.pw_start).days)
        self.planned = self.pw_days // self.interval
        self.in_plan_window = [d for d in self.doses if self.pw_start <= d.day]
        self.taken = len(self.in_plan_window)
        self.checks: dict[str, Check] = {}

    def check(self, rule: str, status: str, text: str) -> None:
        self.checks[rule] = Check(rule, status, text)

    # phrases quoting the windows with their true dates
    @property
    def sw_text(self) -> str:
        why = (f"{self.p.safety_interval_multiple} \u00d7 the {self.interval}-day interval; "
               if self.sw_days > self.p.hold_window_days else "")
        return (f"the {self.sw_days}-day safety window ({why}{self.sw_start.isoformat()} to "
                f"{self.as_of.isoformat()})")

    @property
    def pw_text(self) -> str:
        return f"from {self.pw_start.isoformat()} to {self.as_of.isoformat()} ({days_text(self.pw_days)})"

    @property
    def recent_text(self) -> str:
        n = len(self.recent)
        if n == 0:
            return "no dose logged"
        if n == 1:
            return f"the last dose ({self.recent[0].day.isoformat()})"
        return f"the last {n} doses ({self.recent[0].day.isoformat()} to {self.recent[-1].day.isoformat()})"
