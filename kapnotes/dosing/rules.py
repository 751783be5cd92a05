"""The dose-adjustment rules engine (DESIGN.md §3, default protocol version 2): a pure function.

No database, no clock: ``suggest(plan, doses, assessments, protocol, as_of)`` reads
only its arguments, so the same inputs always give the same suggestion, and the
``suggest`` command, the workflow service and the tests all run the same code.

Words. Only doses and assessments at or before ``as_of`` count (the caller leaves out
voided entries). *Recent doses*: the last ``windows.recent_doses`` (3) doses. A BP reading
*meets* S/D when systolic ≥ S or diastolic ≥ D; a dose meets it when its pre-dose or its
post-dose reading does. *Safety window*: ``protocol.safety_window_days(interval)`` =
max(14, 2 × interval) days up to as_of. *Plan window*: from the later of the plan's
``effective_from`` and as_of − 28 days, to as_of; ``planned`` = its whole days ÷ interval
(rounded down), ``taken`` = the doses in it. Days are calendar days: a dose's day is
``taken_at.date()`` in the zone it is given in (the workflow passes clinic-local times);
"N days up to as_of" means ``as_of − N ≤ day ≤ as_of``.

Rules, in order; the first that fires sets the action, every rule that fires adds its
flag and a reason quoting its true values, dates and window (a rule that fires after the
deciding one says "not applied"):
1. hold — ``suicidality`` (latest PHQ-9 answering item 9 has it > 0, however old),
   ``hypertension_severe`` / ``serious_adverse_event`` (in the safety window), ``overuse``
   (taken > planned + 2), ``dose_above_plan`` (in the plan window);
2. decrease one step among the recent doses — ``vomiting``, ``severe_nausea``,
   ``hypertension`` (at the lowest step: review, ``lowest_step``);
3. review — ``depression_worsening`` (latest PHQ-9 ≥ 20, or ≥ 5 above the earliest);
4. insufficient data — ``too_soon``, ``too_few_doses``, ``stale_assessment`` (GAD-7),
   ``stale_phq9``;
5. adherence — taken < 70 % of planned (planned ≥ 2): continue;
6. efficacy on GAD-7 — remission (space out), low baseline (review), response, partial
   response, non-response (at the ceiling: review; else the increase gate, then increase).

``checks`` carries one ``Check`` per code of ``CHECK_CODES``, in that order, whatever the
action, so a prescriber sees what the engine found and what it could not know:
- ``fired``: the rule's condition holds; ``passed``: it was evaluated and does not hold;
  ``not_evaluable``: its data is missing, and the text says which.
- Missing data is ``not_evaluable`` for the rules that need it: ``suicidality`` and
  ``depression_worsening`` with no PHQ-9 ever (``suicidality`` also when no PHQ-9 answers
  item 9); ``hypertension_severe`` when no dose in the safety window carries a BP reading
  (also when none is logged in it); ``hypertension`` with no BP on any recent dose;
  ``severe_nausea`` with no nausea recorded on any recent dose; ``vomiting`` and
  ``tolerability`` with no dose logged at all; ``adherence`` when fewer than 2 doses are
  planned in the plan window (it is not judged).
- Where missing data *is* the finding, the rule fires: ``stale_assessment`` /
  ``stale_phq9`` with no GAD-7 / PHQ-9 in their windows (or ever), ``no_recent_vitals``
  when no recent dose carries a BP reading.
- Absent tags are "none reported": ``serious_adverse_event`` and ``dose_above_plan``
  pass when no dose is in their window, and say so.
- The gate (``no_recent_vitals``, ``tolerability``) is evaluated and reported always, and a
  fired gate check means the engine never increases; its flag and reason are added only
  when it stopped the efficacy rule's increase (efficacy decides, non-response, below the
  ceiling). Gate texts say "no increase is suggested", which is true either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

from kapnotes.dosing.protocol import Protocol, normalise_tag
from kapnotes.vocab import every

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


def days_text(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def doses_text(n: int) -> str:
    return "1 dose" if n == 1 else f"{n} doses"


def _readings(d: DoseFacts) -> list[tuple[str, int | None, int | None]]:
    """The dose's BP readings that were taken (either figure recorded): (where, systolic, diastolic)."""
    out = []
    for where, s, dia in (("pre-dose", d.bp_systolic_pre, d.bp_diastolic_pre),
                          ("post-dose", d.bp_systolic_post, d.bp_diastolic_post)):
        if s is not None or dia is not None:
            out.append((where, s, dia))
    return out


