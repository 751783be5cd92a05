"""The dose-adjustment workflow on the database (SQLite and PostgreSQL): engine runs, sending,
proposals, the prescriber's queue and decisions, plan versions, safety flags, conflicts, audit."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from functools import partial

import pytest
from sqlmodel import Session, col, func, select

from kapnotes import doses as dose_service
from kapnotes import events, patients
from kapnotes.actor import actor_of
from kapnotes.db import session_scope
from kapnotes.dosing import plans, protocol, suggestions
from kapnotes.errors import ConflictError, PermissionDenied, ValidationError
from kapnotes.models import (
    AuditEvent,
    DoseAdjustment,
    SessionNote,
    TreatmentPlan,
)
from tests.helpers.records import add_assessment, add_dose, at_day, count, healthy, today
from tests.helpers.threads import run_threads, together


def non_responder(session, clinic, pid):
    """Weekly doses of 150 mg with GAD-7 15 → 14, vitals and a recent PHQ-9 (item 9 = 0): no safety
    rule fires and the increase gate passes, so the engine suggests an increase to 200 mg."""
    healthy(session, clinic, pid)


def audit_actions(session, patient_id=None) -> list[str]:
    q = select(AuditEvent.action).order_by(col(AuditEvent.id))
    if patient_id is not None:
        q = q.where(AuditEvent.patient_id == patient_id)
    return list(session.exec(q).all())


# --- engine runs ----------------------------------------------------------------------------------


def test_engine_run_stores_an_open_suggestion_naming_the_protocol(session, clinic):
    non_responder(session, clinic, clinic.a1)
    row = suggestions.run_for_patient(session, clinic.tina, clinic.a1)
    assert (row.kind, row.status, row.action, row.proposed_dose_mg, row.proposed_interval_days) == \
        ("suggestion", "open", "increase", 200, 7)
    assert row.flags == ["non_response"] and row.reasons[0]["code"] == "non_response"
    assert "GAD-7 15 on " in row.reasons[0]["text"] and "\u2192 14 on " in row.reasons[0]["text"]
    default = protocol.load_default()
    assert (row.protocol_name, row.protocol_hash) == (default.name, default.sha256)
    assert row.plan_id == plans.current_plan(session, clinic.a1).id
    assert row.facts["gad7"]["baseline"]["total"] == 15
    # the same inputs again: the same open suggestion, nothing new
    assert suggestions.run_for_patient(session, clinic.tina, clinic.a1).id == row.id
    # new data that changes the result supersedes it
    add_dose(session, clinic, clinic.a1, 0, vomited=True)
    newer = suggestions.run_for_patient(session, clinic.tina, clinic.a1)
    assert newer.id != row.id and newer.action == "decrease" and newer.proposed_dose_mg == 100
    session.refresh(row)
    assert row.status == "superseded"
    assert suggestions.latest_suggestion(session, clinic.tina, clinic.a1).id == newer.id
    assert audit_actions(session, clinic.a1).count("suggestion.create") == 2
    ev = session.exec(select(AuditEvent).where(AuditEvent.action == "suggestion.create")
                      .order_by(col(AuditEvent.id).desc())).first()
    assert "mg" not in ev.detail and f"supersedes={row.id}" in ev.detail


def test_engine_runs_when_a_dose_or_assessment_changes(session, clinic):
    assert "kapnotes.dosing.suggestions" in events.LISTENER_MODULES
    non_responder(session, clinic, clinic.a1)
    assert count(session, DoseAdjustment) == 0
    dose_service.add_dose(session, clinic.tina, clinic.a1, dose_service.DoseInput(
        taken_at=at_day(1, 8), dose_mg=150, formulation="odt", bp_systolic_post=185, bp_diastolic_post=95))
    row = suggestions.latest_suggestion(session, clinic.tina, clinic.a1)
    assert row.action == "hold" and "hypertension_severe" in row.flags
    # an assessment change re-runs it too (via the event the assessment service emits)
    events.emit(session, "assessment.changed", clinic.tina, patient_id=clinic.a1, assessment_id=None)
    assert count(session, DoseAdjustment, DoseAdjustment.patient_id == clinic.a1) == 1  # same result, no new row


def test_item9_assessment_holds_and_flags_the_patient_everywhere(session, clinic):
    non_responder(session, clinic, clinic.a1)
    add_assessment(session, clinic, clinic.a1, "PHQ-9", 1, items=[1, 1, 1, 1, 1, 1, 1, 1, 1])
    row = suggestions.run_for_patient(session, clinic.tina, clinic.a1)
    assert row.action == "hold" and row.flags[0] == "suicidality"
    assert patients.safety_flags(session, [clinic.a1])[clinic.a1] == ["suicidality"]
    add_assessment(session, clinic, clinic.a1, "PHQ-9", 0, items=[1, 1, 1, 1, 1, 1, 1, 1, 0])
    assert suggestions.run_for_patient(session, clinic.tina, clinic.a1).action == "increase"
    assert clinic.a1 not in patients.safety_flags(session, [clinic.a1])


def test_hold_flags_from_the_dose_log_mark_the_patients_list(session, clinic):
    add_dose(session, clinic, clinic.a1, 14, bp_systolic_pre=181, bp_diastolic_pre=90)
    add_dose(session, clinic, clinic.a2, 15, bp_systolic_pre=200, bp_diastolic_pre=120,
             adverse_events="chest_pain")  # outside the 14-day window
    add_dose(session, clinic, clinic.a2, 3, adverse_events="nausea;dizziness")
    rows = {r.mrn: r.flags for r in patients.list_patients(session, clinic.tina)}
    assert rows == {"A-001": ("hypertension_severe",), "A-002": ()}
    add_dose(session, clinic, clinic.a2, 2, adverse_events="nausea;Emergency visit")
    voided = add_dose(session, clinic, clinic.a2, 1, bp_systolic_post=190, bp_diastolic_post=100)
    voided.voided_at = datetime.now(timezone.utc)
    session.add(voided)
    session.flush()
    rows = {r.mrn: r.flags for r in patients.list_patients(session, clinic.tina)}
    assert rows["A-002"] == ("serious_adverse_event",)
    # the subquery form used by other pages works too
    from kapnotes.access import visible_patient_ids
    assert patients.safety_flags(session, visible_patient_ids(clinic.tina))[clinic.a1] == ["hypertension_severe"]


def test_no_active_plan_no_suggestion_and_open_one_is_superseded(session, clinic):
    non_responder(session, clinic, clinic.a1)
    row = suggestions.run_for_patient(session, clinic.tina, clinic.a1)
    suggestions.set_plan_status(session, clinic.paul, clinic.a1, "held", "Travelling for a month.")
    session.refresh(row)
    assert row.status == "superseded"
    assert suggestions.run_for_patient(session, clinic.tina, clinic.a1) is None
    assert plans.current_plan(session, clinic.a1).status == "held"


def test_broken_clinic_protocol_does_not_block_documenting_a_dose(session, clinic, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(protocol.DEFAULT_PATH.read_text().replace("ceiling_mg = 300 ", "ceiling_mg = 'x' "))
    from kapnotes.models import ClinicSetting
    session.add(ClinicSetting(key=protocol.SETTING_KEY, value={"path": str(bad)}))
    session.flush()
    entry = dose_service.add_dose(session, clinic.tina, clinic.a1, dose_service.DoseInput(
        taken_at=at_day(1, 8), dose_mg=150, formulation="odt"))
    assert entry.id is not None
    assert count(session, DoseAdjustment) == 0
    assert "suggestion.skipped" in audit_actions(session, clinic.a1)


# --- therapist: send and propose --------------------------------------------------------------------


def test_therapist_sends_a_suggestion_to_the_prescriber_queue(session, clinic):
    non_responder(session, clinic, clinic.a1)
    row = suggestions.run_for_patient(session, clinic.tina, clinic.a1)
    with pytest.raises(PermissionDenied):
        suggestions.send_to_prescriber(session, clinic.theo, row.id, row.version)  # other team
    with pytest.raises(PermissionDenied):
        suggestions.send_to_prescriber(session, clinic.paul, row.id, row.version)  # prescribers decide, not send
    sent = suggestions.send_to_prescriber(session, clinic.tina, row.id, row.version, note="Client agrees.")
    assert (sent.status, sent.sent_by_id, sent.therapist_note) == ("pending", clinic.tina.id, "Client agrees.")
    with pytest.raises(ConflictError):
        suggestions.send_to_prescriber(session, clinic.tina, row.id)
    queue = suggestions.review_queue(session, clinic.paul)
    assert [i.adjustment.id for i in queue] == [row.id]
    assert queue[0].sent_by == "Tina Torres, LMFT" and queue[0].mrn == "A-001"
    assert suggestions.review_queue(session, clinic.pia) == []
    with pytest.raises(PermissionDenied):
        suggestions.review_queue(session, clinic.tina)
    assert "adjustment.send" in audit_actions(session, clinic.a1)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(dose_mg=None, interval_days=None, reason="Too strong."), "dose_mg"),
        (dict(dose_mg=200, reason="  "), "reason"),
        (dict(dose_mg=0, reason="x"), "dose_mg"),
        (dict(dose_mg=1500, reason="x"), "dose_mg"),
        (dict(interval_days=0, reason="x"), "interval_days"),
        (dict(interval_days=3.5, reason="x"), "interval_days"),
        (dict(dose_mg="lots", reason="x"), "dose_mg"),
        (dict(dose_mg=150, interval_days=7, reason="Same as now."), "dose_mg"),
    ],
)
def test_bad_proposal_names_the_field_and_writes_nothing(session, clinic, kwargs, field):
    before = count(session, AuditEvent)
    with pytest.raises(ValidationError) as exc:
        suggestions.propose(session, clinic.tina, clinic.a1, **kwargs)
    assert field in exc.value.errors
    assert count(session, DoseAdjustment) == 0 and count(session, AuditEvent) == before


def test_proposal_goes_pending_and_only_therapists_of_the_team_propose(session, clinic):
    row = suggestions.propose(session, clinic.tina, clinic.a1, dose_mg=None, interval_days=14,
                              reason="Stable for two months; wants fewer sessions.")
    assert (row.kind, row.status, row.action, row.proposed_dose_mg, row.proposed_interval_days) == \
        ("proposal", "pending", "space_out", 150, 14)
    assert row.therapist_note.startswith("Stable") and row.plan_id == plans.current_plan(session, clinic.a1).id
    with pytest.raises(PermissionDenied):
        suggestions.propose(session, clinic.theo, clinic.a1, dose_mg=200, reason="x")
    with pytest.raises(PermissionDenied):
        suggestions.propose(session, clinic.paul, clinic.a1, dose_mg=200, reason="x")
    ev = session.exec(select(AuditEvent).where(AuditEvent.action == "adjustment.propose")).one()
    assert "Stable" not in ev.detail and ev.actor_id == clinic.tina.id
    suggestions.withdraw(session, clinic.tina, row.id, row.version)
    assert row.status == "withdrawn" and suggestions.review_queue(session, clinic.paul) == []


def test_integration_note_proposal_lands_in_the_queue_once(session, clinic):
    note = SessionNote(patient_id=clinic.a1, author_id=clinic.tina.id, note_type="integration", status="signed",
                       session_date=today(), fields={"proposal_dose_mg": 200, "proposal_interval_days": None,
                                                     "proposal_reason": "Effect fades after 3 days."})
    session.add(note)
    session.flush()
    payload = dict(patient_id=clinic.a1, note_id=note.id, note_type="integration")
    events.emit(session, "note.signed", clinic.tina, **payload)
    events.emit(session, "note.signed", clinic.tina, **payload)
    rows = session.exec(select(DoseAdjustment).where(DoseAdjustment.kind == "proposal")).all()
    assert len(rows) == 1
    assert (rows[0].source_note_id, rows[0].proposed_dose_mg, rows[0].status, rows[0].therapist_note) == \
        (note.id, 200, "pending", "Effect fades after 3 days.")
    # a note without a proposal creates none; a bad value names the note's field
    plain = SessionNote(patient_id=clinic.a2, author_id=clinic.tina.id, note_type="integration", status="signed",
                        session_date=today(), fields={"proposal_dose_mg": None, "proposal_reason": ""})
    bad = SessionNote(patient_id=clinic.a2, author_id=clinic.tina.id, note_type="integration", status="signed",
                      session_date=today(), fields={"proposal_interval_days": 0, "proposal_reason": "x"})
    session.add_all([plain, bad])
    session.flush()
    events.emit(session, "note.signed", clinic.tina, patient_id=clinic.a2, note_id=plain.id, note_type="integration")
    assert count(session, DoseAdjustment, DoseAdjustment.kind == "proposal") == 1
    with pytest.raises(ValidationError) as exc:
        events.emit(session, "note.signed", clinic.tina, patient_id=clinic.a2, note_id=bad.id,
                    note_type="integration")
    assert "proposal_interval_days" in exc.value.errors


# --- prescriber: queue order and decisions ------------------------------------------------------------


def test_queue_orders_hold_then_decrease_then_the_rest_then_age(session, clinic):
    older = suggestions.propose(session, clinic.tina, clinic.a2, dose_mg=200, reason="No change in 6 weeks.")
    older.sent_at = datetime.now(timezone.utc) - timedelta(days=3)
    session.add(older)
    newer = suggestions.propose(session, clinic.tina, clinic.a2, interval_days=14, reason="Doing well.")
    decrease = suggestions.propose(session, clinic.tina, clinic.a2, dose_mg=100, reason="Too dissociative.")
    hold_patient = suggestions.propose(session, clinic.tina, clinic.a1, dose_mg=200, reason="Wants more.")
    session.flush()
    add_dose(session, clinic, clinic.a1, 2, adverse_events="fainting")
    queue = suggestions.review_queue(session, clinic.paul)
    assert [i.adjustment.id for i in queue] == [hold_patient.id, decrease.id, older.id, newer.id]
    assert queue[0].urgency_label == "Urgent · HOLD" and queue[0].hold_flags == ["serious_adverse_event"]
    assert [i.urgency for i in queue] == [0, 1, 2, 2]
    assert audit_actions(session)[-1] == "review_queue.read"


def test_approve_creates_the_next_plan_version_naming_prescriber_and_item(session, clinic):
    healthy(session, clinic, clinic.a1)
    row = suggestions.propose(session, clinic.tina, clinic.a1, dose_mg=200, reason="Partial effect only.")
    before = plans.current_plan(session, clinic.a1)
    decided = suggestions.decide(session, clinic.paul, row.id, "approve", "Tolerating well; go to 200 mg.",
                                 expected_version=row.version)
    plan = plans.current_plan(session, clinic.a1)
    assert plan.version_number == before.version_number + 1
    assert (plan.dose_mg, plan.interval_days, plan.status, plan.formulation) == (200, 7, "active", before.formulation)
    assert (plan.approved_by_id, plan.adjustment_id, plan.rationale) == \
        (clinic.paul.id, row.id, "Tolerating well; go to 200 mg.")
    assert (decided.status, decided.decided_by_id, decided.resulting_plan_id) == ("approved", clinic.paul.id, plan.id)
    assert (decided.decided_dose_mg, decided.decided_interval_days) == (200, 7)
    assert suggestions.latest_decision(session, clinic.tina, clinic.a1).id == row.id
    acts = audit_actions(session, clinic.a1)
    assert "adjustment.approve" in acts and "plan.version" in acts
    # the engine re-ran on the new plan: too few doses of 200 mg yet
    assert suggestions.latest_suggestion(session, clinic.tina, clinic.a1).action == "insufficient_data"
    # deciding again: a conflict, nothing changes
    with pytest.raises(ConflictError):
        suggestions.decide(session, clinic.paul, row.id, "reject", "Changed my mind.")


@pytest.mark.parametrize("action, dose, interval, expected", [
    ("increase", 200.0, None, (200, 7)),      # an item without an interval keeps the plan's
    ("space_out", None, 14, (150, 14)),       # an item without a dose keeps the plan's
])
def test_approving_an_item_that_leaves_a_value_out_keeps_the_plans_value(session, clinic, action, dose, interval,
                                                                         expected):
    """Services always fill both values; an older or imported row may not. Approving it must
    change the plan as it says, not crash and not record an approval that changed nothing."""
    before = plans.current_plan(session, clinic.a1)
    row = DoseAdjustment(patient_id=clinic.a1, kind="proposal", status="pending", plan_id=before.id, action=action,
                         proposed_dose_mg=dose, proposed_interval_days=interval, flags=[],
                         reasons=[{"code": "proposal", "text": "hand-made"}], created_by_id=clinic.tina.id,
                         sent_by_id=clinic.tina.id)
    session.add(row)
    session.flush()
    decided = suggestions.decide(session, clinic.paul, row.id, "approve", "As asked.", expected_version=row.version,
                                 override=True, override_rationale="Seen in clinic today; well.")
    plan = plans.current_plan(session, clinic.a1)
    assert plan.version_number == before.version_number + 1 and decided.resulting_plan_id == plan.id
    assert (plan.dose_mg, plan.interval_days) == expected
    assert (decided.decided_dose_mg, decided.decided_interval_days) == expected


def test_modify_and_reject_need_a_rationale(session, clinic):
    healthy(session, clinic, clinic.a1)
    row = suggestions.propose(session, clinic.tina, clinic.a1, dose_mg=250, reason="Strong anxiety persists.")
    plans_before = count(session, TreatmentPlan)
    for kwargs, field in ((dict(decision="modify", rationale="", dose_mg=200), "rationale"),
                          (dict(decision="modify", rationale="Smaller step."), "dose_mg"),
                          (dict(decision="modify", rationale="x", dose_mg=150, interval_days=7), "dose_mg"),
                          (dict(decision="reject", rationale="  "), "rationale"),
                          (dict(decision="maybe"), "decision")):
        with pytest.raises(ValidationError) as exc:
            suggestions.decide(session, clinic.paul, row.id, **kwargs)
        assert field in exc.value.errors
    session.refresh(row)
    assert row.status == "pending" and count(session, TreatmentPlan) == plans_before
    decided = suggestions.decide(session, clinic.paul, row.id, "modify", "One step at a time.", dose_mg=200)
    plan = plans.current_plan(session, clinic.a1)
    assert (decided.status, plan.dose_mg, plan.adjustment_id, plan.rationale) == \
        ("modified", 200, row.id, "One step at a time.")
    other = suggestions.propose(session, clinic.tina, clinic.a1, interval_days=3, reason="Wants more sessions.")
    rejected = suggestions.decide(session, clinic.paul, other.id, "reject", "Weekly is enough for now.")
    assert rejected.status == "rejected" and rejected.resulting_plan_id is None
    assert plans.current_plan(session, clinic.a1).id == plan.id


def test_approving_a_hold_holds_the_plan_and_prescriber_can_end_it(session, clinic):
    non_responder(session, clinic, clinic.a1)
    add_dose(session, clinic, clinic.a1, 0, adverse_events="seizure")
    row = suggestions.run_for_patient(session, clinic.tina, clinic.a1)
    assert (row.action, row.status, row.urgent, row.sent_by_id) == ("hold", "pending", True, None)
    with pytest.raises(ConflictError):  # already in the queue: nothing to send
        suggestions.send_to_prescriber(session, clinic.tina, row.id, row.version)
    suggestions.decide(session, clinic.paul, row.id, "approve", "Hold until neurology review.")
    plan = plans.current_plan(session, clinic.a1)
    assert (plan.status, plan.dose_mg, plan.adjustment_id) == ("held", 150, row.id)
    ended = suggestions.set_plan_status(session, clinic.paul, clinic.a1, "ended", "Treatment stopped.")
    assert ended.status == "ended" and ended.approved_by_id == clinic.paul.id
    with pytest.raises(ValidationError):
        suggestions.set_plan_status(session, clinic.paul, clinic.a1, "active", "Resume.")


def test_approving_an_item_made_for_an_older_plan_is_a_conflict(session, clinic):
    non_responder(session, clinic, clinic.a1)
    sugg = suggestions.run_for_patient(session, clinic.tina, clinic.a1)
    suggestions.send_to_prescriber(session, clinic.tina, sugg.id)
    first = suggestions.propose(session, clinic.tina, clinic.a1, dose_mg=200, reason="More effect.")
    prop = suggestions.propose(session, clinic.tina, clinic.a1, interval_days=14, reason="Fewer doses.")
    suggestions.decide(session, clinic.paul, prop.id, "approve", "Fewer doses, fine.")
    assert plans.current_plan(session, clinic.a1).rationale == "Fewer doses, fine."
    with pytest.raises(ConflictError, match="The plan changed since this item was made"):
        suggestions.decide(session, clinic.paul, first.id, "approve", "Yes.")
    # the new plan version re-ran the rules: the sent engine suggestion was superseded
    session.refresh(sugg)
    assert sugg.status == "superseded"
    with pytest.raises(ConflictError, match="superseded by a newer evaluation"):
        suggestions.decide(session, clinic.paul, sugg.id, "approve", "Yes.")
    suggestions.decide(session, clinic.paul, first.id, "modify", "Increase, keep 14 days.", dose_mg=200,
                       interval_days=14, override=True, override_rationale="Two doses at 14 days suffice here.")
    plan = plans.current_plan(session, clinic.a1)
    assert (plan.dose_mg, plan.interval_days) == (200, 14)


def test_a_therapist_can_never_change_a_plan(session, clinic):
    row = suggestions.propose(session, clinic.tina, clinic.a1, dose_mg=200, reason="x")
    versions = count(session, TreatmentPlan)
    with pytest.raises(PermissionDenied):
        suggestions.decide(session, clinic.tina, row.id, "approve", "I approve my own proposal.")
    with pytest.raises(PermissionDenied):
        suggestions.set_plan_status(session, clinic.tina, clinic.a1, "held", "Hold it.")
    with pytest.raises(PermissionDenied):
        plans.new_plan_version(session, clinic.tina, clinic.a1, plans.PlanInput("odt", 200, 7), "Self-service.")
    with pytest.raises(PermissionDenied):
        suggestions.decide(session, clinic.pia, row.id, "approve", "Not my patient.")
    with pytest.raises(PermissionDenied):
        suggestions.decide(session, clinic.ada, row.id, "approve", "Admin.")
    session.refresh(row)
    assert row.status == "pending" and count(session, TreatmentPlan) == versions


# --- two prescribers at once ------------------------------------------------------------------------


def _pending_item(engine, clinic) -> tuple[int, int]:
    with session_scope(engine) as s:
        healthy(s, clinic, clinic.a1)
        row = suggestions.propose(s, clinic.tina, clinic.a1, dose_mg=200, reason="More effect needed.")
        return row.id, row.version


def test_stale_version_from_the_page_is_a_conflict(engine, clinic):
    item, version = _pending_item(engine, clinic)
    with session_scope(engine) as s:
        suggestions.decide(s, clinic.paul, item, "reject", "Not yet.", expected_version=version)
    with pytest.raises(ConflictError):
        with session_scope(engine) as s:
            suggestions.decide(s, clinic.paul, item, "approve", "Yes.", expected_version=version)
    with Session(engine) as s:
        assert s.get(DoseAdjustment, item).status == "rejected"
        assert s.exec(select(func.count()).select_from(TreatmentPlan)
                      .where(TreatmentPlan.patient_id == clinic.a1)).one() == 1


def test_second_decider_with_an_already_loaded_row_loses(engine, clinic):
    """B loaded the item (version 1) before A decided: B's UPDATE finds a newer version."""
    item, _ = _pending_item(engine, clinic)
    b = Session(engine, expire_on_commit=False)
    try:
        loaded = b.get(DoseAdjustment, item)
        assert loaded.status == "pending"
        b.commit()  # B's read transaction ends; its copy of the row stays in memory
        with session_scope(engine) as a:
            suggestions.decide(a, clinic.paul, item, "approve", "Go ahead.")
        with pytest.raises(ConflictError):
            suggestions.decide(b, clinic.paul, item, "reject", "No.")
        b.rollback()
    finally:
        b.close()
    with Session(engine) as s:
        row = s.get(DoseAdjustment, item)
        assert row.status == "approved" and row.decision_rationale == "Go ahead."
        assert s.exec(select(func.count()).select_from(TreatmentPlan)
                      .where(TreatmentPlan.patient_id == clinic.a1)).one() == 2


