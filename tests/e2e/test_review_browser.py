"""Browser: a therapist proposes a dose change, the prescriber approves it with a rationale,
and the new plan version and the dashboard's decision show up for both; a hold raised by a new
dose reaches the prescriber's queue by itself, and a decision needs a choice and a rationale.

Every wait is for this test's own item (its number or a rationale typed here), never for text
an older demo decision could also show."""

from __future__ import annotations

import re
import uuid
from contextlib import contextmanager
from datetime import timedelta

from playwright.sync_api import expect
from sqlmodel import col, select

from kapnotes.actor import actor_of
from kapnotes.db import make_engine, session_scope
from kapnotes.dosing import plans, protocol_settings, rules, suggestions
from kapnotes.models import DoseAdjustment, Patient, User
from tests.helpers.browser import nav as _nav
from tests.helpers.browser import open_patient as _open_patient
from tests.helpers.browser import sign_in, wait_idle

TOKEN = uuid.uuid4().hex[:8]
REASON = f"GAD-7 barely moved in six weeks at 150 mg; tolerating well ({TOKEN})."
RATIONALE = f"Agree: one step up, BP fine at the last visits ({TOKEN})."
HOLD_RATIONALE = f"Hold until the BP is rechecked in clinic ({TOKEN})."


def _item(page, number: int):
    """The open item's decision area (its container is keyed by the item)."""
    return page.locator(f".st-key-q{number}_item")


def _pick(page, pattern: str) -> None:
    """Open the queue item whose picker label matches (labels carry no record ids: the tests know
    their item's number from the database, and its decision area is keyed by it)."""
    page.get_by_role("combobox", name="Item to review").click()
    option = page.get_by_role("option", name=re.compile(pattern))
    expect(option).to_have_count(1, timeout=20000)
    option.click()
    wait_idle(page)


@contextmanager
def _db(db_url: str):
    """One unit of work on the server's database (the tests read what the app wrote)."""
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as s:
            yield s
    finally:
        engine.dispose()


def _patient_id(s, mrn: str) -> int:
    return s.exec(select(Patient.id).where(Patient.mrn == mrn)).one()


def _step_up(db_url: str, mrn: str) -> int:
    """The protocol's step above the patient's current plan (a proposal must change something)."""
    with _db(db_url) as s:
        return int(rules.step_above(protocol_settings.in_force(s), plans.current_plan(s, _patient_id(s, mrn)).dose_mg))


def _latest_pending(db_url: str, mrn: str) -> int:
    """The number of the patient's newest item waiting in the queue."""
    with _db(db_url) as s:
        return s.exec(select(DoseAdjustment.id).where(DoseAdjustment.patient_id == _patient_id(s, mrn),
                                                      DoseAdjustment.status == "pending")
                      .order_by(col(DoseAdjustment.id).desc())).first()


def _override_needed(db_url: str, number: int) -> bool:
    """What the service says this approval needs (the page shows the same before submit)."""
    with _db(db_url) as s:
        actor = actor_of(s.exec(select(User).where(User.username == "mokafor")).one())
        return suggestions.decision_requirements(s, actor, number, "approve").override_needed


def _choose(item, label: str) -> None:
    item.get_by_text(label, exact=True).click()
    wait_idle(item.page)


def _record(item) -> None:
    item.get_by_role("button", name="Record decision").click()
    wait_idle(item.page)


def _prescriber_queue(browser, base_url: str):
    """A new browser context signed in as the prescriber (mokafor), on the review queue: (context, page)."""
    ctx = browser.new_context()
    p = ctx.new_page()
    sign_in(p, base_url, "mokafor")
    expect(p.get_by_role("heading", name="Patients")).to_be_visible(timeout=20000)
    _nav(p, "Review queue")
    expect(p.get_by_role("heading", name="Review queue")).to_be_visible(timeout=20000)
    return ctx, p