def _meeting(d: DoseFacts, systolic: int, diastolic: int) -> list[tuple[str, int | None, int | None]]:
    """The dose's readings that *meet* S/D: systolic ≥ S or diastolic ≥ D (pre- or post-dose)."""
    return [(w, s, dia) for w, s, dia in _readings(d)
            if (s is not None and s >= systolic) or (dia is not None and dia >= diastolic)]


def _reading_text(d: DoseFacts, reading) -> str:
    where, s, dia = reading
    return f"{bp(s, dia)} {where} on {d.day.isoformat()}"


class _Eval:
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


def suggest(plan: PlanFacts, doses, assessments, protocol: Protocol, as_of: date) -> Suggestion:
    """Evaluate the protocol for an active plan at ``as_of`` (a date; nothing after it counts)."""
    if isinstance(as_of, datetime):
        as_of = as_of.date()
    p = protocol
    ev = _Eval(plan, doses, assessments, p, as_of)
    facts: dict[str, Any] = {
        "as_of": as_of.isoformat(),
        "plan": {"dose_mg": mg_value(plan.dose_mg), "interval_days": plan.interval_days,
                 "effective_from": ev.eff.isoformat()},
        "doses_considered": len(ev.doses),
        "safety_window": {"from": ev.sw_start.isoformat(), "days": ev.sw_days, "doses": len(ev.safety)},
        "plan_window": {"from": ev.pw_start.isoformat(), "window_days": ev.pw_days, "planned": ev.planned,
                        "taken": ev.taken},
        "recent_doses": [d.day.isoformat() for d in ev.recent],
    }

    results = [
        _hold(ev, facts),
        _decrease(ev, facts),
        _review(ev, facts),
        _insufficient(ev, facts),
        _adherence(ev, facts),
        None,  # efficacy: below, once the deciding rule is known (the gate only acts when efficacy decides)
    ]
    gate_fired = _gate(ev, facts)
    decided_before = next((i for i, r in enumerate(results) if r is not None), None)
    results[5] = _efficacy(ev, facts, gate_fired, decides=decided_before is None)

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
    if action is None:  # cannot happen (efficacy or stale data always fires); stay safe
        action = CONTINUE
        reasons.append(Reason("no_rule", f"No rule of the protocol fired at {as_of.isoformat()}; "
                                         f"continue {mg(plan.dose_mg)} {every(plan.interval_days)}."))
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
    checks = tuple(ev.checks[code] for code in CHECK_CODES)
    return Suggestion(action, dose, interval, tuple(flags), tuple(reasons), facts, p.name, p.sha256, checks)


# --- rule 1: hold ----------------------------------------------------------------------------


