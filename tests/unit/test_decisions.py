"""The loop around the rules and the prescriber's decisions (issue 13 §2–3), on SQLite and PostgreSQL:
urgent items reach the queue by themselves, newer evaluations supersede older ones, stale items
cannot be approved, every decision has a rationale, overrides are explicit and recorded, and the
500 mg hard maximum holds in the services and in the database."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

from kapnotes import assessments, notify
from kapnotes import doses as dose_service
from kapnotes.dosing import plans, suggestions
from kapnotes.errors import ConflictError, PermissionDenied, ValidationError
from kapnotes.models import HARD_MAX_DOSE_MG, AuditEvent, DoseAdjustment, TreatmentPlan
from tests.helpers.records import add_assessment, add_dose, at_day, count, healthy, today


@pytest.fixture
def urgent_calls(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(notify, "urgent_item_created", lambda session, patient_id: calls.append(patient_id))
    return calls


def queue_ids(session, clinic) -> list[int]:
    return [i.adjustment.id for i in suggestions.review_queue(session, clinic.paul)]


def engine_rows(session, pid) -> list[DoseAdjustment]:
    return list(session.exec(select(DoseAdjustment).where(DoseAdjustment.patient_id == pid,
                                                          DoseAdjustment.kind == "suggestion")
                             .order_by(col(DoseAdjustment.id))).all())


def new_dose(session, clinic, pid, days_ago=0, **kw):
    values = dict(nausea=0, dissociation=2, bp_systolic_pre=120, bp_diastolic_pre=78, bp_systolic_post=122,
                  bp_diastolic_post=80) | kw
    # today: a few minutes ago (never in the future), each dose at its own minute
    taken = at_day(days_ago, 8) if days_ago else datetime.now(timezone.utc) - timedelta(minutes=next(_minutes))
    return dose_service.add_dose(session, clinic.tina, pid, dose_service.DoseInput(
        taken_at=taken, dose_mg=150, formulation="odt", **values))


_minutes = itertools.count(3)


# --- the loop ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case, action", [
    ("bp", "hold"), ("item9", "hold"), ("vomited", "decrease"), ("low_baseline", "review"),
])
def test_hold_decrease_review_reach_the_queue_at_once_urgent_with_nobody_sending(session, clinic, urgent_calls,
                                                                                   case, action):
    if case == "low_baseline":
        for i in range(8):
            add_dose(session, clinic, clinic.a1, 7 * i + 1, nausea=0, bp_systolic_pre=120, bp_diastolic_pre=78)
        add_assessment(session, clinic, clinic.a1, "GAD-7", 56, total=4)
        add_assessment(session, clinic, clinic.a1, "PHQ-9", 2, items=[1, 1, 1, 1, 1, 1, 1, 1, 0])
        add_assessment(session, clinic, clinic.a1, "GAD-7", 2, total=6)
        row = suggestions.run_for_patient(session, clinic.tina, clinic.a1)
    else:
        healthy(session, clinic, clinic.a1)
        if case == "item9":
            assessments.record_assessment(session, clinic.tina, clinic.a1, "PHQ-9", today(),
                                          items=[1, 1, 1, 1, 1, 1, 1, 1, 1])
        else:
            kw = dict(bp_systolic_pre=190, bp_diastolic_pre=115) if case == "bp" else dict(vomited=True)
            new_dose(session, clinic, clinic.a1, **kw)
        row = suggestions.latest_suggestion(session, clinic.tina, clinic.a1)
    assert row.action == action
    assert (row.status, row.urgent, row.sent_by_id) == ("pending", True, None) and row.sent_at is not None
    assert row.facts_key == suggestions.facts_key(session, clinic.a1)
    queue = suggestions.review_queue(session, clinic.paul)
    assert [i.adjustment.id for i in queue] == [row.id]
    assert queue[0].urgent and queue[0].urgency_label.startswith("Urgent")
    assert queue[0].sent_by_text == "sent automatically by the rules engine"
    assert urgent_calls == [clinic.a1]
    with pytest.raises(ConflictError):  # already waiting: nothing for anyone to send
        suggestions.send_to_prescriber(session, clinic.tina, row.id)


def test_increase_stays_open_until_a_therapist_or_prescriber_sends_it(session, clinic, urgent_calls):
    healthy(session, clinic, clinic.a1)
    healthy(session, clinic, clinic.a2)
    a1 = suggestions.run_for_patient(session, clinic.tina, clinic.a1)
    a2 = suggestions.run_for_patient(session, clinic.tina, clinic.a2)
    assert (a1.action, a1.status, a1.urgent) == ("increase", "open", False)
    assert a1.checks == [] or {c["rule"] for c in a1.checks} >= {"suicidality", "hypertension_severe"}
    assert queue_ids(session, clinic) == [] and urgent_calls == []
    suggestions.send_to_prescriber(session, clinic.tina, a1.id, a1.version, note="Keen.")
    taken = suggestions.take_to_review(session, clinic.paul, a2.id, a2.version)
    assert (taken.status, taken.sent_by_id) == ("pending", clinic.paul.id)
    assert sorted(queue_ids(session, clinic)) == sorted([a1.id, a2.id])
    with pytest.raises(PermissionDenied):  # another team's prescriber
        suggestions.take_to_review(session, clinic.pia, a1.id)


def test_informational_suggestions_cannot_be_sent(session, clinic):
    add_dose(session, clinic, clinic.a1, 1)
    row = suggestions.run_for_patient(session, clinic.tina, clinic.a1)
    assert row.action == "insufficient_data" and row.status == "open"
    with pytest.raises(ConflictError, match="only informs"):
        suggestions.send_to_prescriber(session, clinic.tina, row.id)
    with pytest.raises(ConflictError, match="only informs"):
        suggestions.take_to_review(session, clinic.paul, row.id)


def test_newer_result_supersedes_open_and_pending_engine_rows_and_voiding_re_evaluates(session, clinic, urgent_calls):
    healthy(session, clinic, clinic.a1)
    increase = suggestions.run_for_patient(session, clinic.tina, clinic.a1)
    suggestions.send_to_prescriber(session, clinic.tina, increase.id)
    assert queue_ids(session, clinic) == [increase.id]
    high = new_dose(session, clinic, clinic.a1, bp_systolic_post=190, bp_diastolic_post=115)
    hold = suggestions.latest_suggestion(session, clinic.tina, clinic.a1)
    session.refresh(increase)
    assert (hold.action, increase.status) == ("hold", "superseded")
    assert queue_ids(session, clinic) == [hold.id]  # the superseded one left the queue
    # the same result again keeps the row (and keeps it fresh)
    new_dose(session, clinic, clinic.a1, days_ago=0)
    assert suggestions.latest_suggestion(session, clinic.tina, clinic.a1).id == hold.id
    assert hold.facts_key == suggestions.facts_key(session, clinic.a1)
    # voiding the high reading re-evaluates: the pending hold is superseded too
    dose_service.void_dose(session, clinic.tina, high.id, "Entered for the wrong patient.")
    session.refresh(hold)
    assert hold.status == "superseded" and hold.id not in queue_ids(session, clinic)
    assert [r.status for r in engine_rows(session, clinic.a1)].count("superseded") == 2
    events = session.exec(select(AuditEvent).where(AuditEvent.action == "suggestion.supersede")).all()
    assert {e.record_id for e in events} == {str(increase.id), str(hold.id)}
    assert all("wrong patient" not in e.detail and "mg" not in e.detail for e in events)


def test_every_new_plan_version_re_evaluates(session, clinic):
    healthy(session, clinic, clinic.a1)
    first = suggestions.run_for_patient(session, clinic.tina, clinic.a1)
    prop = suggestions.propose(session, clinic.tina, clinic.a1, dose_mg=200, reason="More effect.")
    suggestions.decide(session, clinic.paul, prop.id, "approve", "Step up.")
    plan = plans.current_plan(session, clinic.a1)
    latest = suggestions.latest_suggestion(session, clinic.tina, clinic.a1)
    assert latest.id != first.id and latest.plan_id == plan.id
    suggestions.set_plan_status(session, clinic.paul, clinic.a1, "held", "Away.")
    session.refresh(latest)
    assert latest.status == "superseded"


def test_facts_key_follows_every_change_the_engine_reads(session, clinic):
    key = lambda: suggestions.facts_key(session, clinic.a1)  # noqa: E731
    k0 = key()
    assert k0 == key() and k0 != suggestions.facts_key(session, clinic.a2)
    dose = new_dose(session, clinic, clinic.a1, days_ago=3)
    k1 = key()
    data = dose_service.DoseInput.from_entry(dose)
    data.nausea = 2
    dose_service.edit_dose(session, clinic.tina, dose.id, data)
    k2 = key()
    dose_service.void_dose(session, clinic.tina, dose.id, "Duplicate.")
    k3 = key()
    score = assessments.record_assessment(session, clinic.tina, clinic.a1, "GAD-7", today(), total=9)
    k4 = key()
    assessments.void_assessment(session, clinic.tina, score.id, "Wrong form.")
    k5 = key()
    suggestions.set_plan_status(session, clinic.paul, clinic.a1, "held", "Away.")
    k6 = key()
    assert len({k0, k1, k2, k3, k4, k5, k6}) == 7


def test_hold_flags_use_each_patients_safety_window(session, clinic):
    """max(14, 2 × interval): a 190/115 reading 20 days ago flags a fortnightly patient, not a weekly one."""
    for pid in (clinic.a1, clinic.a2):
        add_dose(session, clinic, pid, 20, bp_systolic_pre=190, bp_diastolic_pre=115)
    row = session.exec(select(TreatmentPlan).where(TreatmentPlan.patient_id == clinic.a2)).one()
    row.interval_days = 14
    session.add(row)
    session.flush()
    flags = suggestions.hold_flags(session, [clinic.a1, clinic.a2])
    assert flags == {clinic.a2: ["hypertension_severe"]}


# --- stale items --------------------------------------------------------------------------------------


def test_a_stale_item_says_why_and_cannot_be_approved_as_it_stands(session, clinic):
    healthy(session, clinic, clinic.a1)
    prop = suggestions.propose(session, clinic.tina, clinic.a1, dose_mg=200, reason="More effect.")
    assert prop.facts_key == suggestions.facts_key(session, clinic.a1)
    assert suggestions.stale_reason(session, prop) is None
    new_dose(session, clinic, clinic.a1, days_ago=0)
    reason = suggestions.stale_reason(session, prop)
    assert reason.startswith("The record changed since this item was made (new dose on ")
    assert [i.stale for i in suggestions.review_queue(session, clinic.paul)] == [True]
    with pytest.raises(ConflictError, match="The record changed since this item was made"):
        suggestions.decide(session, clinic.paul, prop.id, "approve", "Looks fine.")
    assert suggestions.decision_requirements(session, clinic.paul, prop.id, "approve").stale == reason
    decided = suggestions.decide(session, clinic.paul, prop.id, "modify", "Checked the new dose; step up.",
                                 dose_mg=200, interval_days=7)
    assert decided.status == "modified" and plans.current_plan(session, clinic.a1).dose_mg == 200


# --- decisions ----------------------------------------------------------------------------------------


def test_a_decision_and_its_rationale_are_always_required(session, clinic):
    healthy(session, clinic, clinic.a1)
    prop = suggestions.propose(session, clinic.tina, clinic.a1, dose_mg=200, reason="More effect.")
    for decision in (None, ""):
        with pytest.raises(ValidationError) as exc:
            suggestions.decide(session, clinic.paul, prop.id, decision, "Fine.")
        assert "decision" in exc.value.errors
    with pytest.raises(ValidationError) as exc:
        suggestions.decide(session, clinic.paul, prop.id, "approve", "   ")
    assert exc.value.errors == {"rationale": "Give the rationale for approving."}
    assert count(session, TreatmentPlan, TreatmentPlan.patient_id == clinic.a1) == 1
    suggestions.decide(session, clinic.paul, prop.id, "approve", "Tolerating well.")
    assert plans.current_plan(session, clinic.a1).rationale == "Tolerating well."


def test_more_drug_while_a_safety_rule_fires_needs_an_override_recorded_everywhere(session, clinic):
    healthy(session, clinic, clinic.a1)
    add_assessment(session, clinic, clinic.a1, "PHQ-9", 1, items=[1, 1, 1, 1, 1, 1, 1, 1, 1])
    prop = suggestions.propose(session, clinic.tina, clinic.a1, dose_mg=250, interval_days=3, reason="Wants more.")
    need = suggestions.decision_requirements(session, clinic.paul, prop.id, "approve")
    assert need.override_needed and "suicidality" in need.override_rules
    assert "PHQ-9 item 9 above 0" in need.message() and "suicidality" not in need.message()
    assert not suggestions.decision_requirements(session, clinic.paul, prop.id, "reject").override_needed
    with pytest.raises(ValidationError) as exc:
        suggestions.decide(session, clinic.paul, prop.id, "approve", "Patient insists.")
    assert list(exc.value.errors) == ["override_rationale"]
    assert "more drug while safety rules fire" in exc.value.errors["override_rationale"]
    with pytest.raises(ValidationError) as exc:  # ticked, but no reason of its own
        suggestions.decide(session, clinic.paul, prop.id, "approve", "Patient insists.", override=True)
    assert "Give the rationale for the override." in exc.value.errors["override_rationale"]
    assert count(session, TreatmentPlan, TreatmentPlan.patient_id == clinic.a1) == 1
    decided = suggestions.decide(session, clinic.paul, prop.id, "approve", "Patient insists.", override=True,
                                 override_rationale="Seen today: passive thoughts only, safety plan in place.")
    assert "suicidality" in decided.override_rules
    assert decided.override_rationale == "Seen today: passive thoughts only, safety plan in place."
    plan = plans.current_plan(session, clinic.a1)
    assert (plan.dose_mg, plan.interval_days) == (250, 3)
    assert plan.rationale.startswith("Patient insists.\nOverride (PHQ-9 item 9 above 0")
    assert plan.rationale.endswith("): Seen today: passive thoughts only, safety plan in place.")
    ev = session.exec(select(AuditEvent).where(AuditEvent.action == "adjustment.approve")).one()
    assert "override=1" in ev.detail and "suicidality" in ev.detail
    assert "passive" not in ev.detail and "insists" not in ev.detail


@pytest.mark.parametrize("dose, interval, code", [
    (175, 7, "off_steps"), (350, 7, "above_ceiling"), (150, 5, "off_intervals"),
])
def test_values_off_the_protocol_need_an_override(session, clinic, dose, interval, code):
    healthy(session, clinic, clinic.a1)
    prop = suggestions.propose(session, clinic.tina, clinic.a1, dose_mg=200, reason="More effect.")
    need = suggestions.decision_requirements(session, clinic.paul, prop.id, "modify", dose, interval)
    assert code in need.override_rules and "_" not in need.message()
    with pytest.raises(ValidationError) as exc:
        suggestions.decide(session, clinic.paul, prop.id, "modify", "My call.", dose_mg=dose, interval_days=interval)
    assert "override_rationale" in exc.value.errors
    decided = suggestions.decide(session, clinic.paul, prop.id, "modify", "My call.", dose_mg=dose,
                                 interval_days=interval, override=True, override_rationale="Documented reason.")
    assert code in decided.override_rules
    # a step down on the steps needs nothing
    other = suggestions.propose(session, clinic.tina, clinic.a2, dose_mg=100, reason="Too strong.")
    assert not suggestions.decision_requirements(session, clinic.paul, other.id, "approve").override_needed


def test_the_hard_maximum_is_never_crossed_by_a_service(session, clinic):
    assert plans.MAX_DOSE_MG == HARD_MAX_DOSE_MG == 500
    with pytest.raises(ValidationError) as exc:
        plans.PlanInput("odt", 501, 7).validate()
    assert "500 mg" in exc.value.errors["dose_mg"]
    with pytest.raises(ValidationError) as exc:
        suggestions.propose(session, clinic.tina, clinic.a1, dose_mg=600, reason="x")
    assert "dose_mg" in exc.value.errors
    prop = suggestions.propose(session, clinic.tina, clinic.a1, dose_mg=200, reason="x")
    with pytest.raises(ValidationError) as exc:  # not even with an override
        suggestions.decide(session, clinic.paul, prop.id, "modify", "More.", dose_mg=900, interval_days=1,
                           override=True, override_rationale="I insist.")
    assert "dose_mg" in exc.value.errors
    with pytest.raises(ValidationError):
        plans.new_plan_version(session, clinic.paul, clinic.a1, plans.PlanInput("odt", 500.5, 7), "More.")
    assert plans.current_plan(session, clinic.a1).dose_mg == 150


@pytest.mark.parametrize("sql", [
    "UPDATE treatment_plans SET dose_mg = 501 WHERE patient_id = :pid",
    "UPDATE dose_adjustments SET proposed_dose_mg = 900 WHERE patient_id = :pid",
    "UPDATE dose_adjustments SET decided_dose_mg = 600 WHERE patient_id = :pid",
    "INSERT INTO dose_adjustments (patient_id, kind, status, action, proposed_dose_mg, flags, reasons, facts, "
    "checks, override_rules, urgent, created_at, version) VALUES (:pid, 'proposal', 'pending', 'increase', 750, "
    "'[]', '[]', '{}', '[]', '[]', false, CURRENT_TIMESTAMP, 1)",
])
def test_the_database_refuses_a_dose_above_the_hard_maximum(session, clinic, sql):
    suggestions.propose(session, clinic.tina, clinic.a1, dose_mg=200, reason="x")
    session.flush()
    with pytest.raises(DBAPIError):
        with session.begin_nested():
            session.connection().execute(sa.text(sql), {"pid": clinic.a1})
    # at the maximum itself is allowed
    session.connection().execute(sa.text("UPDATE treatment_plans SET dose_mg = 500 WHERE patient_id = :pid"),
                                 {"pid": clinic.a2})
    assert session.connection().execute(sa.text("SELECT dose_mg FROM treatment_plans WHERE patient_id = :pid"),
                                        {"pid": clinic.a2}).scalar() == 500


def test_audit_of_new_suggestions_carries_codes_only(session, clinic, urgent_calls):
    healthy(session, clinic, clinic.a1)
    new_dose(session, clinic, clinic.a1, adverse_events="chest_pain", notes="Crushing pain at 10 pm.")
    ev = session.exec(select(AuditEvent).where(AuditEvent.action == "suggestion.create")
                      .order_by(col(AuditEvent.id).desc())).first()
    assert "urgent=1" in ev.detail and "pain" not in ev.detail
    assert timedelta(0) <= (suggestions.latest_suggestion(session, clinic.tina, clinic.a1).sent_at
                            - suggestions.latest_suggestion(session, clinic.tina, clinic.a1).created_at) \
        <= timedelta(seconds=1)
