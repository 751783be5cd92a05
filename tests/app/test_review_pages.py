"""AppTest of the review pages: proposals (therapist), review queue (prescriber), protocol (admin),
and the dashboard's suggestion panel."""

from __future__ import annotations

from datetime import date, timedelta

from sqlmodel import Session, func, select

from kapnotes.db import session_scope
from kapnotes.dosing import plans, suggestions
from kapnotes.dosing import protocol_settings as protocol
from kapnotes.models import AuditEvent, DoseAdjustment, DoseEntry, TreatmentPlan
from kapnotes.timeutil import utcnow
from tests.helpers.apptest import run_page
from tests.helpers.records import healthy as _healthy
from tests.helpers.uitext import rendered_text as _rendered


def rendered_text(at) -> str:
    """What a reader sees: Markdown escapes (backslashes) removed."""
    return _rendered(at).replace("\\", "")


def healthy(engine, clinic, *pids):
    """A record on which no safety rule fires: an increase on the steps needs no override."""
    with session_scope(engine) as s:
        for pid in pids:
            _healthy(s, clinic, pid)


def button(at, label):
    return next(b for b in at.button if b.label == label)


def decide(at, item, decision: str | None = None, rationale: str | None = None):
    """On the review queue: choose ``decision`` and write ``rationale`` for ``item`` (None: leave
    it as it is), press "Record decision" and run the page."""
    if decision is not None:
        at.radio(key=f"q{item}_decision").set_value(decision)
    if rationale is not None:
        at.text_area(key=f"q{item}_rationale").input(rationale)
    button(at, "Record decision").click()
    return at.run()


def non_responder(engine, clinic, pid):
    """A record on which no safety rule fires and GAD-7 barely moves: the engine suggests an increase."""
    healthy(engine, clinic, pid)
    with session_scope(engine) as s:
        return suggestions.run_for_patient(s, clinic.tina, pid).id


def test_therapist_sends_the_latest_suggestion(engine, clinic):
    sid = non_responder(engine, clinic, clinic.a1)
    at = run_page("proposals.py", "tina", "A-001")
    assert not at.exception, at.exception
    text = rendered_text(at)
    assert "Increase: 200 mg every 7 days" in text
    assert "GAD-7 15 on " in text and "→ 14 on " in text and protocol.load_default().sha256[:12] in text
    at.text_input(key="send_note").input("Client is keen; tolerating well.")
    button(at, "Send to prescriber").click()
    at.run()
    assert not at.exception, at.exception
    assert "Suggestion sent to the prescriber." in rendered_text(at)
    with Session(engine) as s:
        row = s.get(DoseAdjustment, sid)
        assert (row.status, row.sent_by_id, row.therapist_note) == ("pending", clinic.tina.id,
                                                                     "Client is keen; tolerating well.")


def test_therapist_writes_a_proposal_and_bad_input_writes_nothing(engine, clinic):
    at = run_page("proposals.py", "tina", "A-001")
    assert not at.exception, at.exception
    at.number_input(key="prop_dose").set_value(200.0)
    button(at, "Send proposal to prescriber").click()
    at.run()
    assert "Give the reason for the proposal." in rendered_text(at)
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(DoseAdjustment)).one() == 0
    at.number_input(key="prop_dose").set_value(200.0)
    at.text_area(key="prop_reason").input("Anxiety still **high** <b>after</b> 6 weeks.")
    button(at, "Send proposal to prescriber").click()
    at.run()
    assert not at.exception, at.exception
    text = rendered_text(at)
    assert "Proposal sent to the prescriber." in text
    assert "Anxiety still **high** <b>after</b> 6 weeks." in text  # shown literally
    with Session(engine) as s:
        row = s.exec(select(DoseAdjustment)).one()
        assert (row.kind, row.status, row.proposed_dose_mg, row.proposed_interval_days) == (
            "proposal", "pending", 200, 7)


