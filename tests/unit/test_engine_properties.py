"""Property tests of the rules engine (Hypothesis): the promises of DESIGN.md §3 hold for any input.

- never above the ceiling;
- never an increase while any hold or decrease rule fires;
- always at least one reason, each a sentence with a known code;
- deterministic (same inputs, same suggestion), and unaffected by the order inputs arrive in.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kapnotes import protocol as protocol_mod
from kapnotes.engine import (
    ACTIONS,
    DECREASE_FLAGS,
    FLAG_CODES,
    HOLD_FLAGS,
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
]
AS_OF = date(2026, 3, 1)

doses_mg = st.one_of(st.sampled_from([25, 50, 75, 100, 150, 200, 250, 300, 350]),
                     st.floats(min_value=1, max_value=1000, allow_nan=False).map(lambda x: round(x, 1)))
bp_pair = st.one_of(st.none(), st.tuples(st.integers(90, 260), st.integers(30, 89)))
tags = st.lists(st.sampled_from(["nausea", "dizziness", "headache", "fainting", "chest_pain", "Seizure",
                                 "self harm", "emergency_visit", "breathing_difficulty"]), max_size=2)


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


SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


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
def test_never_an_increase_while_a_hold_or_decrease_rule_fires(case):
    plan, doses, assessments, proto = case
    s = suggest(plan, doses, assessments, proto, AS_OF)
    if any(f in HOLD_FLAGS for f in s.flags):
        assert s.action == "hold"
        assert s.dose_mg <= plan.dose_mg and s.interval_days == plan.interval_days
    if any(f in DECREASE_FLAGS for f in s.flags):
        assert s.action in ("hold", "decrease", "review")
        assert s.dose_mg <= plan.dose_mg
    if s.action == "increase":
        assert not set(s.flags) & set(HOLD_FLAGS + DECREASE_FLAGS)


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