def _hold(ev: _Eval, facts) -> _Fired | None:
    p, as_of = ev.p, ev.as_of
    flags, reasons = [], []

    # suicidality: the latest PHQ-9 that answers item 9, however old
    answered = [a for a in ev.phq if a.item9 is not None]
    if not ev.phq:
        ev.check("suicidality", NOT_EVALUABLE, f"No PHQ-9 on record up to {as_of.isoformat()}: item 9 "
                                               f"(thoughts of self-harm) is not known.")
    elif not answered:
        ev.check("suicidality", NOT_EVALUABLE, f"No PHQ-9 up to {as_of.isoformat()} has item 9 (thoughts of "
                                               f"self-harm) answered (totals only): it is not known.")
    else:
        latest = answered[-1]
        facts["phq9_item9"] = {"date": latest.date.isoformat(), "value": latest.item9}
        if latest.item9 > 0:
            text = (f"PHQ-9 of {latest.date.isoformat()} has item 9 (thoughts of self-harm) = {latest.item9}, "
                    f"above 0: hold until a newer PHQ-9 answers 0.")
            flags.append("suicidality")
            reasons.append(Reason("suicidality", text))
            ev.check("suicidality", FIRED, text)
        else:
            ev.check("suicidality", PASSED, f"The latest PHQ-9 answering item 9 ({latest.date.isoformat()}) "
                                            f"has item 9 (thoughts of self-harm) = 0.")

    # severe hypertension in the safety window (pre- or post-dose)
    with_bp = [d for d in ev.safety if _readings(d)]
    high = [(d, r) for d in ev.safety for r in _meeting(d, p.hold_systolic, p.hold_diastolic)]
    limit = f"{p.hold_systolic}/{p.hold_diastolic} mmHg"
    if high:
        d, r = high[-1]
        count = f"{len(high)} BP readings" if len(high) > 1 else "1 BP reading"
        text = f"{count} at or above {limit} in {ev.sw_text}, the latest {_reading_text(d, r)}: hold."
        flags.append("hypertension_severe")
        reasons.append(Reason("hypertension_severe", text))
        ev.check("hypertension_severe", FIRED, text)
    elif not with_bp:
        what = "no dose is logged in" if not ev.safety else f"none of the {doses_text(len(ev.safety))} in"
        ev.check("hypertension_severe", NOT_EVALUABLE,
                 f"No BP reading: {what} {ev.sw_text} carries one, so a BP at or above {limit} cannot be ruled out.")
    else:
        ev.check("hypertension_severe", PASSED,
                 f"{len(with_bp)} of the {doses_text(len(ev.safety))} in {ev.sw_text} carry a BP reading; "
                 f"none is at or above {limit}.")

    # serious adverse events in the safety window
    serious = set(p.serious_adverse_events)
    events = [(d.day, normalise_tag(t)) for d in ev.safety for t in d.adverse_events if normalise_tag(t) in serious]
    if events:
        tags = sorted({t for _, t in events})
        text = (f"Serious adverse event{'s' if len(tags) > 1 else ''} "
                f"{', '.join(tag_words(t) for t in tags)} reported in {ev.sw_text}, "
                f"the latest on {events[-1][0].isoformat()}: hold.")
        flags.append("serious_adverse_event")
        reasons.append(Reason("serious_adverse_event", text))
        ev.check("serious_adverse_event", FIRED, text)
    elif not ev.safety:
        ev.check("serious_adverse_event", PASSED, f"No dose is logged in {ev.sw_text}, so no serious adverse "
                                                  f"event is reported in it.")
    else:
        ev.check("serious_adverse_event", PASSED,
                 f"No serious adverse event ({', '.join(tag_words(t) for t in p.serious_adverse_events)}) "
                 f"is reported on the "
                 f"{doses_text(len(ev.safety))} in {ev.sw_text}.")

    # overuse: more doses taken than planned + margin in the plan window
    limit_n = ev.planned + p.overuse_margin
    counted = (f"{doses_text(ev.taken)} taken {ev.pw_text}, with {ev.planned} planned at one every "
               f"{days_text(ev.interval)}")
    if ev.taken > limit_n:
        text = f"{counted}: more than {ev.planned} + {p.overuse_margin} = {limit_n} (overuse): hold."
        flags.append("overuse")
        reasons.append(Reason("overuse", text))
        ev.check("overuse", FIRED, text)
    else:
        ev.check("overuse", PASSED, f"{counted}: not more than {ev.planned} + {p.overuse_margin} = {limit_n}.")

    # a dose above the plan's dose in the plan window
    above = [d for d in ev.in_plan_window if d.dose_mg > ev.plan.dose_mg + 1e-6]
    if above:
        top = max(above, key=lambda d: d.dose_mg)
        text = (f"{doses_text(len(above))} above the plan's {mg(ev.plan.dose_mg)} logged {ev.pw_text}, the highest "
                f"{mg(top.dose_mg)} on {top.day.isoformat()}: hold.")
        flags.append("dose_above_plan")
        reasons.append(Reason("dose_above_plan", text))
        ev.check("dose_above_plan", FIRED, text)
    elif not ev.in_plan_window:
        ev.check("dose_above_plan", PASSED, f"No dose is logged {ev.pw_text}, so none above the plan's "
                                            f"{mg(ev.plan.dose_mg)}.")
    else:
        ev.check("dose_above_plan", PASSED, f"No dose of the {doses_text(ev.taken)} logged {ev.pw_text} is above "
                                            f"the plan's {mg(ev.plan.dose_mg)}.")
    facts["safety_window"].update(high_bp_readings=len(high), serious_adverse_events=len(events))
    facts["plan_window"]["above_plan"] = len(above)
    if not flags:
        return None
    return _Fired(HOLD, flags, reasons)


# --- rule 2: decrease ----------------------------------------------------------------------------