def test_prescriber_sees_no_propose_form_and_can_hold_the_plan(engine, clinic):
    at = run_page("proposals.py", "paul", "A-001")
    assert not at.exception, at.exception
    assert "Send proposal to prescriber" not in [b.label for b in at.button]
    at.radio(key="plan_status_choice").set_value("Hold")
    button(at, "Save plan change").click()
    at.run()
    assert "Give the reason for setting the plan to held." in rendered_text(at)
    at.text_area(key="plan_status_rationale").input("Surgery next week.")
    button(at, "Save plan change").click()
    at.run()
    assert not at.exception, at.exception
    with Session(engine) as s:
        plan = plans.current_plan(s, clinic.a1)
        assert (plan.status, plan.approved_by_id, plan.rationale) == ("held", clinic.paul.id, "Surgery next week.")


def _proposal(engine, clinic, pid=None, **kw):
    with session_scope(engine) as s:
        return suggestions.propose(s, clinic.tina, pid or clinic.a1, reason=kw.pop("reason", "Needs more."),
                                   **kw).id


def test_queue_approve_with_rationale_creates_the_plan_version(engine, clinic):
    healthy(engine, clinic, clinic.a1)
    item = _proposal(engine, clinic, dose_mg=200)
    at = run_page("review_queue.py", "paul")
    assert not at.exception, at.exception
    text = rendered_text(at)
    assert "Alice Able" in text and "Increase: 200 mg every 7 days" in text and "Needs more." in text
    assert at.radio(key=f"q{item}_decision").value is None  # nothing preselected
    decide(at, item, "Approve", "Well tolerated; step up.")
    assert not at.exception, at.exception
    assert "Nothing waiting for review" in rendered_text(at)
    with Session(engine) as s:
        plan = plans.current_plan(s, clinic.a1)
        assert (plan.version_number, plan.dose_mg, plan.approved_by_id, plan.adjustment_id, plan.rationale) == \
            (2, 200, clinic.paul.id, item, "Well tolerated; step up.")
        assert s.get(DoseAdjustment, item).status == "approved"


def test_queue_reject_needs_rationale_and_modify_uses_the_entered_values(engine, clinic):
    healthy(engine, clinic, clinic.a1, clinic.a2)
    first = _proposal(engine, clinic, dose_mg=250)
    second = _proposal(engine, clinic, clinic.a2, interval_days=3)
    at = run_page("review_queue.py", "paul")
    decide(at, first, "Reject")
    text = rendered_text(at)
    assert "your decision was not saved" in text and "Give the reason for rejecting." in text
    at.radio(key=f"q{first}_decision").set_value("Modify").run()
    at.number_input(key=f"q{first}_dose").set_value(200.0)
    decide(at, first, rationale="One step at a time.")
    assert not at.exception, at.exception
    with Session(engine) as s:
        assert s.get(DoseAdjustment, first).status == "modified"
        assert plans.current_plan(s, clinic.a1).dose_mg == 200
        assert s.get(DoseAdjustment, second).status == "pending"
    assert "Aaron Ames" in rendered_text(at) and "Alice Able" not in rendered_text(at)


def test_queue_conflict_when_another_prescriber_decided_first(engine, clinic):
    item = _proposal(engine, clinic, dose_mg=200)
    at = run_page("review_queue.py", "paul")
    with session_scope(engine) as s:  # someone else decides while the page is open
        suggestions.decide(s, clinic.paul, item, "reject", "Not now.")
    decide(at, item, "Reject", "Not now either.")
    assert not at.exception, at.exception
    text = rendered_text(at)
    assert "your decision was not saved" in text and "changed by someone else" in text
    with Session(engine) as s:
        assert s.get(DoseAdjustment, item).status == "rejected"
        assert s.exec(select(func.count()).select_from(TreatmentPlan)
                      .where(TreatmentPlan.patient_id == clinic.a1)).one() == 1


