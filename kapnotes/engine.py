"""The dose-adjustment rules engine (DESIGN.md §3): a pure function.

No database, no clock: ``suggest(plan, doses, assessments, protocol, as_of)`` reads
only its arguments, so the same inputs always give the same suggestion, and the
``suggest`` command, the workflow service and the tests all run the same code.

Rules, in order; the first that fires sets the action, every rule that fires adds
its flag and one checkable sentence citing the figures it used:
1. hold — latest PHQ-9 item 9 > 0; or within the hold window a BP reading at or
   above the hold threshold, or a serious adverse event;
2. decrease — among the last doses: any vomited, or enough with severe nausea or a
   high post-dose BP (at the lowest step: review);
3. insufficient data — too few doses of the current dose since the plan took
   effect, or no recent GAD-7;
4. adherence — fewer than the protocol's share of planned doses taken: continue;
5. efficacy on GAD-7 — remission (space out), response, partial response,
   non-response (increase; at the ceiling: review), low baseline (review).

Days are calendar days: a dose's day is ``taken_at.date()`` in the zone it is given
in (the workflow passes clinic-local times). "Within N days up to as_of" means
``as_of − N ≤ day ≤ as_of``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

from kapnotes.protocol import Protocol, normalise_tag

# actions
HOLD = "hold"
DECREASE = "decrease"
REVIEW = "review"
INSUFFICIENT = "insufficient_data"
CONTINUE = "continue"
SPACE_OUT = "space_out"
INCREASE = "increase"
ACTIONS = (HOLD, DECREASE, REVIEW, INSUFFICIENT, CONTINUE, SPACE_OUT, INCREASE)

HOLD_FLAGS = ("suicidality", "hypertension_severe", "serious_adverse_event")
DECREASE_FLAGS = ("vomiting", "severe_nausea", "hypertension")
FLAG_CODES = HOLD_FLAGS + DECREASE_FLAGS + (
    "lowest_step", "above_ceiling", "too_few_doses", "stale_assessment", "adherence",
    "remission", "response", "partial_response", "non_response", "at_ceiling", "low_baseline",
)
RULE_NAMES = ("hold", "decrease", "insufficient-data", "adherence", "efficacy")
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


def span(days: int) -> str:
    if days == 1:
        return "1 day"
    if days >= 14 and days % 7 == 0:
        return f"{days // 7} weeks"
    return f"{days} days"


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


# --- the engine ----------------------------------------------------------------------------


@dataclass
class _Fired:
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


def suggest(plan: PlanFacts, doses, assessments, protocol: Protocol, as_of: date) -> Suggestion:
    """Evaluate the protocol for an active plan at ``as_of`` (a date; nothing after it counts)."""
    if isinstance(as_of, datetime):
        as_of = as_of.date()
    eff = plan.effective_from.date() if isinstance(plan.effective_from, datetime) else plan.effective_from
    p = protocol
    doses = sorted((d for d in doses if d.day <= as_of), key=_sort_key)
    assessments = sorted((a for a in assessments if a.date <= as_of), key=lambda a: a.date)
    gad = [a for a in assessments if a.instrument == "GAD-7"]
    phq = [a for a in assessments if a.instrument == "PHQ-9"]
    facts: dict[str, Any] = {
        "as_of": as_of.isoformat(),
        "plan": {"dose_mg": mg_value(plan.dose_mg), "interval_days": plan.interval_days,
                 "effective_from": eff.isoformat()},
        "doses_considered": len(doses),
    }

    results = [
        _hold(p, doses, phq, as_of, facts),
        _decrease(p, plan, doses, facts),
        _insufficient(p, plan, eff, doses, gad, as_of, facts),
        _adherence(p, plan, eff, doses, as_of, facts),
        _efficacy(p, plan, gad, facts),
    ]
    action, dose, interval = None, float(plan.dose_mg), int(plan.interval_days)
    deciding = None
    flags: list[str] = []
    reasons: list[Reason] = []
    for i, r in enumerate(results):
        if r is None:
            continue
        if action is None:
            action, deciding = r.action, i
            dose = r.dose_mg if r.dose_mg is not None else dose
            interval = r.interval_days if r.interval_days is not None else interval
            reasons.extend(r.reasons)
        else:
            first = RULE_NAMES[deciding]
            reasons.extend(Reason(x.code, f"{x.text.rstrip('.')} (not applied: the earlier {first} rule decides).")
                           for x in r.reasons)
        flags.extend(f for f in r.flags if f not in flags)
    if action is None:  # cannot happen with a valid protocol (efficacy or stale data always fires); stay safe
        action = CONTINUE
        reasons.append(Reason("no_rule", f"No rule of the protocol fired at {as_of.isoformat()}; "
                                         f"continue {mg(plan.dose_mg)} every {plan.interval_days} days."))
    # The ceiling is absolute: a plan above it (e.g. the clinic lowered its ceiling) is never suggested back.
    if dose > p.ceiling_mg + 1e-9:
        capped = max(s for s in p.steps_mg if s <= p.ceiling_mg + 1e-9)
        flags.append("above_ceiling")
        reasons.append(Reason("above_ceiling", f"The plan's {mg(dose)} is above the protocol ceiling of "
                                               f"{mg(p.ceiling_mg)}, so the suggested dose is {mg(capped)}."))
        if action not in (HOLD, DECREASE):
            action = DECREASE
        dose = capped
    facts["deciding_rule"] = RULE_NAMES[deciding] if deciding is not None else None
    return Suggestion(action, dose, interval, tuple(flags), tuple(reasons), facts, p.name, p.sha256)


def _hold(p: Protocol, doses, phq, as_of: date, facts) -> _Fired | None:
    flags, reasons = [], []
    answered = [a for a in phq if a.item9 is not None]
    if answered:
        latest = answered[-1]
        facts["phq9_item9"] = {"date": latest.date.isoformat(), "value": latest.item9}
        if latest.item9 > 0:
            flags.append("suicidality")
            reasons.append(Reason("suicidality", (
                f"PHQ-9 of {latest.date.isoformat()} has item 9 (thoughts of self-harm) = {latest.item9}, "
                f"above 0: hold until a newer PHQ-9 answers 0.")))
    start = as_of - timedelta(days=p.hold_window_days)
    window = [d for d in doses if start <= d.day]
    high = []
    for d in window:
        for where, s, dia in (("pre-dose", d.bp_systolic_pre, d.bp_diastolic_pre),
                              ("post-dose", d.bp_systolic_post, d.bp_diastolic_post)):
            if (s is not None and s >= p.hold_systolic) or (dia is not None and dia >= p.hold_diastolic):
                high.append((d.day, where, s, dia))
    if high:
        day, where, s, dia = high[-1]
        flags.append("hypertension_severe")
        count = f"{len(high)} BP readings" if len(high) > 1 else "1 BP reading"
        reasons.append(Reason("hypertension_severe", (
            f"{count} at or above {p.hold_systolic}/{p.hold_diastolic} mmHg in the {p.hold_window_days} days "
            f"to {as_of.isoformat()}, the latest {bp(s, dia)} {where} on {day.isoformat()}: hold.")))
    serious = set(p.serious_adverse_events)
    events = [(d.day, t) for d in window for t in d.adverse_events if normalise_tag(t) in serious]
    if events:
        tags = sorted({normalise_tag(t) for _, t in events})
        flags.append("serious_adverse_event")
        reasons.append(Reason("serious_adverse_event", (
            f"Serious adverse event{'s' if len(tags) > 1 else ''} {', '.join(tags)} reported in the "
            f"{p.hold_window_days} days to {as_of.isoformat()} (latest on {events[-1][0].isoformat()}): hold.")))
    facts["hold_window"] = {"from": start.isoformat(), "doses": len(window), "high_bp_readings": len(high),
                            "serious_adverse_events": len(events)}
    if not flags:
        return None
    return _Fired(HOLD, flags, reasons)


def _decrease(p: Protocol, plan: PlanFacts, doses, facts) -> _Fired | None:
    last = doses[-p.decrease_last_doses:] if doses else []
    n = len(last)
    vomited = [d for d in last if d.vomited]
    nausea = [d for d in last if d.nausea is not None and d.nausea >= p.severe_nausea]
    high = [d for d in last
            if (d.bp_systolic_post is not None and d.bp_systolic_post >= p.decrease_systolic)
            or (d.bp_diastolic_post is not None and d.bp_diastolic_post >= p.decrease_diastolic)]
    facts["last_doses"] = {"count": n, "vomited": len(vomited), "severe_nausea": len(nausea),
                           "high_post_bp": len(high)}
    of = f"of the last {n} dose{'s' if n != 1 else ''}"
    flags, findings = [], []
    if vomited:
        flags.append("vomiting")
        findings.append(("vomiting", f"{len(vomited)} {of} ended in vomiting (latest {vomited[-1].day.isoformat()})"))
    if len(nausea) >= p.decrease_min_count:
        flags.append("severe_nausea")
        findings.append(("severe_nausea", f"{len(nausea)} {of} had severe nausea ({p.severe_nausea} of 3), "
                                          f"at least {p.decrease_min_count} needed"))
    if len(high) >= p.decrease_min_count:
        readings = ", ".join(bp(d.bp_systolic_post, d.bp_diastolic_post) for d in high)
        flags.append("hypertension")
        findings.append(("hypertension", f"{len(high)} {of} had a post-dose BP at or above "
                                         f"{p.decrease_systolic}/{p.decrease_diastolic} mmHg ({readings}), "
                                         f"at least {p.decrease_min_count} needed"))
    if not flags:
        return None
    target = step_below(p, plan.dose_mg)
    reasons = []
    if target is None:
        consequence = (f"already at or below the lowest step ({mg(p.lowest_step)}) at {mg(plan.dose_mg)}: "
                       f"review instead of a decrease")
        for code, text in findings:
            reasons.append(Reason(code, f"{text}; {consequence}."))
        reasons.append(Reason("lowest_step", f"No step below {mg(plan.dose_mg)} in the protocol "
                                             f"(steps {', '.join(mg(s) for s in p.steps_mg)}): review."))
        return _Fired(REVIEW, flags + ["lowest_step"], reasons)
    for code, text in findings:
        reasons.append(Reason(code, f"{text}: decrease from {mg(plan.dose_mg)} to {mg(target)}."))
    return _Fired(DECREASE, flags, reasons, dose_mg=target)


def _insufficient(p: Protocol, plan: PlanFacts, eff: date, doses, gad, as_of: date, facts) -> _Fired | None:
    at_dose = [d for d in doses if d.day >= eff and same_dose(d.dose_mg, plan.dose_mg)]
    fresh_from = as_of - timedelta(days=p.gad7_max_age_days)
    latest_gad = gad[-1] if gad else None
    facts["doses_at_current_dose"] = len(at_dose)
    facts["latest_gad7"] = ({"date": latest_gad.date.isoformat(), "total": latest_gad.total}
                            if latest_gad else None)
    flags, reasons = [], []
    if len(at_dose) < p.min_doses_at_current_dose:
        flags.append("too_few_doses")
        reasons.append(Reason("too_few_doses", (
            f"Only {len(at_dose)} dose{'s' if len(at_dose) != 1 else ''} of {mg(plan.dose_mg)} taken since the plan "
            f"took effect on {eff.isoformat()}, fewer than the {p.min_doses_at_current_dose} needed to judge it.")))
    if latest_gad is None or latest_gad.date < fresh_from:
        flags.append("stale_assessment")
        if latest_gad is None:
            text = f"No GAD-7 on record up to {as_of.isoformat()}; enter one to judge the effect."
        else:
            age = (as_of - latest_gad.date).days
            text = (f"The latest GAD-7 ({latest_gad.total} on {latest_gad.date.isoformat()}) is {age} days old, "
                    f"older than the {p.gad7_max_age_days} days allowed; enter a new one.")
        reasons.append(Reason("stale_assessment", text))
    if not flags:
        return None
    return _Fired(INSUFFICIENT, flags, reasons)


def _adherence(p: Protocol, plan: PlanFacts, eff: date, doses, as_of: date, facts) -> _Fired | None:
    start = max(eff, as_of - timedelta(days=p.adherence_window_days))
    window_days = max(0, (as_of - start).days)
    planned = window_days // max(1, int(plan.interval_days))
    taken = sum(1 for d in doses if start <= d.day <= as_of)
    facts["adherence"] = {"from": start.isoformat(), "window_days": window_days, "planned": planned, "taken": taken}
    if planned < p.adherence_min_planned:
        return None
    fraction = Fraction(taken, planned)
    facts["adherence"]["fraction"] = float(fraction)
    if fraction >= p.adherence_min_fraction:
        return None
    return _Fired(CONTINUE, ["adherence"], [Reason("adherence", (
        f"{taken} of {planned} planned doses taken ({pct(fraction)}) from {start.isoformat()} to "
        f"{as_of.isoformat()}, below the {pct(p.adherence_min_fraction)} needed: continue "
        f"{mg(plan.dose_mg)} every {plan.interval_days} days without a dose change."))])


def _efficacy(p: Protocol, plan: PlanFacts, gad, facts) -> _Fired | None:
    if not gad:
        return None
    baseline, current = gad[0], gad[-1]
    facts["gad7"] = {"baseline": {"date": baseline.date.isoformat(), "total": baseline.total},
                     "current": {"date": current.date.isoformat(), "total": current.total}}
    over = span((current.date - baseline.date).days)
    at = mg(plan.dose_mg)
    # remission: current below the cut-off, and so was the latest GAD-7 at least N days earlier
    if current.total < p.remission_below:
        confirm_by = current.date - timedelta(days=p.remission_confirm_days)
        earlier = [a for a in gad if a.date <= confirm_by and a is not current]
        prior = earlier[-1] if earlier else None
        if prior is not None and prior.total < p.remission_below:
            facts["gad7"]["remission_confirmed_by"] = {"date": prior.date.isoformat(), "total": prior.total}
            longer = longer_interval(p, plan.interval_days)
            both = (f"GAD-7 {current.total} on {current.date.isoformat()} and {prior.total} on "
                    f"{prior.date.isoformat()}, both below {p.remission_below} at {at}")
            if longer is None:
                return _Fired(CONTINUE, ["remission"], [Reason("remission", (
                    f"Remission: {both}; already at the longest interval ({plan.interval_days} days), continue."))])
            return _Fired(SPACE_OUT, ["remission"], [Reason("remission", (
                f"Remission: {both}; space out from every {plan.interval_days} to every {longer} days."))],
                interval_days=longer)
    if baseline.total < p.low_baseline_below:
        return _Fired(REVIEW, ["low_baseline"], [Reason("low_baseline", (
            f"Baseline GAD-7 is {baseline.total} ({baseline.date.isoformat()}), below {p.low_baseline_below}, "
            f"so improvement cannot be judged: review."))])
    improvement = Fraction(baseline.total - current.total, baseline.total)
    facts["gad7"]["improvement"] = float(improvement)
    change = f"GAD-7 {baseline.total} {ARROW} {current.total} ({signed_pct(-improvement)}) over {over} at {at}"
    if improvement >= p.response_improvement:
        return _Fired(CONTINUE, ["response"], [Reason("response", (
            f"{change}, at or above the {pct(p.response_improvement)} response threshold: continue."))])
    if improvement >= p.partial_improvement:
        return _Fired(CONTINUE, ["partial_response"], [Reason("partial_response", (
            f"{change}, between the {pct(p.partial_improvement)} and {pct(p.response_improvement)} thresholds "
            f"(partial response): continue."))])
    below = f"{change}, below the {pct(p.partial_improvement)} threshold"
    target = step_above(p, plan.dose_mg)
    if target is None or target > p.ceiling_mg + 1e-9:
        return _Fired(REVIEW, ["non_response", "at_ceiling"], [Reason("at_ceiling", (
            f"{below}; {at} is at or above the {mg(p.ceiling_mg)} ceiling, so no increase: review."))])
    return _Fired(INCREASE, ["non_response"], [Reason("non_response", f"{below}: increase to {mg(target)}.")],
                  dose_mg=target)