def _decrease(ev: _Eval, facts) -> _Fired | None:
    p, plan, recent = ev.p, ev.plan, ev.recent
    n = len(recent)
    among = ev.recent_text
    no_dose = f"No dose logged up to {ev.as_of.isoformat()}"
    vomited = [d for d in recent if d.vomited]
    nausea_known = [d for d in recent if d.nausea is not None]
    nausea = [d for d in recent if d.nausea is not None and d.nausea >= p.severe_nausea]
    with_bp = [d for d in recent if _readings(d)]
    high = [(d, _meeting(d, p.decrease_systolic, p.decrease_diastolic)) for d in recent]
    high = [(d, r) for d, r in high if r]
    facts["last_doses"] = {"count": n, "vomited": len(vomited), "severe_nausea": len(nausea),
                           "high_bp": len(high), "with_bp": len(with_bp)}
    limit = f"{p.decrease_systolic}/{p.decrease_diastolic} mmHg"
    flags, findings = [], []

    if vomited:
        text = f"{len(vomited)} of {among} ended in vomiting (latest {vomited[-1].day.isoformat()})"
        flags.append("vomiting")
        findings.append(("vomiting", text))
    elif n == 0:
        ev.check("vomiting", NOT_EVALUABLE, f"{no_dose}: vomiting cannot be judged.")
    else:
        ev.check("vomiting", PASSED, f"None of {among} ended in vomiting.")

    if len(nausea) >= p.decrease_min_count:
        text = (f"{len(nausea)} of {among} had severe nausea ({p.severe_nausea} of 3), "
                f"at least {p.decrease_min_count} needed")
        flags.append("severe_nausea")
        findings.append(("severe_nausea", text))
    elif not nausea_known:
        ev.check("severe_nausea", NOT_EVALUABLE, f"{no_dose}: nausea cannot be judged." if n == 0 else
                 f"Nausea is not recorded on any of {among}: severe nausea cannot be judged.")
    else:
        ev.check("severe_nausea", PASSED,
                 f"{len(nausea)} of {among} had severe nausea ({p.severe_nausea} of 3), fewer than the "
                 f"{p.decrease_min_count} needed (nausea recorded on {len(nausea_known)} of them).")

    if len(high) >= p.decrease_min_count:
        readings = ", ".join(_reading_text(d, r[0]) for d, r in high)
        text = (f"{len(high)} of {among} had a BP at or above {limit} ({readings}), "
                f"at least {p.decrease_min_count} needed")
        flags.append("hypertension")
        findings.append(("hypertension", text))
    elif not with_bp:
        ev.check("hypertension", NOT_EVALUABLE, f"{no_dose}: blood pressure cannot be judged." if n == 0 else
                 f"No BP reading on any of {among}: a BP at or above {limit} cannot be ruled out.")
    else:
        ev.check("hypertension", PASSED,
                 f"{len(high)} of {among} had a BP at or above {limit}, fewer than the {p.decrease_min_count} "
                 f"needed (a BP reading on {len(with_bp)} of them).")

    if not flags:
        return None
    target = step_below(p, plan.dose_mg)
    reasons = []
    if target is None:
        consequence = (f"already at or below the lowest step ({mg(p.lowest_step)}) at {mg(plan.dose_mg)}: "
                       f"review instead of a decrease")
        for code, text in findings:
            reasons.append(Reason(code, f"{text}; {consequence}."))
            ev.check(code, FIRED, f"{text}.")
        reasons.append(Reason("lowest_step", f"No step below {mg(plan.dose_mg)} in the protocol "
                                             f"(steps {', '.join(mg(s) for s in p.steps_mg)}): review."))
        return _Fired(REVIEW, flags + ["lowest_step"], reasons)
    for code, text in findings:
        reasons.append(Reason(code, f"{text}: decrease from {mg(plan.dose_mg)} to {mg(target)}."))
        ev.check(code, FIRED, f"{text}.")
    return _Fired(DECREASE, flags, reasons, dose_mg=target)


# --- rule 3: review (PHQ-9) ---------------------------------------------------------------------