def test_queue_marks_hold_flagged_patients_first(engine, clinic):
    _proposal(engine, clinic, clinic.a2, dose_mg=200)  # older, routine
    _proposal(engine, clinic, clinic.a1, dose_mg=200)  # newer, but the patient has a hold flag
    with session_scope(engine) as s:
        s.add(DoseEntry(patient_id=clinic.a1, taken_at=utcnow() - timedelta(days=1), dose_mg=150, formulation="odt",
                        bp_systolic_post=186, bp_diastolic_post=100, entered_by_id=clinic.tina.id))
    at = run_page("review_queue.py", "paul")
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["Patient"].str.split(" \\(").str[0]) == ["Alice Able", "Aaron Ames"]
    assert list(table["Urgency"]) == ["Urgent · HOLD", ""] and table["Safety flags"][0] == "BP ≥ hold threshold"
    heads = [m.value for m in at.markdown if "Alice Able" in m.value or "Aaron Ames" in m.value]
    assert len(heads) == 1  # only the open item has a form: the most urgent
    assert "HOLD" in heads[0] and "Alice Able" in heads[0] and "BP ≥ hold threshold" in heads[0]


def test_dashboard_panel_shows_suggestion_reasons_and_latest_decision(engine, clinic):
    non_responder(engine, clinic, clinic.a1)
    item = _proposal(engine, clinic, interval_days=14, reason="Doing well.")
    with session_scope(engine) as s:
        suggestions.decide(s, clinic.paul, item, "reject", "Keep weekly <i>for now</i>.")
    at = run_page("dashboard.py", "tina", "A-001")
    assert not at.exception, at.exception
    text = rendered_text(at)
    assert "Dose suggestion" in text and "Increase: 200 mg every 7 days" in text
    assert "below the 25 % threshold" in text
    assert "Rejected" in text and "Keep weekly <i>for now</i>." in text


def test_protocol_admin_edits_the_protocol_as_text_never_a_server_path(engine, clinic, tmp_path):
    """Issue 20: pasted text is validated (a bad key refused by name, nothing written), good text
    is kept in the database and audited with its hash; no path input, no server file named."""
    default = protocol.load_default()
    at = run_page("protocol_admin.py", "ada")
    assert not at.exception, at.exception
    text = rendered_text(at)
    assert default.name in text and default.sha256 in text
    assert len(at.text_input) == 0 and not any("path" in t.label.lower() for t in at.text_area)
    assert str(protocol.DEFAULT_PATH) not in text and "/etc/" not in text
    (area,) = at.text_area
    assert area.value == protocol.DEFAULT_PATH.read_text()  # a starting point to edit
    area.input(area.value.replace("plan_window_days = 28", "plan_windw_days = 28"))
    button(at, "Use this protocol").click()
    at.run()
    assert not at.exception, at.exception
    text = rendered_text(at).replace("**", "").replace("\\", "")
    assert "Nothing was changed" in text and "Windows.plan windw days" in text
    with Session(engine) as s:
        assert protocol.in_force(s).sha256 == default.sha256 and protocol.clinic_text(s) is None
    good = protocol.DEFAULT_PATH.read_text().replace('name = "KAPNotes default protocol, version 2"',
                                                     'name = "Clinic protocol v2"')
    at.text_area[0].input(good)
    button(at, "Use this protocol").click()
    at.run()
    assert not at.exception, at.exception
    assert "Now in force: Clinic protocol v2" in rendered_text(at)
    with Session(engine) as s:
        proto = protocol.in_force(s)
        assert proto.name == "Clinic protocol v2" and protocol.clinic_text(s) == good
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "protocol.set")).first()
        assert event is not None and proto.sha256 in event.detail
    # a server path typed as "text" is just invalid TOML: nothing is read from the disk
    secret = tmp_path / "secret.toml"
    secret.write_text('token = "x"\n')
    at.text_area[0].input(str(secret))
    button(at, "Validate").click()
    at.run()
    text = rendered_text(at)
    assert "cannot be used" in text and "token" not in text


