"""Rules 1–3 of the protocol: hold, decrease one step, review on a worsening PHQ-9.

Each rule reports one check per code (fired, passed or not evaluable) and returns what it
decides (``Fired``) or None. Pure: no database, no clock.
"""

from __future__ import annotations

from kapnotes.dosing.protocol import normalise_tag
from kapnotes.dosing.rule_facts import (
    DECREASE,
    FIRED,
    HOLD,
    NOT_EVALUABLE,
    PASSED,
    REVIEW,
    Reason,
    mg,
    step_below,
    tag_words,
)
from kapnotes.dosing.rule_window import Evaluation, Fired, doses_text, meeting, reading_text, readings
from kapnotes.vocab import days_text


def _not_fired(ev: Evaluation, code: str, known, passed: str, unknown: str) -> None:
    """A check that did not fire: passed (``passed``) when the facts it reads were ``known``, else
    not evaluable (``unknown``): a missing fact never reads as a pass."""
    if known:
        ev.check(code, PASSED, passed)
    else:
        ev.check(code, NOT_EVALUABLE, unknown)


# --- rule 1: hold ----------------------------------------------------------------------------


def _suicidality(ev: Evaluation, facts) -> str | None:
    """The latest PHQ-9 that answers item 9, however old."""
    as_of = ev.as_of
    answered = [a for a in ev.phq if a.item9 is not None]
    if not ev.phq:
        ev.check("suicidality", NOT_EVALUABLE, f"No PHQ-9 on record up to {as_of.isoformat()}: item 9 "
                                               f"(thoughts of self-harm) is not known.")
        return None
    if not answered:
        ev.check("suicidality", NOT_EVALUABLE, f"No PHQ-9 up to {as_of.isoformat()} has item 9 (thoughts of "
                                               f"self-harm) answered (totals only): it is not known.")
        return None
    latest = answered[-1]
    facts["phq9_item9"] = {"date": latest.date.isoformat(), "value": latest.item9}
    if latest.item9 > 0:
        return (f"PHQ-9 of {latest.date.isoformat()} has item 9 (thoughts of self-harm) = {latest.item9}, "
                f"above 0: hold until a newer PHQ-9 answers 0.")
    ev.check("suicidality", PASSED, f"The latest PHQ-9 answering item 9 ({latest.date.isoformat()}) "
                                    f"has item 9 (thoughts of self-harm) = 0.")
    return None


def _severe_hypertension(ev: Evaluation, facts) -> str | None:
    """Severe hypertension in the safety window (pre- or post-dose)."""
    p = ev.p
    with_bp = [d for d in ev.safety if readings(d)]
    high = [(d, r) for d in ev.safety for r in meeting(d, p.hold_systolic, p.hold_diastolic)]
    facts["safety_window"]["high_bp_readings"] = len(high)
    limit = f"{p.hold_systolic}/{p.hold_diastolic} mmHg"
    if high:
        d, r = high[-1]
        count = f"{len(high)} BP readings" if len(high) > 1 else "1 BP reading"
        return f"{count} at or above {limit} in {ev.sw_text}, the latest {reading_text(d, r)}: hold."
    what = "no dose is logged in" if not ev.safety else f"none of the {doses_text(len(ev.safety))} in"
    _not_fired(ev, "hypertension_severe", with_bp,
               f"{len(with_bp)} of the {doses_text(len(ev.safety))} in {ev.sw_text} carry a BP reading; "
               f"none is at or above {limit}.",
               f"No BP reading: {what} {ev.sw_text} carries one, so a BP at or above {limit} cannot be ruled out.")
    return None


def _serious_adverse_event(ev: Evaluation, facts) -> str | None:
    """A serious adverse event reported in the safety window."""
    p = ev.p
    serious = set(p.serious_adverse_events)
    events = [(d.day, normalise_tag(t)) for d in ev.safety for t in d.adverse_events if normalise_tag(t) in serious]
    facts["safety_window"]["serious_adverse_events"] = len(events)
    if events:
        tags = sorted({t for _, t in events})
        return (f"Serious adverse event{'s' if len(tags) > 1 else ''} "
                f"{', '.join(tag_words(t) for t in tags)} reported in {ev.sw_text}, "
                f"the latest on {events[-1][0].isoformat()}: hold.")
    if not ev.safety:
        ev.check("serious_adverse_event", PASSED, f"No dose is logged in {ev.sw_text}, so no serious adverse "
                                                  f"event is reported in it.")
    else:
        ev.check("serious_adverse_event", PASSED,
                 f"No serious adverse event ({', '.join(tag_words(t) for t in p.serious_adverse_events)}) "
                 f"is reported on the "
                 f"{doses_text(len(ev.safety))} in {ev.sw_text}.")
    return None


def _overuse(ev: Evaluation, facts) -> str | None:
    """More doses taken than planned + margin in the plan window."""
    p = ev.p
    limit_n = ev.planned + p.overuse_margin
    counted = (f"{doses_text(ev.taken)} taken {ev.pw_text}, with {ev.planned} planned at one every "
               f"{days_text(ev.interval)}")
    if ev.taken > limit_n:
        return f"{counted}: more than {ev.planned} + {p.overuse_margin} = {limit_n} (overuse): hold."
    ev.check("overuse", PASSED, f"{counted}: not more than {ev.planned} + {p.overuse_margin} = {limit_n}.")
    return None