def _review(ev: _Eval, facts) -> _Fired | None:
    p, phq = ev.p, ev.phq
    if not phq:
        ev.check("depression_worsening", NOT_EVALUABLE, f"No PHQ-9 on record up to {ev.as_of.isoformat()}: "
                                                        f"a worsening depression cannot be seen.")
        return None
    earliest, latest = phq[0], phq[-1]
    rise = latest.total - earliest.total
    facts["phq9"] = {"earliest": {"date": earliest.date.isoformat(), "total": earliest.total},
                     "latest": {"date": latest.date.isoformat(), "total": latest.total}}
    now = f"The latest PHQ-9 total is {latest.total} ({latest.date.isoformat()})"
    compared = (f"{rise} above the earliest PHQ-9 on record ({earliest.total} on {earliest.date.isoformat()})"
                if rise >= 0 else
                f"{-rise} below the earliest PHQ-9 on record ({earliest.total} on {earliest.date.isoformat()})")
    only = len(phq) == 1
    findings = []
    if latest.total >= p.review_phq9_total:
        findings.append(f"at or above {p.review_phq9_total}")
    if not only and rise >= p.review_phq9_rise:
        findings.append(f"{compared}, a rise of at least {p.review_phq9_rise}")
    if findings:
        text = f"{now}, {' and '.join(findings)}"
        ev.check("depression_worsening", FIRED, f"{text}.")
        return _Fired(REVIEW, ["depression_worsening"], [Reason("depression_worsening", f"{text}: review.")])
    tail = ("it is the only PHQ-9 on record, so no rise can be measured" if only
            else f"{compared}, less than a rise of {p.review_phq9_rise}")
    ev.check("depression_worsening", PASSED, f"{now}, below {p.review_phq9_total}; {tail}.")
    return None


# --- rule 4: insufficient data --------------------------------------------------------------------


def _insufficient(ev: _Eval, facts) -> _Fired | None:
    p, plan, eff, as_of = ev.p, ev.plan, ev.eff, ev.as_of
    flags, reasons = [], []

    def fire(code: str, text: str) -> None:
        flags.append(code)
        reasons.append(Reason(code, text))
        ev.check(code, FIRED, text)

    since = (as_of - eff).days
    facts["days_since_plan_start"] = since
    if since < 0:
        fire("too_soon", f"The plan takes effect on {eff.isoformat()}, after {as_of.isoformat()}: it cannot be "
                         f"judged yet.")
    elif since < p.too_soon_days:
        fire("too_soon", f"The plan took effect on {eff.isoformat()}, {days_text(since)} before "
                         f"{as_of.isoformat()}: fewer than the {p.too_soon_days} days needed to judge it.")
    else:
        ev.check("too_soon", PASSED, f"The plan took effect on {eff.isoformat()}, {days_text(since)} before "
                                     f"{as_of.isoformat()} (at least {p.too_soon_days} needed).")

    at_dose = [d for d in ev.doses if d.day >= eff and same_dose(d.dose_mg, plan.dose_mg)]
    facts["doses_at_current_dose"] = len(at_dose)
    counted = (f"{doses_text(len(at_dose))} of {mg(plan.dose_mg)} taken since the plan took effect on "
               f"{eff.isoformat()}")
    if len(at_dose) < p.min_doses_at_current_dose:
        fire("too_few_doses", f"Only {counted}, fewer than the {p.min_doses_at_current_dose} needed to judge it.")
    else:
        ev.check("too_few_doses", PASSED, f"{counted[0].upper()}{counted[1:]} (at least "
                                          f"{p.min_doses_at_current_dose} needed).")

    for code, name, items, max_age in (("stale_assessment", "GAD-7", ev.gad, p.gad7_max_age_days),
                                       ("stale_phq9", "PHQ-9", ev.phq, p.phq9_max_age_days)):
        latest = items[-1] if items else None
        facts[f"latest_{name.lower().replace('-', '')}"] = (
            {"date": latest.date.isoformat(), "total": latest.total} if latest else None)
        if latest is None:
            fire(code, f"No {name} on record up to {as_of.isoformat()}; enter one (at most {max_age} days old "
                       f"is needed).")
            continue
        age = (as_of - latest.date).days
        if age > max_age:
            fire(code, f"The latest {name} ({latest.total} on {latest.date.isoformat()}) is {days_text(age)} old, "
                       f"older than the {max_age} days allowed; enter a new one.")
        else:
            ev.check(code, PASSED, f"The latest {name} ({latest.total} on {latest.date.isoformat()}) is "
                                   f"{days_text(age)} old, within the {max_age} days allowed.")
    if not flags:
        return None
    return _Fired(INSUFFICIENT, flags, reasons)