def test_a_long_queue_is_one_table_and_one_open_item_most_urgent_first(engine, clinic):
    """After a holiday: 13 pending items. The table lists all of them, most urgent first (the
    hold, then the oldest); only the open item has a decision form; another item is opened
    from the picker, and once it is decided the most urgent one is open again."""
    with session_scope(engine) as s:
        plan_ids = {pid: s.exec(select(TreatmentPlan.id).where(TreatmentPlan.patient_id == pid)).first()
                    for pid in (clinic.a1, clinic.a2)}
        ids = []
        for i in range(13):
            pid = clinic.a1 if i % 2 else clinic.a2
            hold = i == 12  # the newest item is a hold: it must still come first
            adj = DoseAdjustment(patient_id=pid, kind="proposal", status="pending", plan_id=plan_ids[pid],
                                 action="hold" if hold else "increase", proposed_dose_mg=None if hold else 200,
                                 proposed_interval_days=None if hold else 7,
                                 flags=["suicidality"] if hold else [],
                                 reasons=[{"code": "proposal", "text": f"reason {i:02d}"}],
                                 created_by_id=clinic.tina.id, sent_by_id=clinic.tina.id,
                                 sent_at=utcnow() - timedelta(hours=24 - i))
            s.add(adj)
            s.flush()
            ids.append(adj.id)
    at = run_page("review_queue.py", "paul")
    assert not at.exception
    assert "13 items waiting · 1 urgent" in rendered_text(at)
    table = at.dataframe[0].value
    assert list(table["Item"]) == list(range(1, 14))  # positions in the queue, never record ids
    assert table["Urgency"][0] == "Urgent · HOLD" and table["Safety flags"][0] == "PHQ-9 item 9 > 0"
    assert len([b for b in at.button if b.label == "Record decision"]) == 1
    text = rendered_text(at)
    assert "reason 12" in text and "reason 00" not in text  # the hold is open, the others are rows
    at.selectbox(key="queue_item").set_value(ids[5])
    at.run()
    text = rendered_text(at)
    assert "reason 05" in text and "reason 12" not in text
    decide(at, ids[5], "Reject", "Not now.")
    assert not at.exception, at.exception
    assert "12 items waiting" in rendered_text(at)
    assert at.selectbox(key="queue_item").value == ids[12]  # back to the most urgent
    with Session(engine) as s:
        assert s.get(DoseAdjustment, ids[5]).status == "rejected"


# --- the loop and decisions (issue 13) ------------------------------------------------------------


def _dose_now(engine, clinic, pid, **kw) -> int:
    """A dose through the dose service (which re-runs the rules), taken a few minutes ago."""
    from kapnotes import doses as dose_service

    with session_scope(engine) as s:
        return dose_service.add_dose(s, clinic.tina, pid, dose_service.DoseInput(
            taken_at=utcnow() - timedelta(minutes=5), dose_mg=150, formulation="odt", nausea=0, **kw)).id


def test_a_hold_raised_by_a_new_dose_is_in_the_queue_without_forwarding_and_leaves_when_superseded(engine, clinic):
    healthy(engine, clinic, clinic.a1)
    dose = _dose_now(engine, clinic, clinic.a1, bp_systolic_pre=190, bp_diastolic_pre=115)
    with Session(engine) as s:
        hold = s.exec(select(DoseAdjustment).where(DoseAdjustment.status == "pending")).one()
        assert (hold.action, hold.kind, hold.sent_by_id, hold.urgent) == ("hold", "suggestion", None, True)
    at = run_page("review_queue.py", "paul")
    assert not at.exception, at.exception
    text = rendered_text(at)
    assert "1 item waiting · 1 urgent" in text and "sent automatically by the rules engine" in text
    assert at.dataframe[0].value["Urgency"][0].startswith("Urgent")
    assert "Hold: keep 150 mg every 7 days" in text
    assert at.radio(key=f"q{hold.id}_decision").value is None  # nothing preselected
    assert "Every check the rules made" in text or not hold.checks
    assert "hypertension_severe" not in text and "not_evaluable" not in text  # words, not codes
    # a decision needs a choice and a rationale
    decide(at, hold.id)
    text = rendered_text(at)
    assert "Choose a decision: approve, modify or reject." in text
    with Session(engine) as s:
        assert s.get(DoseAdjustment, hold.id).status == "pending"
    # voiding the reading re-runs the rules: the hold is superseded and leaves the queue
    from kapnotes import doses as dose_service
    with session_scope(engine) as s:
        dose_service.void_dose(s, clinic.tina, dose, "Wrong patient.")
    at = run_page("review_queue.py", "paul")
    assert not at.exception, at.exception
    assert "Nothing waiting for review" in rendered_text(at)
    with Session(engine) as s:
        assert s.get(DoseAdjustment, hold.id).status == "superseded"