def test_two_prescribers_deciding_at_once_exactly_one_wins(engine, clinic):
    """Two threads, two sessions, both holding version 1, decide at the same moment."""
    from kapnotes import auth
    from kapnotes.models import CareTeamMember, Patient

    item, version = _pending_item(engine, clinic)
    with session_scope(engine) as s:  # a second prescriber on team A
        other = actor_of(auth.create_user(s, None, "pat", "prescriber", "Pat Price", "correct-horse-battery"))
        team_id = s.get(Patient, clinic.a1).care_team_id
        s.add(CareTeamMember(team_id=team_id, user_id=other.id))
    barrier = threading.Barrier(2, timeout=30)
    outcomes: dict[str, str] = {}

    def decide(actor, decision, rationale):
        s = Session(engine, expire_on_commit=False)
        try:
            s.get(DoseAdjustment, item)
            s.commit()
            barrier.wait()
            suggestions.decide(s, actor, item, decision, rationale, expected_version=version)
            s.commit()
            outcomes[actor.username] = "won"
        except ConflictError:
            s.rollback()
            outcomes[actor.username] = "conflict"
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            s.rollback()
            outcomes[actor.username] = f"error {type(exc).__name__}: {exc}"
        finally:
            s.close()

    run_threads(partial(decide, clinic.paul, "approve", "Approve."), partial(decide, other, "reject", "Reject."))
    assert sorted(outcomes.values()) == ["conflict", "won"], outcomes
    winner = next(u for u, o in outcomes.items() if o == "won")
    with Session(engine) as s:
        row = s.get(DoseAdjustment, item)
        assert row.status == ("approved" if winner == "paul" else "rejected")
        plan_count = s.exec(select(func.count()).select_from(TreatmentPlan)
                            .where(TreatmentPlan.patient_id == clinic.a1)).one()
        assert plan_count == (2 if winner == "paul" else 1)
        decisions = s.exec(select(func.count()).select_from(AuditEvent)
                           .where(col(AuditEvent.action).in_(["adjustment.approve", "adjustment.reject"]))).one()
        assert decisions == 1