# --- rule 5: adherence --------------------------------------------------------------------------


def _adherence(ev: _Eval, facts) -> _Fired | None:
    p, plan = ev.p, ev.plan
    planned, taken = ev.planned, ev.taken
    if planned < p.adherence_min_planned:
        ev.check("adherence", NOT_EVALUABLE,
                 f"Adherence not judged: {ev.pw_text} only {planned} dose{'s' if planned != 1 else ''} "
                 f"{'were' if planned != 1 else 'was'} planned at one every {days_text(ev.interval)}, fewer than "
                 f"the {p.adherence_min_planned} needed ({taken} taken).")
        return None
    fraction = Fraction(taken, planned)
    facts["plan_window"]["fraction"] = float(fraction)
    counted = f"{taken} of {planned} planned doses taken ({pct(fraction)}) {ev.pw_text}"
    if fraction >= p.adherence_min_fraction:
        ev.check("adherence", PASSED, f"{counted}, at least the {pct(p.adherence_min_fraction)} needed.")
        return None
    text = (f"{counted}, below the {pct(p.adherence_min_fraction)} needed: continue {mg(plan.dose_mg)} every "
            f"{plan.interval_days} days without a dose change.")
    ev.check("adherence", FIRED, f"{counted}, below the {pct(p.adherence_min_fraction)} needed.")
    return _Fired(CONTINUE, ["adherence"], [Reason("adherence", text)])


# --- the increase gate ---------------------------------------------------------------------------


def _gate(ev: _Eval, facts) -> list[tuple[str, str]]:
    """Check the gate on the recent doses; return the (code, text) of those that fired.

    Always reported in ``checks`` (a fired gate check blocks any increase), but its flag and
    reason are added only when it stopped the efficacy rule's increase.
    """
    p, recent = ev.p, ev.recent
    fired = []
    with_bp = [d for d in recent if _readings(d)]
    if not recent:
        text = (f"No dose logged up to {ev.as_of.isoformat()}, so no recent BP reading: no increase is suggested "
                f"without one.")
    elif not with_bp:
        text = f"None of {ev.recent_text} carries a BP reading: no increase is suggested without one."
    else:
        text = None
    if text:
        ev.check("no_recent_vitals", FIRED, text)
        fired.append(("no_recent_vitals", text))
    else:
        last = with_bp[-1]
        ev.check("no_recent_vitals", PASSED, f"{len(with_bp)} of {ev.recent_text} carry a BP reading "
                                             f"(latest {_reading_text(last, _readings(last)[-1])}).")

    limit = f"{p.gate_systolic}/{p.gate_diastolic} mmHg"
    if not recent:
        ev.check("tolerability", NOT_EVALUABLE, f"No dose logged up to {ev.as_of.isoformat()}: tolerability "
                                                f"cannot be judged.")
    else:
        findings = []
        for d in recent:
            day = d.day.isoformat()
            if d.nausea is not None and d.nausea >= p.gate_nausea:
                findings.append(f"nausea {d.nausea} of 3 on {day}")
            if d.dissociation is not None and d.dissociation >= p.gate_dissociation:
                findings.append(f"dissociation {d.dissociation} of 10 on {day}")
            if p.gate_any_adverse_event and d.adverse_events:
                tags = ", ".join(tag_words(normalise_tag(t)) for t in d.adverse_events)
                findings.append(f"adverse event{'s' if len(d.adverse_events) > 1 else ''} {tags} on {day}")
            for r in _meeting(d, p.gate_systolic, p.gate_diastolic):
                findings.append(f"BP {_reading_text(d, r)}")
        what = (f"nausea at or above {p.gate_nausea}, dissociation at or above {p.gate_dissociation}, "
                + ("any adverse-event tag, " if p.gate_any_adverse_event else "")
                + f"or a BP at or above {limit}")
        if findings:
            text = (f"Among {ev.recent_text}: {'; '.join(findings)} (limits: {what}): no increase is suggested "
                    f"while a recent dose is poorly tolerated.")
            ev.check("tolerability", FIRED, text)
            fired.append(("tolerability", text))
        else:
            missing = []
            for field_name, label in (("nausea", "nausea"), ("dissociation", "dissociation")):
                k = sum(1 for d in recent if getattr(d, field_name) is None)
                if k:
                    missing.append(f"{label} not recorded on {k}")
            if len(with_bp) < len(recent):
                missing.append(f"no BP on {len(recent) - len(with_bp)}")
            note = f" ({'; '.join(missing)})" if missing else ""
            ev.check("tolerability", PASSED, f"None of {ev.recent_text} had {what}{note}.")
    facts["gate"] = [code for code, _ in fired]
    return fired


