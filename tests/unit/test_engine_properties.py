"""Property tests of the rules engine (Hypothesis): the promises of DESIGN.md §3 (version 2) hold for any input.

- never above the ceiling;
- never an increase while any check of rules 1–4 or of the increase gate is fired;
- ``checks`` covers every code of CHECK_CODES exactly once, in order, with a valid status and a sentence;
- an increase goes to the smallest step above the plan's dose, a decrease to the largest step below;
- always at least one reason, each a sentence with a known code;
- deterministic (same inputs, same suggestion), and unaffected by the order inputs arrive in.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kapnotes.dosing import protocol as protocol_mod
from kapnotes.dosing.rules import (
    ACTIONS,
    CHECK_CODES,
    DECREASE_FLAGS,
    FIRED,
    FLAG_CODES,
    GATE_CODES,
    HOLD_FLAGS,
    NOT_EVALUABLE,
    PASSED,
    SAFETY_RULE_CODES,
    AssessmentFacts,
    DoseFacts,
    PlanFacts,
    suggest,
)

DEFAULT = protocol_mod.load_default()
PROTOCOLS = [
    DEFAULT,
    dataclasses.replace(DEFAULT, ceiling_mg=200.0),
    dataclasses.replace(DEFAULT, steps_mg=(25.0, 75.0, 125.0), ceiling_mg=125.0, intervals_days=(7, 21)),
    # a lenient clinic (no gate on tags, 1 recent dose, short windows): still no increase while a check fires
    dataclasses.replace(DEFAULT, gate_any_adverse_event=False, recent_doses=1, decrease_min_count=1,
                        too_soon_days=0, phq9_max_age_days=365, gad7_max_age_days=60),
]
AS_OF = date(2026, 3, 1)

doses_mg = st.one_of(st.sampled_from([25, 50, 75, 100, 150, 200, 250, 300, 350]),
                     st.floats(min_value=1, max_value=1000, allow_nan=False).map(lambda x: round(x, 1)))
bp_pair = st.one_of(st.none(), st.tuples(st.integers(90, 200), st.integers(50, 120)),
                    st.tuples(st.integers(100, 140), st.integers(60, 90)))
tags = st.one_of(st.just([]), st.just([]), st.lists(st.sampled_from(
    ["nausea", "dizziness", "headache", "fainting", "chest_pain", "Seizure", "self harm", "emergency_visit",
     "breathing_difficulty", "Fall"]), max_size=2))


@st.composite
def dose_entries(draw):
    days_before = draw(st.integers(-3, 90))
    minute = draw(st.integers(0, 24 * 60 - 1))
    d = AS_OF - timedelta(days=days_before)
    taken = datetime(d.year, d.month, d.day, minute // 60, minute % 60, tzinfo=timezone.utc)
    pre, post = draw(bp_pair), draw(bp_pair)
    return DoseFacts(
        taken_at=taken, dose_mg=draw(doses_mg), vomited=draw(st.booleans()),
        nausea=draw(st.one_of(st.none(), st.integers(0, 3))),
        dissociation=draw(st.one_of(st.none(), st.integers(0, 10))),
        bp_systolic_pre=pre[0] if pre else None, bp_diastolic_pre=pre[1] if pre else None,
        bp_systolic_post=post[0] if post else None, bp_diastolic_post=post[1] if post else None,
        adverse_events=tuple(draw(tags)),
    )


@st.composite
def assessment_entries(draw):
    instrument = draw(st.sampled_from(["GAD-7", "PHQ-9"]))
    day = AS_OF - timedelta(days=draw(st.integers(-3, 200)))
    if instrument == "GAD-7":
        return AssessmentFacts(instrument, day, draw(st.integers(0, 21)))
    items = tuple(draw(st.lists(st.integers(0, 3), min_size=9, max_size=9)))
    if draw(st.booleans()):
        return AssessmentFacts(instrument, day, sum(items), items)
    return AssessmentFacts(instrument, day, sum(items))


@st.composite
def cases(draw):
    proto = draw(st.sampled_from(PROTOCOLS))
    plan = PlanFacts(draw(doses_mg), draw(st.integers(1, 90)), AS_OF - timedelta(days=draw(st.integers(0, 120))))
    doses = draw(st.lists(dose_entries(), max_size=25))
    assessments = draw(st.lists(assessment_entries(), max_size=12))
    return plan, doses, assessments, proto


pytestmark = pytest.mark.slow  # property tests: hundreds of engine runs each (make test runs them)
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(cases())
def test_never_above_the_ceiling(case):
    plan, doses, assessments, proto = case
    s = suggest(plan, doses, assessments, proto, AS_OF)
    assert s.dose_mg <= proto.ceiling_mg
    if s.action == "increase":
        assert s.dose_mg > plan.dose_mg and s.dose_mg in proto.steps_mg


@SETTINGS
@given(cases())
def test_never_an_increase_while_a_rule_of_1_to_4_or_the_gate_fires(case):
    plan, doses, assessments, proto = case
    s = suggest(plan, doses, assessments, proto, AS_OF)
    fired = {c.rule for c in s.checks if c.status == FIRED}
    if fired & set(SAFETY_RULE_CODES + GATE_CODES):
        assert s.action != "increase" and s.dose_mg <= plan.dose_mg + 1e-9
    assert set(s.safety_codes) == fired & set(SAFETY_RULE_CODES)
    if any(f in HOLD_FLAGS for f in s.flags):
        assert s.action == "hold"
        assert s.dose_mg <= plan.dose_mg and s.interval_days == plan.interval_days
    if any(f in DECREASE_FLAGS for f in s.flags):
        assert s.action in ("hold", "decrease", "review")
        assert s.dose_mg <= plan.dose_mg
    # every fired check of rules 1–4 shows up as a flag, and every such flag as a fired check
    assert fired & set(SAFETY_RULE_CODES) == set(s.flags) & set(SAFETY_RULE_CODES)


@SETTINGS
@given(cases())
def test_checks_cover_every_rule_once_with_a_valid_status(case):
    plan, doses, assessments, proto = case
    s = suggest(plan, doses, assessments, proto, AS_OF)
    assert tuple(c.rule for c in s.checks) == CHECK_CODES
    for c in s.checks:
        assert c.status in (FIRED, PASSED, NOT_EVALUABLE)
        assert c.text.strip().endswith(".") and not re.search(r"\bNone\b(?! of)", c.text)  # no Python None leaks
    assert [c["rule"] for c in s.as_dict()["checks"]] == list(CHECK_CODES)


@SETTINGS
@given(cases())
def test_steps_increase_to_the_smallest_above_and_decrease_to_the_largest_below(case):
    plan, doses, assessments, proto = case
    s = suggest(plan, doses, assessments, proto, AS_OF)
    if s.action == "increase":
        assert s.dose_mg == min(x for x in proto.steps_mg if x > plan.dose_mg)
        assert s.interval_days == plan.interval_days
    if s.action == "decrease" and "above_ceiling" not in s.flags:
        assert s.dose_mg == max(x for x in proto.steps_mg if x < plan.dose_mg)
    if s.action == "decrease" and "above_ceiling" in s.flags:
        assert s.dose_mg == max(x for x in proto.steps_mg if x <= proto.ceiling_mg)


@SETTINGS
@given(cases())
def test_always_at_least_one_reason_with_known_codes(case):
    plan, doses, assessments, proto = case
    s = suggest(plan, doses, assessments, proto, AS_OF)
    assert s.action in ACTIONS
    assert len(s.reasons) >= 1
    assert set(s.flags) <= set(FLAG_CODES)
    for r in s.reasons:
        assert r.code in FLAG_CODES and r.text.strip().endswith(".")
    assert {r.code for r in s.reasons} <= set(s.flags)


@SETTINGS
@given(cases())
def test_deterministic_and_independent_of_input_order(case):
    plan, doses, assessments, proto = case
    a = suggest(plan, doses, assessments, proto, AS_OF)
    b = suggest(plan, list(doses), list(assessments), proto, AS_OF)
    assert a == b and a.facts == b.facts
    if len({d.taken_at for d in doses}) == len(doses) and len({x.date for x in assessments}) == len(assessments):
        c = suggest(plan, list(reversed(doses)), list(reversed(assessments)), proto, AS_OF)
        assert c == a