def test_approving_an_increase_for_a_flagged_patient_needs_the_override_and_its_rationale(engine, clinic):
    healthy(engine, clinic, clinic.a1)
    from kapnotes import assessments
    with session_scope(engine) as s:
        assessments.record_assessment(s, clinic.tina, clinic.a1, "PHQ-9", date.today() - timedelta(days=1),
                                      items=[1, 1, 1, 1, 1, 1, 1, 1, 1])
    item = _proposal(engine, clinic, dose_mg=200, reason="Wants more effect.")
    at = run_page("review_queue.py", "paul")
    assert not at.exception, at.exception
    at.selectbox(key="queue_item").set_value(item).run()  # the engine's hold is first: open the proposal
    assert "Wants more effect." in rendered_text(at)
    assert not [c for c in at.checkbox if c.label == "Override the safety check"]
    at.radio(key=f"q{item}_decision").set_value("Approve").run()
    text = rendered_text(at)
    assert "needs an explicit override" in text and "PHQ-9 item 9 above 0" in text
    decide(at, item, rationale="Patient asks for more.")
    assert not at.exception, at.exception
    assert "Tick “Override the safety check” and give its rationale." in rendered_text(at)
    with Session(engine) as s:
        assert s.get(DoseAdjustment, item).status == "pending" and plans.current_plan(s, clinic.a1).version_number == 1
    at.checkbox(key=f"q{item}_override").check()
    decide(at, item)
    assert "Give the rationale for the override." in rendered_text(at)
    at.checkbox(key=f"q{item}_override").check()
    at.text_area(key=f"q{item}_override_rationale").input("Seen today; passive thoughts only; safety plan.")
    decide(at, item)
    assert not at.exception, at.exception
    with Session(engine) as s:
        row = s.get(DoseAdjustment, item)
        assert row.status == "approved" and "suicidality" in row.override_rules
        plan = plans.current_plan(s, clinic.a1)
        assert plan.dose_mg == 200 and "Override (PHQ-9 item 9 above 0" in plan.rationale


def test_therapist_sees_an_auto_sent_hold_and_a_prescriber_takes_an_increase_to_review(engine, clinic):
    healthy(engine, clinic, clinic.a1)
    with session_scope(engine) as s:
        inc = suggestions.run_for_patient(s, clinic.tina, clinic.a1)
        assert (inc.action, inc.status) == ("increase", "open")
    at = run_page("proposals.py", "paul", "A-001")
    assert not at.exception, at.exception
    button(at, "Take to review").click()
    at.run()
    assert "Suggestion put in your review queue." in rendered_text(at)
    with Session(engine) as s:
        assert s.get(DoseAdjustment, inc.id).status == "pending"
    _dose_now(engine, clinic, clinic.a1, bp_systolic_post=190, bp_diastolic_post=115)
    at = run_page("proposals.py", "tina", "A-001")
    assert not at.exception, at.exception
    text = rendered_text(at)
    assert "sent automatically by the rules engine" in text and "Send to prescriber" not in [b.label for b in at.button]


def test_open_patient_opens_the_patients_dashboard(engine, clinic):
    """The queue's "Open patient" selects the item's patient and opens the dashboard (the app with
    its navigation, as a browser runs it)."""
    with session_scope(engine) as s:
        suggestions.propose(s, clinic.tina, clinic.a2, dose_mg=200, reason="Asks for more effect.")
    at = run_page("app", "paul")
    at.switch_page("pages/review_queue.py").run()
    assert not at.exception, at.exception
    assert "Treatment plan" not in rendered_text(at)
    button(at, "Open patient").click().run()
    assert not at.exception, at.exception
    text = rendered_text(at)
    assert at.session_state["patient_id"] == clinic.a2
    assert "Aaron Ames" in text and "Treatment plan" in text and "Record decision" not in text