def _dose_above_plan(ev: Evaluation, facts) -> str | None:
    """A dose above the plan's dose in the plan window."""
    above = [d for d in ev.in_plan_window if d.dose_mg > ev.plan.dose_mg + 1e-6]
    facts["plan_window"]["above_plan"] = len(above)
    if above:
        top = max(above, key=lambda d: d.dose_mg)
        return (f"{doses_text(len(above))} above the plan's {mg(ev.plan.dose_mg)} logged {ev.pw_text}, the highest "
                f"{mg(top.dose_mg)} on {top.day.isoformat()}: hold.")
    if not ev.in_plan_window:
        ev.check("dose_above_plan", PASSED, f"No dose is logged {ev.pw_text}, so none above the plan's "
                                            f"{mg(ev.plan.dose_mg)}.")
    else:
        ev.check("dose_above_plan", PASSED, f"No dose of the {doses_text(ev.taken)} logged {ev.pw_text} is above "
                                            f"the plan's {mg(ev.plan.dose_mg)}.")
    return None


HOLD_CHECKS = (("suicidality", _suicidality), ("hypertension_severe", _severe_hypertension),
               ("serious_adverse_event", _serious_adverse_event), ("overuse", _overuse),
               ("dose_above_plan", _dose_above_plan))


def hold_rule(ev: Evaluation, facts) -> Fired | None:
    """Rule 1: any hold condition holds the plan; each that fires adds its flag and reason."""
    flags, reasons = [], []
    for code, finding in HOLD_CHECKS:
        text = finding(ev, facts)
        if text is not None:
            flags.append(code)
            reasons.append(Reason(code, text))
            ev.check(code, FIRED, text)
    if not flags:
        return None
    return Fired(HOLD, flags, reasons)


# --- rule 2: decrease ----------------------------------------------------------------------------


def _vomiting(ev: Evaluation, vomited) -> str | None:
    if vomited:
        return f"{len(vomited)} of {ev.recent_text} ended in vomiting (latest {vomited[-1].day.isoformat()})"
    _not_fired(ev, "vomiting", ev.recent, f"None of {ev.recent_text} ended in vomiting.",
               f"No dose logged up to {ev.as_of.isoformat()}: vomiting cannot be judged.")
    return None


def _severe_nausea(ev: Evaluation, nausea) -> str | None:
    p, recent, among = ev.p, ev.recent, ev.recent_text
    if len(nausea) >= p.decrease_min_count:
        return (f"{len(nausea)} of {among} had severe nausea ({p.severe_nausea} of 3), "
                f"at least {p.decrease_min_count} needed")
    nausea_known = [d for d in recent if d.nausea is not None]
    _not_fired(ev, "severe_nausea", nausea_known,
               f"{len(nausea)} of {among} had severe nausea ({p.severe_nausea} of 3), fewer than the "
               f"{p.decrease_min_count} needed (nausea recorded on {len(nausea_known)} of them).",
               f"No dose logged up to {ev.as_of.isoformat()}: nausea cannot be judged." if not recent else
               f"Nausea is not recorded on any of {among}: severe nausea cannot be judged.")
    return None


def _hypertension(ev: Evaluation, high, with_bp) -> str | None:
    p, among = ev.p, ev.recent_text
    limit = f"{p.decrease_systolic}/{p.decrease_diastolic} mmHg"
    if len(high) >= p.decrease_min_count:
        shown = ", ".join(reading_text(d, r[0]) for d, r in high)
        return (f"{len(high)} of {among} had a BP at or above {limit} ({shown}), "
                f"at least {p.decrease_min_count} needed")
    _not_fired(ev, "hypertension", with_bp,
               f"{len(high)} of {among} had a BP at or above {limit}, fewer than the {p.decrease_min_count} "
               f"needed (a BP reading on {len(with_bp)} of them).",
               f"No dose logged up to {ev.as_of.isoformat()}: blood pressure cannot be judged." if not ev.recent
               else f"No BP reading on any of {among}: a BP at or above {limit} cannot be ruled out.")
    return None


def decrease_rule(ev: Evaluation, facts) -> Fired | None:
    """Rule 2: vomiting, severe nausea or high BP among the recent doses: one step down (at the
    lowest step: review)."""
    p, plan, recent = ev.p, ev.plan, ev.recent
    vomited = [d for d in recent if d.vomited]
    nausea = [d for d in recent if d.nausea is not None and d.nausea >= p.severe_nausea]
    with_bp = [d for d in recent if readings(d)]
    high = [(d, meeting(d, p.decrease_systolic, p.decrease_diastolic)) for d in recent]
    high = [(d, r) for d, r in high if r]
    facts["last_doses"] = {"count": len(recent), "vomited": len(vomited), "severe_nausea": len(nausea),
                           "high_bp": len(high), "with_bp": len(with_bp)}
    found = (("vomiting", _vomiting(ev, vomited)), ("severe_nausea", _severe_nausea(ev, nausea)),
             ("hypertension", _hypertension(ev, high, with_bp)))
    findings = [(code, text) for code, text in found if text is not None]
    if not findings:
        return None
    flags = [code for code, _ in findings]
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
        return Fired(REVIEW, flags + ["lowest_step"], reasons)
    for code, text in findings:
        reasons.append(Reason(code, f"{text}: decrease from {mg(plan.dose_mg)} to {mg(target)}."))
        ev.check(code, FIRED, f"{text}.")
    return Fired(DECREASE, flags, reasons, dose_mg=target)


# --- rule 3: review (PHQ-9) ---------------------------------------------------------------------


def review_rule(ev: Evaluation, facts) -> Fired | None:
    """Rule 3: the latest PHQ-9 at or above the review total, or risen enough since the earliest."""
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
        return Fired(REVIEW, ["depression_worsening"], [Reason("depression_worsening", f"{text}: review.")])
    tail = ("it is the only PHQ-9 on record, so no rise can be measured" if only
            else f"{compared}, less than a rise of {p.review_phq9_rise}")
    ev.check("depression_worsening", PASSED, f"{now}, below {p.review_phq9_total}; {tail}.")
    return None