def test_therapist_proposes_prescriber_approves_plan_and_dashboard_update(browser, app_server):
    # --- the therapist proposes ---------------------------------------------------------------
    ctx_t = browser.new_context()
    t = ctx_t.new_page()
    sign_in(t, app_server["url"], "tsato")
    _open_patient(t, "KAP-1001")
    _nav(t, "Suggestions and proposals")
    expect(t.get_by_role("heading", name="Propose a change")).to_be_visible(timeout=20000)
    current = t.get_by_text(re.compile(r"Current plan \(version \d+, active\)")).first.inner_text()
    version_before = int(re.search(r"version (\d+)", current).group(1))
    target = _step_up(app_server["db_url"], "KAP-1001")  # the demo's plan is whatever its history made it
    t.get_by_role("spinbutton", name="New dose (mg)").fill(str(target))
    t.get_by_role("textbox", name="Reason *").fill(REASON)
    t.get_by_role("button", name="Send proposal to prescriber").click()
    wait_idle(t)
    expect(t.get_by_text("Proposal sent to the prescriber.").first).to_be_visible(timeout=20000)
    expect(t.get_by_text(REASON).first).to_be_visible()

    # --- the prescriber approves with a rationale -------------------------------------------------
    ctx_p, p = _prescriber_queue(browser, app_server["url"])
    # the queue is one table; the new proposal (Jordan Ellis, KAP-1001) is opened from the picker
    expect(p.get_by_text("Urgent first", exact=False).first).to_be_visible(timeout=20000)
    _pick(p, rf"Jordan Ellis \(KAP-1001\) · Increase: {target} mg")
    number = _latest_pending(app_server["db_url"], "KAP-1001")
    item = _item(p, number)
    expect(item.get_by_text(REASON).first).to_be_visible(timeout=20000)
    expect(item.get_by_text(f"Increase: {target} mg every", exact=False).first).to_be_visible()
    _choose(item, "Approve")
    item.get_by_role("textbox", name="Rationale (required for every decision)").fill(RATIONALE)
    if _override_needed(app_server["db_url"], number):  # the demo record may flag him (e.g. no recent GAD-7)
        expect(item.get_by_text("This decision needs an explicit override", exact=False).first).to_be_visible(
            timeout=20000)
        item.get_by_text("Override the safety check", exact=True).click()
        item.get_by_role("textbox", name="Override rationale (required for an override)").fill(
            f"Reviewed in clinic ({TOKEN}).")
    _record(item)
    expect(p.get_by_text("Decision recorded: approved.").first).to_be_visible(timeout=20000)
    expect(p.get_by_text(REASON)).to_have_count(0)

    # the prescriber's dashboard: the new plan version and the decision
    _nav(p, "Patients")
    _open_patient(p, "KAP-1001")
    expect(p.get_by_text(re.compile(rf"Version {version_before + 1}\b")).first).to_be_visible(timeout=20000)
    expect(p.get_by_text(f"{target} mg", exact=False).first).to_be_visible()

    # --- the therapist sees the decision on the patient's dashboard ------------------------------
    _nav(t, "Patient dashboard")
    expect(t.get_by_role("heading", name="Dose suggestion")).to_be_visible(timeout=20000)
    # this item's own decision: its number and the rationale typed above (not an older demo decision)
    expect(t.get_by_text(re.compile(r"Approved.* by Michelle Okafor")).first).to_be_visible(timeout=20000)
    expect(t.get_by_text(RATIONALE).filter(visible=True).first).to_be_visible(timeout=20000)  # this run's own
    expect(t.get_by_text(re.compile(rf"Version {version_before + 1}\b")).first).to_be_visible()
    ctx_t.close()
    ctx_p.close()


