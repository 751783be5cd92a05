"""The rules engine (DESIGN.md §3): every rule, its boundary, and the wording of its reason."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta, timezone

import pytest

from kapnotes.dosing import protocol as protocol_mod
from kapnotes.dosing.rules import AssessmentFacts, DoseFacts, PlanFacts, step_above, step_below, suggest

P = protocol_mod.load_default()
AS_OF = date(2026, 3, 1)
START = date(2026, 1, 1)


def at(days_before: int, hour: int = 20) -> datetime:
    d = AS_OF - timedelta(days=days_before)
    return datetime(d.year, d.month, d.day, hour, tzinfo=timezone.utc)


NORMAL_BP = {"bp_systolic_pre": 122, "bp_diastolic_pre": 78}


def dose(days_before: int, mg: float = 150, **kw) -> DoseFacts:
    """A dose with a normal pre-dose BP unless told otherwise (the increase gate wants vitals)."""
    return DoseFacts(taken_at=at(days_before), dose_mg=mg, **{**NORMAL_BP, **kw})


def gad(days_before: int, total: int) -> AssessmentFacts:
    return AssessmentFacts("GAD-7", AS_OF - timedelta(days=days_before), total)


def phq(days_before: int, item9: int, total: int = 10) -> AssessmentFacts:
    items = (1,) * 8 + (item9,)
    return AssessmentFacts("PHQ-9", AS_OF - timedelta(days=days_before), sum(items), items)


PHQ_OK = phq(7, 0)  # total 8, item 9 = 0


def weekly_doses(mg: float = 150, n: int = 8, **kw) -> list[DoseFacts]:
    """A dose every 7 days back from as_of: adherence 100 %."""
    return [dose(7 * i, mg, **kw) for i in range(n)]


def plan(mg: float = 150, interval: int = 7, start: date = START) -> PlanFacts:
    return PlanFacts(mg, interval, start)


def run(doses=None, assessments=None, pl=None, proto=P, as_of=AS_OF):
    """A weekly 150 mg plan since 2026-01-01; a fresh PHQ-9 (item 9 = 0) is added unless the test gives PHQ-9s."""
    assessments = [gad(56, 15), gad(1, 14)] if assessments is None else list(assessments)
    if not any(a.instrument == "PHQ-9" for a in assessments):
        assessments.append(PHQ_OK)
    return suggest(pl or plan(), weekly_doses() if doses is None else doses, assessments, proto, as_of)


def proto_with(**changes):
    return dataclasses.replace(P, **changes)


# --- efficacy -----------------------------------------------------------------------------


def test_non_response_increases_one_step_with_a_checkable_reason():
    s = run(assessments=[gad(28, 15), gad(0, 13)])
    assert (s.action, s.dose_mg, s.interval_days) == ("increase", 200, 7)
    assert s.flags == ("non_response",)
    assert s.reasons[0].code == "non_response"
    # the two scores with their own dates, never a period "at 150 mg" the plan may not have lasted
    assert s.reasons[0].text == ("GAD-7 15 on 2026-02-01 \u2192 13 on 2026-03-01 (\u221213 %), "
                                 "below the 25 % threshold: "
                                 "increase from 150 mg to 200 mg.")


def test_exactly_25_percent_is_partial_response_not_increase():
    s = run(assessments=[gad(28, 20), gad(0, 15)])
    assert (s.action, s.dose_mg, s.flags) == ("continue", 150, ("partial_response",))
    assert "\u221225 %" in s.reasons[0].text and "between the 25 % and 50 % thresholds" in s.reasons[0].text


def test_just_below_25_percent_increases():
    s = run(assessments=[gad(28, 21), gad(0, 16)])  # 23.8 %
    assert s.action == "increase" and s.flags == ("non_response",)


def test_exactly_50_percent_is_response():
    s = run(assessments=[gad(28, 16), gad(0, 8)])
    assert (s.action, s.flags) == ("continue", ("response",))
    assert "at or above the 50 % response threshold" in s.reasons[0].text


def test_just_below_50_percent_is_partial():
    s = run(assessments=[gad(28, 17), gad(0, 9)])  # 47 %
    assert s.flags == ("partial_response",)


def test_at_ceiling_review_instead_of_increase():
    s = run(doses=weekly_doses(300), pl=plan(300), assessments=[gad(28, 15), gad(0, 15)])
    assert (s.action, s.dose_mg) == ("review", 300)
    assert s.flags == ("non_response", "at_ceiling")
    assert "300 mg is at or above the 300 mg ceiling" in s.reasons[0].text


def test_increase_stops_at_a_lower_clinic_ceiling():
    proto = proto_with(ceiling_mg=200.0)
    assert run(doses=weekly_doses(150), assessments=[gad(28, 15), gad(0, 15)], proto=proto).dose_mg == 200
    s = run(doses=weekly_doses(200), pl=plan(200), assessments=[gad(28, 15), gad(0, 15)], proto=proto)
    assert s.action == "review" and "at_ceiling" in s.flags


def test_dose_between_steps_increases_to_next_step():
    s = run(doses=weekly_doses(120), pl=plan(120), assessments=[gad(28, 15), gad(0, 15)])
    assert (s.action, s.dose_mg) == ("increase", 150)
    assert step_above(P, 120) == 150 and step_below(P, 120) == 100
    assert step_above(P, 150) == 200 and step_below(P, 150) == 100


def test_low_baseline_review():
    # remission is judged first: a low baseline that stays low is remission
    assert run(assessments=[gad(28, 4), gad(0, 4)]).flags == ("remission",)
    s = run(assessments=[gad(28, 4), gad(0, 6)])
    assert (s.action, s.flags) == ("review", ("low_baseline",))
    assert "Baseline GAD-7 is 4" in s.reasons[0].text


def test_remission_spaces_out_when_the_gad7_14_days_earlier_was_also_below_5():
    s = run(assessments=[gad(60, 15), gad(14, 4), gad(0, 3)])
    assert (s.action, s.dose_mg, s.interval_days, s.flags) == ("space_out", 150, 14, ("remission",))
    assert "GAD-7 3 on 2026-03-01 and 4 on 2026-02-15, both below 5" in s.reasons[0].text


def test_remission_needs_the_earlier_gad7_at_least_14_days_before():
    # the only other low score is 13 days earlier: not confirmed, so it is judged as a response
    s = run(assessments=[gad(60, 15), gad(20, 9), gad(13, 4), gad(0, 3)])
    assert s.action == "continue" and s.flags == ("response",)
    # the latest GAD-7 at least 14 days earlier is 9 (not < 5), even though an older one was 4
    s = run(assessments=[gad(60, 15), gad(30, 4), gad(14, 9), gad(0, 3)])
    assert s.flags == ("response",)


def test_remission_at_the_longest_interval_continues():
    s = run(doses=[dose(28 * i) for i in range(3)], pl=plan(150, 28), assessments=[gad(60, 15), gad(14, 4), gad(0, 2)])
    assert (s.action, s.interval_days, s.flags) == ("continue", 28, ("remission",))
    assert "longest interval" in s.reasons[0].text


def test_interval_between_listed_ones_spaces_to_the_next_longer():
    s = run(doses=[dose(10 * i) for i in range(4)], pl=plan(150, 10), assessments=[gad(60, 15), gad(14, 4), gad(0, 2)])
    assert (s.action, s.interval_days) == ("space_out", 14)


# --- insufficient data -----------------------------------------------------------------------------


def test_too_few_doses_of_the_current_dose():
    pl = plan(150, 7, AS_OF - timedelta(days=16))
    doses = [dose(20, 100), dose(13, 100), dose(3, 150)]  # one dose of 150 since the plan took effect
    s = run(doses=doses, pl=pl)
    assert s.action == "insufficient_data" and s.flags[0] == "too_few_doses"
    assert s.reasons[0].text.startswith("Only 1 dose of 150 mg taken since the plan took effect on 2026-02-13")
    s2 = run(doses=doses + [dose(1, 150)], pl=pl)
    assert "too_few_doses" not in s2.flags


def test_stale_gad7_boundary_14_days_is_fresh_15_is_stale():
    fresh = run(assessments=[gad(56, 15), gad(14, 14)])
    assert "stale_assessment" not in fresh.flags and fresh.action == "increase"
    stale = run(assessments=[gad(56, 15), gad(15, 14)])
    assert stale.action == "insufficient_data" and "stale_assessment" in stale.flags
    assert "is 15 days old, older than the 14 days allowed" in stale.reasons[0].text


def test_no_gad7_at_all_is_insufficient_data():
    s = run(assessments=[])
    assert s.action == "insufficient_data" and s.flags == ("stale_assessment",)
    assert "No GAD-7 on record" in s.reasons[0].text


def test_future_entries_after_as_of_are_ignored():
    s = run(assessments=[gad(56, 15), gad(20, 14), gad(-3, 2)])
    assert s.action == "insufficient_data"  # the GAD-7 three days after as_of does not count


# --- adherence -------------------------------------------------------------------------------------


def test_adherence_exactly_70_percent_does_not_fire():
    pl = plan(150, 2, AS_OF - timedelta(days=20))  # 20 days ÷ 2 = 10 planned
    seven = [dose(2 * i + 1) for i in range(7)]
    s = run(doses=seven, pl=pl)
    assert "adherence" not in s.flags and s.action == "increase"
    assert s.facts["plan_window"]["planned"] == 10 and s.facts["plan_window"]["taken"] == 7


def test_adherence_below_70_percent_continues_without_change():
    pl = plan(150, 2, AS_OF - timedelta(days=20))
    six = [dose(2 * i + 1) for i in range(6)]
    s = run(doses=six, pl=pl)
    assert (s.action, s.dose_mg, s.interval_days, s.flags[0]) == ("continue", 150, 2, "adherence")
    assert s.reasons[0].text == ("6 of 10 planned doses taken (60 %) from 2026-02-09 to 2026-03-01 (20 days), "
                                 "below the 70 % needed: continue 150 mg every 2 days without a dose change.")


def test_adherence_needs_two_planned_doses():
    pl = plan(150, 7, AS_OF - timedelta(days=13))  # 13 ÷ 7 = 1 planned: the rule does not apply
    s = run(doses=[dose(12), dose(5)], pl=pl)
    assert "adherence" not in s.flags


def test_adherence_window_is_the_last_28_days_for_an_old_plan():
    doses = [dose(7 * i) for i in range(4, 12)]  # nothing in the last 28 days... except these are older
    s = run(doses=doses + [dose(1)], assessments=[gad(56, 15), gad(1, 14)])
    assert s.facts["plan_window"] == {"from": "2026-02-01", "window_days": 28, "planned": 4, "taken": 2,
                                      "above_plan": 0, "fraction": 0.5}
    assert s.action == "continue" and "adherence" in s.flags


# --- decrease -------------------------------------------------------------------------------------


def test_any_vomiting_in_last_three_decreases():
    doses = weekly_doses()
    doses[2] = dose(14, vomited=True)
    s = run(doses=doses)
    assert (s.action, s.dose_mg, s.flags[0]) == ("decrease", 100, "vomiting")
    assert "decrease from 150 mg to 100 mg" in s.reasons[0].text
    doses[2] = dose(14)
    doses[3] = dose(21, vomited=True)  # fourth-last: outside the last 3
    assert run(doses=doses).action != "decrease"


def test_severe_nausea_needs_two_of_last_three():
    doses = weekly_doses()
    doses[0] = dose(0, nausea=3)
    assert "severe_nausea" not in run(doses=doses).flags
    doses[1] = dose(7, nausea=3)
    s = run(doses=doses)
    assert s.action == "decrease" and "severe_nausea" in s.flags
    doses[1] = dose(7, nausea=2)
    assert "severe_nausea" not in run(doses=doses).flags


@pytest.mark.parametrize("post, fires", [((160, 90), True), ((159, 99), False), ((150, 100), True),
                                         ((159, 100), True), ((160, 100), True)])
def test_post_dose_bp_decrease_threshold_160_100(post, fires):
    doses = weekly_doses()
    doses[0] = dose(0, bp_systolic_post=post[0], bp_diastolic_post=post[1])
    doses[1] = dose(7, bp_systolic_post=post[0], bp_diastolic_post=post[1])
    s = run(doses=doses)
    assert ("hypertension" in s.flags) is fires
    assert (s.action == "decrease") is fires


def test_one_high_bp_is_not_enough_and_pre_dose_counts_for_decrease():
    doses = weekly_doses()
    doses[0] = dose(0, bp_systolic_post=165, bp_diastolic_post=95)
    assert "hypertension" not in run(doses=doses).flags
    # version 2: a dose meets 160/100 when its pre-dose OR post-dose reading does
    doses[1] = dose(7, bp_systolic_pre=165, bp_diastolic_pre=95)
    s = run(doses=doses)
    assert (s.action, s.dose_mg, s.flags[0]) == ("decrease", 100, "hypertension")
    assert ("165/95 pre-dose on 2026-02-22, 165/95 post-dose on 2026-03-01" in s.reasons[0].text)


def test_decrease_at_lowest_step_is_review():
    doses = weekly_doses(50, vomited=False)
    doses[0] = dose(0, 50, vomited=True)
    s = run(doses=doses, pl=plan(50))
    assert (s.action, s.dose_mg) == ("review", 50)
    assert s.flags[:2] == ("vomiting", "lowest_step")
    assert "No step below 50 mg" in s.reasons[1].text


def test_dose_between_steps_decreases_to_the_step_below():
    doses = weekly_doses(175)
    doses[0] = dose(0, 175, vomited=True)
    s = run(doses=doses, pl=plan(175))
    assert (s.action, s.dose_mg) == ("decrease", 150)


def test_decrease_beats_insufficient_data_and_efficacy():
    s = run(doses=[dose(0, vomited=True)], assessments=[gad(56, 15), gad(30, 15)])
    assert s.action == "decrease"
    assert s.flags == ("vomiting", "too_few_doses", "stale_assessment", "adherence", "non_response")
    assert all("not applied: the earlier decrease rule decides" in r.text for r in s.reasons[1:])


# --- hold -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reading, fires", [((180, 100), True), ((179, 109), False), ((170, 110), True),
                                            ((179, 110), True)])
def test_bp_hold_threshold_180_110_pre_or_post(reading, fires):
    for where in ("pre", "post"):
        doses = weekly_doses()
        doses[1] = dose(7, **{f"bp_systolic_{where}": reading[0], f"bp_diastolic_{where}": reading[1]})
        s = run(doses=doses)
        assert ("hypertension_severe" in s.flags) is fires
        assert (s.action == "hold") is fires
        if fires:
            assert s.dose_mg == 150 and s.interval_days == 7
            assert f"{reading[0]}/{reading[1]} {where}-dose on 2026-02-22" in s.reasons[0].text


def test_bp_hold_window_14_days_inclusive():
    doses = weekly_doses(n=4) + [dose(14, bp_systolic_post=185, bp_diastolic_post=100)]
    assert run(doses=doses).action == "hold"
    doses = weekly_doses(n=4) + [dose(15, bp_systolic_post=185, bp_diastolic_post=100)]
    assert "hypertension_severe" not in run(doses=doses).flags


def test_serious_adverse_event_holds_in_window_only():
    doses = weekly_doses()
    doses[1] = dose(7, adverse_events=("nausea", "Chest pain"))
    s = run(doses=doses)
    assert s.action == "hold" and s.flags == ("serious_adverse_event", "non_response")
    assert "chest pain" in s.reasons[0].text and "chest_pain" not in s.reasons[0].text
    doses[1] = dose(7, adverse_events=("nausea", "dizziness"))
    assert run(doses=doses).action != "hold"
    doses = weekly_doses(n=8)
    doses[3] = dose(21, adverse_events=("fainting",))
    assert run(doses=doses).action != "hold"


def test_phq9_item9_holds_however_old_until_a_newer_phq9_answers_0():
    old = [gad(56, 15), gad(1, 14), phq(300, 1)]
    s = run(assessments=old)
    assert (s.action, s.flags[0]) == ("hold", "suicidality")
    assert "item 9 (thoughts of self-harm) = 1" in s.reasons[0].text
    # a newer PHQ-9 with only a total does not answer item 9: the hold stays
    total_only = AssessmentFacts("PHQ-9", AS_OF - timedelta(days=10), 4, None)
    assert run(assessments=old + [total_only]).action == "hold"
    # a newer PHQ-9 answering 0 lifts it
    assert "suicidality" not in run(assessments=old + [phq(10, 0)]).flags
    # ... but not one after as_of
    assert run(assessments=old + [phq(-1, 0)]).action == "hold"


def test_hold_never_increases_and_lists_every_fired_rule():
    doses = weekly_doses()
    doses[0] = dose(0, bp_systolic_post=190, bp_diastolic_post=100, vomited=True)
    s = run(doses=doses, assessments=[gad(56, 15), gad(1, 15), phq(1, 2)])
    assert (s.action, s.dose_mg) == ("hold", 150)
    assert s.flags == ("suicidality", "hypertension_severe", "vomiting", "non_response")
    assert s.reasons[0].code == "suicidality"


# --- ceiling and protocol --------------------------------------------------------------------------


def test_plan_above_ceiling_is_never_suggested_back():
    s = run(doses=weekly_doses(400), pl=plan(400), assessments=[gad(28, 15), gad(0, 5)])
    assert s.dose_mg == 300 and "above_ceiling" in s.flags and s.action == "decrease"


def test_suggestion_names_its_protocol_and_is_deterministic():
    a, b = run(), run()
    assert a == b and a.facts == b.facts
    assert a.protocol_name == P.name and a.protocol_hash == P.sha256 and len(a.protocol_hash) == 64


def test_as_dict_is_the_documented_output():
    out = run(assessments=[gad(28, 15), gad(0, 13)]).as_dict()
    assert list(out) == ["action", "dose_mg", "interval_days", "flags", "reasons", "checks"]
    assert out["dose_mg"] == 200 and isinstance(out["dose_mg"], int)
    assert out["reasons"][0]["code"] == "non_response"


# --- version 2: the new hold rules ------------------------------------------------------------------


def statuses(s) -> dict[str, str]:
    return {c.rule: c.status for c in s.checks}


def check_text(s, rule: str) -> str:
    return next(c.text for c in s.checks if c.rule == rule)


def test_safety_window_is_two_intervals_for_a_14_day_plan():
    """16 days after fainting on a 14-day plan: the window is max(14, 2 × 14) = 28 days, so hold."""
    pl = plan(150, 14)
    doses = [dose(14 * i) for i in range(4)] + [dose(16, adverse_events=("fainting",))]
    s = run(doses=doses, pl=pl)
    assert (s.action, s.flags[0]) == ("hold", "serious_adverse_event")
    assert ("28-day safety window (2 \u00d7 the 14-day interval; 2026-02-01 to 2026-03-01), the latest on 2026-02-13"
            in s.reasons[0].text)
    # 29 days back is outside it; on a weekly plan 16 days is outside the 14-day window
    assert "serious_adverse_event" not in run(doses=[dose(14 * i) for i in range(4)]
                                              + [dose(29, adverse_events=("fainting",))], pl=pl).flags
    assert "serious_adverse_event" not in run(doses=weekly_doses() + [dose(16, adverse_events=("fainting",))]).flags


def test_fall_is_a_serious_adverse_event():
    doses = weekly_doses()
    doses[0] = dose(0, nausea=3, dissociation=10, adverse_events=("Fall",))
    s = run(doses=doses)
    assert s.action == "hold" and s.flags[0] == "serious_adverse_event" and "fall" in s.reasons[0].text


@pytest.mark.parametrize("extra, fires", [(1, False), (2, True)])
def test_overuse_is_more_than_planned_plus_two(extra, fires):
    # plan window 2026-02-01..2026-03-01: 28 days, 4 planned; weekly doses give 5 taken (both ends count)
    doses = weekly_doses() + [dose(3 + i) for i in range(extra)]  # taken = 5 + extra
    s = run(doses=doses)
    assert ("overuse" in s.flags) is fires
    if fires:
        assert s.action == "hold"
        assert s.reasons[0].text == ("7 doses taken from 2026-02-01 to 2026-03-01 (28 days), with 4 planned at one "
                                     "every 7 days: more than 4 + 2 = 6 (overuse): hold.")


def test_nineteen_doses_in_28_days_on_a_weekly_plan_hold():
    doses = [dose(int(i * 28 / 18)) for i in range(19)]
    s = run(doses=doses)
    assert s.action == "hold" and "overuse" in s.flags and "19 doses taken" in s.reasons[0].text


def test_dose_above_plan_in_the_plan_window_holds():
    doses = weekly_doses()
    doses[1] = dose(7, 900)
    s = run(doses=doses)
    assert (s.action, s.dose_mg, s.flags[0]) == ("hold", 150, "dose_above_plan")
    assert s.reasons[0].text == ("1 dose above the plan's 150 mg logged from 2026-02-01 to 2026-03-01 (28 days), "
                                 "the highest 900 mg on 2026-02-22: hold.")
    # a higher dose before the plan took effect (the previous plan version) does not count
    pl = plan(150, 7, AS_OF - timedelta(days=20))
    s = run(doses=[dose(27, 200), dose(21, 200), dose(14), dose(7), dose(0)], pl=pl)
    assert "dose_above_plan" not in s.flags and statuses(s)["dose_above_plan"] == "passed"


def test_pre_dose_bp_168_104_on_every_dose_decreases_never_increases():
    s = run(doses=weekly_doses(bp_systolic_pre=168, bp_diastolic_pre=104), assessments=[gad(28, 15), gad(0, 15)])
    assert (s.action, s.dose_mg, s.flags[0]) == ("decrease", 100, "hypertension")


# --- version 2: review on PHQ-9 -------------------------------------------------------------------------


def phq_total(days_before: int, total: int) -> AssessmentFacts:
    return AssessmentFacts("PHQ-9", AS_OF - timedelta(days=days_before), total)


@pytest.mark.parametrize("first, latest, fires", [(9, 21, True), (9, 19, True), (15, 19, False), (15, 20, True),
                                                  (10, 14, False), (10, 15, True)])
def test_depression_worsening_at_20_or_a_rise_of_5(first, latest, fires):
    s = run(assessments=[gad(28, 15), gad(0, 15), phq_total(60, first), phq_total(2, latest)])
    assert ("depression_worsening" in s.flags) is fires
    assert (s.action == "review") is fires
    assert statuses(s)["depression_worsening"] == ("fired" if fires else "passed")


def test_phq9_9_to_21_reason_quotes_both_scores():
    s = run(assessments=[gad(28, 15), gad(0, 15), phq_total(60, 9), phq_total(2, 21)])
    assert (s.action, s.flags[0]) == ("review", "depression_worsening")
    assert s.reasons[0].text == ("The latest PHQ-9 total is 21 (2026-02-27), at or above 20 and 12 above the earliest "
                                 "PHQ-9 on record (9 on 2025-12-31), a rise of at least 5: review.")
    # PHQ-9 totals only: item 9 is not known, and the checks say so
    assert statuses(s)["suicidality"] == "not_evaluable"


# --- version 2: insufficient data -----------------------------------------------------------------------


def test_five_days_after_a_plan_change_is_too_soon_with_true_dates():
    pl = plan(200, 7, AS_OF - timedelta(days=5))
    doses = weekly_doses(150)[1:] + [dose(1, 200), dose(0, 200)]
    s = run(doses=doses, pl=pl, assessments=[gad(56, 15), gad(0, 15)])
    assert (s.action, s.dose_mg, s.flags[0]) == ("insufficient_data", 200, "too_soon")
    assert s.reasons[0].text == ("The plan took effect on 2026-02-24, 5 days before 2026-03-01: fewer than the 14 "
                                 "days needed to judge it.")
    assert "4 weeks" not in " ".join(r.text for r in s.reasons)  # the old engine's false period
    assert check_text(s, "adherence").startswith("Adherence not judged: from 2026-02-24 to 2026-03-01 (5 days) only "
                                                 "0 doses were planned")


@pytest.mark.parametrize("days, fires", [(13, True), (14, False)])
def test_too_soon_boundary_14_days(days, fires):
    s = run(doses=[dose(i) for i in range(0, days + 1, 7)] + [dose(days)],
            pl=plan(150, 7, AS_OF - timedelta(days=days)))
    assert ("too_soon" in s.flags) is fires


@pytest.mark.parametrize("days, fires", [(28, False), (29, True)])
def test_stale_phq9_boundary_28_days(days, fires):
    s = run(assessments=[gad(56, 15), gad(0, 15), phq(days, 0)])
    assert ("stale_phq9" in s.flags) is fires
    assert (s.action == "insufficient_data") is fires


def test_no_bp_and_no_phq9_ever_is_never_an_increase_and_says_what_is_missing():
    doses = [DoseFacts(taken_at=at(7 * i), dose_mg=150) for i in range(8)]
    s = suggest(plan(), doses, [gad(56, 15), gad(0, 15)], P, AS_OF)
    assert s.action == "insufficient_data" and s.flags == ("stale_phq9", "non_response")
    st_ = statuses(s)
    assert st_["stale_phq9"] == "fired" and st_["no_recent_vitals"] == "fired"
    for rule in ("suicidality", "depression_worsening", "hypertension_severe", "hypertension", "severe_nausea"):
        assert st_[rule] == "not_evaluable", rule
    assert check_text(s, "suicidality") == ("No PHQ-9 on record up to 2026-03-01: "
                                            "item 9 (thoughts of self-harm) is not known.")
    assert "No BP reading" in check_text(s, "hypertension_severe")
    assert s.safety_codes == ("stale_phq9",)


# --- version 2: the increase gate ------------------------------------------------------------------------


NON_RESPONSE = [gad(28, 15), gad(0, 15)]


def test_clean_non_responder_increases_and_every_check_passes():
    s = run(doses=weekly_doses(nausea=0, dissociation=3), assessments=NON_RESPONSE)
    assert (s.action, s.dose_mg, s.flags) == ("increase", 200, ("non_response",))
    assert set(statuses(s).values()) == {"passed"}
    assert s.safety_codes == ()


def test_no_recent_vitals_stops_the_increase():
    doses = weekly_doses()
    doses[:3] = [dose(d, bp_systolic_pre=None, bp_diastolic_pre=None) for d in (0, 7, 14)]
    s = run(doses=doses, assessments=NON_RESPONSE)
    assert (s.action, s.dose_mg, s.flags) == ("continue", 150, ("non_response", "no_recent_vitals"))
    assert "the increase gate stops an increase to 200 mg" in s.reasons[0].text
    assert s.reasons[1].text == ("None of the last 3 doses (2026-02-15 to 2026-03-01) carries a BP reading: "
                                 "no increase "
                                 "is suggested without one.")
    # a BP on the fourth-last dose does not count as recent
    assert statuses(s)["no_recent_vitals"] == "fired"


@pytest.mark.parametrize("kw, words", [
    (dict(nausea=2), "nausea 2 of 3 on 2026-02-22"),
    (dict(dissociation=8), "dissociation 8 of 10 on 2026-02-22"),
    (dict(adverse_events=("headache",)), "adverse event headache on 2026-02-22"),
    (dict(bp_systolic_pre=150, bp_diastolic_pre=80), "BP 150/80 pre-dose on 2026-02-22"),
    (dict(bp_systolic_post=130, bp_diastolic_post=95), "BP 130/95 post-dose on 2026-02-22"),
])
def test_tolerability_stops_the_increase(kw, words):
    doses = weekly_doses()
    doses[1] = dose(7, **kw)
    s = run(doses=doses, assessments=NON_RESPONSE)
    assert (s.action, s.dose_mg, s.flags) == ("continue", 150, ("non_response", "tolerability"))
    assert words in s.reasons[1].text


@pytest.mark.parametrize("kw", [dict(nausea=1), dict(dissociation=7), dict(bp_systolic_pre=149, bp_diastolic_pre=94)])
def test_just_below_the_gate_increases(kw):
    doses = weekly_doses()
    doses[1] = dose(7, **kw)
    assert run(doses=doses, assessments=NON_RESPONSE).action == "increase"


def test_gate_checks_are_reported_but_flag_only_when_they_stop_an_increase():
    doses = weekly_doses()
    doses[1] = dose(7, nausea=2)
    s = run(doses=doses, assessments=[gad(28, 16), gad(0, 8)])  # response: nothing to stop
    assert (s.action, s.flags) == ("continue", ("response",))
    assert statuses(s)["tolerability"] == "fired"
    assert "no increase is suggested while a recent dose is poorly tolerated" in check_text(s, "tolerability")


def test_a_clinic_may_ignore_minor_adverse_event_tags_in_the_gate():
    doses = weekly_doses()
    doses[1] = dose(7, adverse_events=("headache",))
    assert run(doses=doses, assessments=NON_RESPONSE,
               proto=proto_with(gate_any_adverse_event=False)).action == "increase"


def test_checks_cover_every_rule_in_order():
    from kapnotes.dosing.rules import CHECK_CODES

    s = run()
    assert tuple(c.rule for c in s.checks) == CHECK_CODES and len(CHECK_CODES) == 16
    assert [c["rule"] for c in s.as_dict()["checks"]] == list(CHECK_CODES)