def test_queue_data_batches_last_doses_and_scores_for_the_prescribers_patients(session, clinic):
    for i in range(7):
        add_dose(session, clinic, clinic.a1, i)
    add_dose(session, clinic, clinic.a2, 3, mg=100)
    add_assessment(session, clinic, clinic.a1, "GAD-7", 10, total=12)
    data = suggestions.queue_data(session, clinic.paul, [clinic.a1, clinic.a2])
    a1_doses, a1_scores = data[clinic.a1]
    assert len(a1_doses) == 5 and a1_doses[0].taken_at > a1_doses[-1].taken_at
    assert [(a.instrument, a.total) for a in a1_scores] == [("GAD-7", 12)]
    assert [d.dose_mg for d in data[clinic.a2][0]] == [100] and data[clinic.a2][1] == []
    with pytest.raises(PermissionDenied):
        suggestions.queue_data(session, clinic.paul, [clinic.b1])
    with pytest.raises(PermissionDenied):
        suggestions.queue_data(session, clinic.tina, [clinic.a1])
    plans_now = suggestions.current_plans(session, [clinic.a1, clinic.b1])
    assert {pid: p.version_number for pid, p in plans_now.items()} == {clinic.a1: 1, clinic.b1: 1}


def test_signing_an_integration_note_with_a_proposal_puts_it_in_the_queue(engine, clinic):
    """Through the notes service: sign → note.signed → a pending proposal linked to the note."""
    from kapnotes import notes

    day = datetime.now(timezone.utc).date() - timedelta(days=1)
    with session_scope(engine) as s:
        note = notes.create_draft(s, clinic.tina, clinic.a1, "integration", session_date=day)
        signed = notes.sign(s, clinic.tina, note.id, note.version, fields={
            "client_account": "Calmer mornings.", "risk_check": "Denies.", "plan": "Continue.",
            "proposal_dose_mg": 200, "proposal_reason": "Effect fades by day 3."})
    with session_scope(engine) as s:
        queue = suggestions.review_queue(s, clinic.paul)
        assert [(i.adjustment.source_note_id, i.adjustment.proposed_dose_mg, i.adjustment.therapist_note)
                for i in queue] == [(signed.id, 200, "Effect fades by day 3.")]


