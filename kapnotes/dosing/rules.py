"""The dose-adjustment rules engine (DESIGN.md §3, default protocol version 2): a pure function.

No database, no clock: ``suggest(plan, doses, assessments, protocol, as_of)`` reads
only its arguments, so the same inputs always give the same suggestion, and the
``suggest`` command, the workflow service and the tests all run the same code. This module
is the entry point and re-exports the engine's names; the rules themselves are in
``safety_rules`` (1–3), ``data_rules`` (4–5) and ``efficacy_rules`` (the gate and 6), over
``rule_facts`` (inputs, outputs, codes) and ``rule_window`` (one evaluation's windows).

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

from datetime import date, datetime
from typing import Any

from kapnotes.dosing.data_rules import adherence_rule, insufficient_rule
from kapnotes.dosing.efficacy_rules import efficacy_rule, gate
from kapnotes.dosing.protocol import Protocol
from kapnotes.dosing.rule_facts import (
    ACTIONS,
    ARROW,
    CHECK_CODES,
    CONTINUE,
    DECREASE,
    DECREASE_FLAGS,
    FIRED,
    FLAG_CODES,
    GATE_CODES,
    HOLD,
    HOLD_FLAGS,
    INCREASE,
    INSUFFICIENT,
    INSUFFICIENT_FLAGS,
    MINUS,
    NOT_EVALUABLE,
    PASSED,
    REVIEW,
    RULE_NAMES,
    SAFETY_RULE_CODES,
    SPACE_OUT,
    AssessmentFacts,
    Check,
    DoseFacts,
    PlanFacts,
    Reason,
    Suggestion,
    bp,
    longer_interval,
    mg,
    mg_value,
    pct,
    same_dose,
    signed_pct,
    step_above,
    step_below,
    tag_words,
)
from kapnotes.dosing.rule_window import Evaluation
from kapnotes.dosing.safety_rules import decrease_rule, hold_rule, review_rule
from kapnotes.vocab import every

__all__ = [
    "ACTIONS", "ARROW", "CHECK_CODES", "CONTINUE", "DECREASE", "DECREASE_FLAGS", "FIRED", "FLAG_CODES",
    "GATE_CODES", "HOLD", "HOLD_FLAGS", "INCREASE", "INSUFFICIENT", "INSUFFICIENT_FLAGS", "MINUS",
    "NOT_EVALUABLE", "PASSED", "REVIEW", "RULE_NAMES", "SAFETY_RULE_CODES", "SPACE_OUT", "AssessmentFacts",
    "Check", "DoseFacts", "PlanFacts", "Reason", "Suggestion", "bp", "longer_interval", "mg", "mg_value", "pct",
    "same_dose", "signed_pct", "step_above", "step_below", "suggest", "tag_words",
]


def suggest(plan: PlanFacts, doses, assessments, protocol: Protocol, as_of: date) -> Suggestion:
    """Evaluate the protocol for an active plan at ``as_of`` (a date; nothing after it counts)."""
    if isinstance(as_of, datetime):
        as_of = as_of.date()
    p = protocol
    ev = Evaluation(plan, doses, assessments, p, as_of)
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
        hold_rule(ev, facts),
        decrease_rule(ev, facts),
        review_rule(ev, facts),
        insufficient_rule(ev, facts),
        adherence_rule(ev, facts),
        None,  # efficacy: below, once the deciding rule is known (the gate only acts when efficacy decides)
    ]
    gate_fired = gate(ev, facts)
    decided_before = next((i for i, r in enumerate(results) if r is not None), None)
    results[5] = efficacy_rule(ev, facts, gate_fired, decides=decided_before is None)

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
