"""The increase gate and rule 6 (efficacy on GAD-7): remission spaces out, response continues,
non-response increases one step unless the gate (no recent BP, a poorly tolerated recent dose)
or the ceiling stops it. Pure.
"""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction

from kapnotes.dosing.protocol import normalise_tag
from kapnotes.dosing.rule_facts import (
    ARROW,
    CONTINUE,
    FIRED,
    INCREASE,
    NOT_EVALUABLE,
    PASSED,
    REVIEW,
    SPACE_OUT,
    Reason,
    longer_interval,
    mg,
    pct,
    signed_pct,
    step_above,
    tag_words,
)
from kapnotes.dosing.rule_window import Evaluation, Fired, meeting, reading_text, readings
from kapnotes.vocab import every

# --- the increase gate ---------------------------------------------------------------------------


def _vitals_gate(ev: Evaluation, recent, with_bp) -> str | None:
    """No recent dose carries a BP reading: no increase without one."""
    if not recent:
        text = (f"No dose logged up to {ev.as_of.isoformat()}, so no recent BP reading: no increase is suggested "
                f"without one.")
    elif not with_bp:
        text = f"None of {ev.recent_text} carries a BP reading: no increase is suggested without one."
    else:
        last = with_bp[-1]
        ev.check("no_recent_vitals", PASSED, f"{len(with_bp)} of {ev.recent_text} carry a BP reading "
                                             f"(latest {reading_text(last, readings(last)[-1])}).")
        return None
    ev.check("no_recent_vitals", FIRED, text)
    return text


def _poorly_tolerated(ev: Evaluation, recent) -> list[str]:
    """What made a recent dose poorly tolerated, in words."""
    p = ev.p
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
        for r in meeting(d, p.gate_systolic, p.gate_diastolic):
            findings.append(f"BP {reading_text(d, r)}")
    return findings


def _not_recorded(recent, with_bp) -> str:
    """What the recent doses leave unrecorded, for a passed tolerability check."""
    missing = []
    for field_name, label in (("nausea", "nausea"), ("dissociation", "dissociation")):
        k = sum(1 for d in recent if getattr(d, field_name) is None)
        if k:
            missing.append(f"{label} not recorded on {k}")
    if len(with_bp) < len(recent):
        missing.append(f"no BP on {len(recent) - len(with_bp)}")
    return f" ({'; '.join(missing)})" if missing else ""


def _tolerability_gate(ev: Evaluation, recent, with_bp) -> str | None:
    """A recent dose poorly tolerated (nausea, dissociation, an adverse event, a raised BP)."""
    p = ev.p
    if not recent:
        ev.check("tolerability", NOT_EVALUABLE, f"No dose logged up to {ev.as_of.isoformat()}: tolerability "
                                                f"cannot be judged.")
        return None
    limit = f"{p.gate_systolic}/{p.gate_diastolic} mmHg"
    what = (f"nausea at or above {p.gate_nausea}, dissociation at or above {p.gate_dissociation}, "
            + ("any adverse-event tag, " if p.gate_any_adverse_event else "")
            + f"or a BP at or above {limit}")
    findings = _poorly_tolerated(ev, recent)
    if not findings:
        ev.check("tolerability", PASSED, f"None of {ev.recent_text} had {what}{_not_recorded(recent, with_bp)}.")
        return None
    text = (f"Among {ev.recent_text}: {'; '.join(findings)} (limits: {what}): no increase is suggested "
            f"while a recent dose is poorly tolerated.")
    ev.check("tolerability", FIRED, text)
    return text


def gate(ev: Evaluation, facts) -> list[tuple[str, str]]:
    """Check the gate on the recent doses; return the (code, text) of those that fired.

    Always reported in ``checks`` (a fired gate check blocks any increase), but its flag and
    reason are added only when it stopped the efficacy rule's increase.
    """
    recent = ev.recent
    with_bp = [d for d in recent if readings(d)]
    found = (("no_recent_vitals", _vitals_gate(ev, recent, with_bp)),
             ("tolerability", _tolerability_gate(ev, recent, with_bp)))
    fired = [(code, text) for code, text in found if text is not None]
    facts["gate"] = [code for code, _ in fired]
    return fired


# --- rule 6: efficacy --------------------------------------------------------------------------


def efficacy_rule(ev: Evaluation, facts, gate_fired, decides: bool) -> Fired | None:
    """Rule 6: what the GAD-7 series says about the current dose (the gate stops its increase)."""
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
                return Fired(CONTINUE, ["remission"], [Reason("remission", (
                    f"Remission: {both}; already at the longest interval ({plan.interval_days} days), continue."))])
            return Fired(SPACE_OUT, ["remission"], [Reason("remission", (
                f"Remission: {both}; space out from {every(plan.interval_days)} to every {longer} days."))],
                interval_days=longer)
    if baseline.total < p.low_baseline_below:
        return Fired(REVIEW, ["low_baseline"], [Reason("low_baseline", (
            f"Baseline GAD-7 is {baseline.total} ({baseline.date.isoformat()}), below {p.low_baseline_below}, "
            f"so improvement cannot be judged: review."))])
    improvement = Fraction(baseline.total - current.total, baseline.total)
    facts["gad7"]["improvement"] = float(improvement)
    # quote the two scores with their own dates: the span between them is not time at the current dose
    change = (f"GAD-7 {baseline.total} on {baseline.date.isoformat()} {ARROW} {current.total} on "
              f"{current.date.isoformat()} ({signed_pct(-improvement)})")
    if improvement >= p.response_improvement:
        return Fired(CONTINUE, ["response"], [Reason("response", (
            f"{change}, at or above the {pct(p.response_improvement)} response threshold: continue."))])
    if improvement >= p.partial_improvement:
        return Fired(CONTINUE, ["partial_response"], [Reason("partial_response", (
            f"{change}, between the {pct(p.partial_improvement)} and {pct(p.response_improvement)} thresholds "
            f"(partial response): continue."))])
    below = f"{change}, below the {pct(p.partial_improvement)} threshold"
    at = mg(plan.dose_mg)
    target = step_above(p, plan.dose_mg)
    if target is None or target > p.ceiling_mg + 1e-9:
        return Fired(REVIEW, ["non_response", "at_ceiling"], [Reason("at_ceiling", (
            f"{below}; {at} is at or above the {mg(p.ceiling_mg)} ceiling, so no increase: review."))])
    if gate_fired:
        if not decides:
            return Fired(CONTINUE, ["non_response"], [Reason("non_response", (
                f"{below} (non-response); the increase gate would also stop an increase to {mg(target)}."))])
        codes = [c for c, _ in gate_fired]
        return Fired(CONTINUE, ["non_response"] + codes, [Reason("non_response", (
            f"{below} (non-response), but the increase gate stops an increase to {mg(target)}: continue {at} "
            f"{every(plan.interval_days)}."))] + [Reason(c, t) for c, t in gate_fired])
    return Fired(INCREASE, ["non_response"], [Reason("non_response", f"{below}: increase from {at} to {mg(target)}.")],
                  dose_mg=target)