def test_concurrent_engine_runs_leave_one_open_suggestion(engine, clinic):
    with session_scope(engine) as s:
        non_responder(s, clinic, clinic.a1)
    def run():
        with Session(engine, expire_on_commit=False) as s:  # closing rolls back what was not committed
            suggestions.run_for_patient(s, clinic.tina, clinic.a1)
            s.commit()

    errors = together(run, run)
    assert errors == []
    with Session(engine) as s:
        rows = s.exec(select(DoseAdjustment).where(DoseAdjustment.patient_id == clinic.a1)).all()
        assert [(r.status, r.action) for r in rows] == [("open", "increase")]


def test_a_confirmed_dose_above_the_plan_holds_at_once_and_flags_the_patient(session, clinic):
    """Issue 13: 900 mg on a 150 mg plan asks for confirmation, and once recorded the engine holds:
    the hold reaches the prescriber's queue by itself and the patient carries the flag everywhere."""
    healthy(session, clinic, clinic.a1)
    entry = dose_service.DoseInput(taken_at=datetime.now(timezone.utc) - timedelta(minutes=30), dose_mg=900,
                                   formulation="odt", bp_systolic_pre=120, bp_diastolic_pre=80)
    with pytest.raises(ValidationError) as refused:
        dose_service.add_dose(session, clinic.tina, clinic.a1, entry)
    assert "dose_mg" in refused.value.errors
    assert not session.exec(select(DoseAdjustment).where(DoseAdjustment.action == "hold")).all()
    dose_service.add_dose(session, clinic.tina, clinic.a1, entry, confirm_unusual_dose=True)
    hold = session.exec(select(DoseAdjustment).where(DoseAdjustment.patient_id == clinic.a1,
                                                     DoseAdjustment.status == "pending")).one()
    assert (hold.action, hold.urgent, hold.sent_by_id) == ("hold", True, None)
    assert "dose_above_plan" in hold.flags and hold.proposed_dose_mg == 150
    assert any("900 mg" in r["text"] for r in hold.reasons if r["code"] == "dose_above_plan")
    assert "dose_above_plan" in patients.safety_flags(session, [clinic.a1])[clinic.a1]