# --- rule 6: efficacy --------------------------------------------------------------------------


def _efficacy(ev: _Eval, facts, gate_fired, decides: bool) -> _Fired | None:
    p, plan, gad = ev.p, ev.plan, ev.gad
    if not gad:
        return None
    baseline, current = gad[0], gad[-1]
    facts["gad7"] = {"baseline": {"date": baseline.date.isoformat(), "total": baseline.total},
                     "current": {"date": current.date.isoformat(), "total": current.total}}
    # remission: current below the cut-off, and so was the latest GAD-7 at least N days earlier
    if current.total < p.remission_below:
        confirm_by = current.date - timedelta(days=p.remission_confirm_days)
        earlier = [a for a in gad if a.date <= confirm_by and a is not current]
        prior = earlier[-1] if earlier else None
        if prior is not None and prior.total < p.remission_below:
            facts["gad7"]["remission_confirmed_by"] = {"date": prior.date.isoformat(), "total": prior.total}
            longer = longer_interval(p, plan.interval_days)
            both = (f"GAD-7 {current.total} on {current.date.isoformat()} and {prior.total} on "
                    f"{prior.date.isoformat()}, both below {p.remission_below}")
            if longer is None:
                return _Fired(CONTINUE, ["remission"], [Reason("remission", (
                    f"Remission: {both}; already at the longest interval ({plan.interval_days} days), continue."))])
            return _Fired(SPACE_OUT, ["remission"], [Reason("remission", (
                f"Remission: {both}; space out from {every(plan.interval_days)} to every {longer} days."))],
                interval_days=longer)
    if baseline.total < p.low_baseline_below:
        return _Fired(REVIEW, ["low_baseline"], [Reason("low_baseline", (
            f"Baseline GAD-7 is {baseline.total} ({baseline.date.isoformat()}), below {p.low_baseline_below}, "
            f"so improvement cannot be judged: review."))])
    improvement = Fraction(baseline.total - current.total, baseline.total)
    facts["gad7"]["improvement"] = float(improvement)
    # quote the two scores with their own dates: the span between them is not time at the current dose
    change = (f"GAD-7 {baseline.total} on {baseline.date.isoformat()} {ARROW} {current.total} on "
              f"{current.date.isoformat()} ({signed_pct(-improvement)})")
    if improvement >= p.response_improvement:
        return _Fired(CONTINUE, ["response"], [Reason("response", (
            f"{change}, at or above the {pct(p.response_improvement)} response threshold: continue."))])
    if improvement >= p.partial_improvement:
        return _Fired(CONTINUE, ["partial_response"], [Reason("partial_response", (
            f"{change}, between the {pct(p.partial_improvement)} and {pct(p.response_improvement)} thresholds "
            f"(partial response): continue."))])
    below = f"{change}, below the {pct(p.partial_improvement)} threshold"
    at = mg(plan.dose_mg)
    target = step_above(p, plan.dose_mg)
    if target is None or target > p.ceiling_mg + 1e-9:
        return _Fired(REVIEW, ["non_response", "at_ceiling"], [Reason("at_ceiling", (
            f"{below}; {at} is at or above the {mg(p.ceiling_mg)} ceiling, so no increase: review."))])
    if gate_fired:
        if not decides:
            return _Fired(CONTINUE, ["non_response"], [Reason("non_response", (
                f"{below} (non-response); the increase gate would also stop an increase to {mg(target)}."))])
        codes = [c for c, _ in gate_fired]
        return _Fired(CONTINUE, ["non_response"] + codes, [Reason("non_response", (
            f"{below} (non-response), but the increase gate stops an increase to {mg(target)}: continue {at} "
            f"{every(plan.interval_days)}."))] + [Reason(c, t) for c, t in gate_fired])
    return _Fired(INCREASE, ["non_response"], [Reason("non_response", f"{below}: increase from {at} to {mg(target)}.")],
                  dose_mg=target)