def test_a_hold_from_a_new_dose_reaches_the_queue_and_needs_a_decision_and_rationale(browser, app_server):
    """The dose goes through the dose service (as the dose form does), which re-runs the rules."""
    from kapnotes import doses as dose_service
    from kapnotes.timeutil import utcnow

    with _db(app_server["db_url"]) as s:
        prescriber = actor_of(s.exec(select(User).where(User.username == "mokafor")).one())
        # a patient of hers not used by the test above, with an active plan (the rules run for it)
        pid = next(i for i in s.exec(select(Patient.id).where(col(Patient.mrn).in_(
            ["KAP-1005", "KAP-1006", "KAP-1007", "KAP-1008"])).order_by(Patient.mrn)).all()
            if (plans.active_plan(s, i) is not None))
        dose_service.add_dose(s, prescriber, pid, dose_service.DoseInput(
            taken_at=utcnow() - timedelta(minutes=7), dose_mg=100, formulation="odt",
            bp_systolic_pre=190, bp_diastolic_pre=115, notes=TOKEN))
    with _db(app_server["db_url"]) as s:
        hold = s.exec(select(DoseAdjustment).where(DoseAdjustment.patient_id == pid)
                      .order_by(col(DoseAdjustment.id).desc())).first()
        number, sent_by = hold.id, hold.sent_by_id
        mrn = s.get(Patient, pid).mrn
        assert (hold.action, hold.status, hold.urgent) == ("hold", "pending", True)
    assert sent_by is None  # nobody forwarded it

    ctx, p = _prescriber_queue(browser, app_server["url"])
    _pick(p, rf"^Urgent · .*\({mrn}\)")
    item = _item(p, number)
    expect(item.get_by_text("Urgent", exact=True).first).to_be_visible(timeout=20000)
    expect(item.get_by_text("sent automatically by the rules engine", exact=False).first).to_be_visible()
    # nothing preselected: recording without a choice is refused at the field
    expect(item.get_by_role("radio", checked=True)).to_have_count(0)
    _record(item)
    expect(item.get_by_text("Choose a decision: approve, modify or reject.")).to_be_visible(timeout=20000)
    # a choice without a rationale is refused too
    _choose(item, "Approve")
    _record(item)
    expect(item.get_by_text("Give the rationale for approving.")).to_be_visible(timeout=20000)
    item.get_by_role("textbox", name="Rationale (required for every decision)").fill(HOLD_RATIONALE)
    _record(item)
    expect(p.get_by_text("Decision recorded: approved.").first).to_be_visible(timeout=20000)
    expect(_item(p, number)).to_have_count(0)
    ctx.close()


def test_approving_an_increase_for_a_flagged_patient_needs_an_override_and_its_rationale(browser, app_server):
    """KAP-1003's latest PHQ-9 answers item 9 above 0 (the demo's suicidality story): a therapist's
    proposal of more drug cannot be approved without an explicit override and its own rationale."""
    higher = _step_up(app_server["db_url"], "KAP-1003")
    with _db(app_server["db_url"]) as s:
        therapist = actor_of(s.exec(select(User).where(User.username == "tsato")).one())
        pid = _patient_id(s, "KAP-1003")
        number = suggestions.propose(s, therapist, pid, higher, plans.current_plan(s, pid).interval_days,
                                     f"The client asks for a stronger dose ({TOKEN}).").id

    ctx, p = _prescriber_queue(browser, app_server["url"])
    _pick(p, r"\(KAP-1003\) · Increase")
    item = _item(p, number)
    _choose(item, "Approve")
    # the page says before submit that an override is needed, and why
    expect(item.get_by_text("This decision needs an explicit override", exact=False).first).to_be_visible(
        timeout=20000)
    item.get_by_role("textbox", name="Rationale (required for every decision)").fill(RATIONALE)
    _record(item)
    expect(item.get_by_text("Override the safety check\u201d and give its rationale", exact=False).first) \
        .to_be_visible(timeout=20000)
    # ticking the override without its own rationale is refused too
    item.get_by_text("Override the safety check", exact=True).click()
    wait_idle(p)
    _record(item)
    expect(item.get_by_text("Give the rationale for the override.", exact=False).first).to_be_visible(timeout=20000)
    with _db(app_server["db_url"]) as s:
        assert s.get(DoseAdjustment, number).status == "pending"  # nothing decided yet
    override_why = f"Seen in clinic today, safety plan in place, PHQ-9 repeated ({TOKEN})."
    item.get_by_role("textbox", name="Override rationale (required for an override)").fill(override_why)
    _record(item)
    expect(p.get_by_text("Decision recorded: approved.").first).to_be_visible(timeout=20000)
    with _db(app_server["db_url"]) as s:
        row = s.get(DoseAdjustment, number)
        assert row.status == "approved" and "suicidality" in row.override_rules
        assert row.override_rationale == override_why
    ctx.close()
