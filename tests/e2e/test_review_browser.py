"""Browser: a therapist proposes a dose change, the prescriber approves it with a rationale,
and the new plan version and the dashboard's decision show up for both."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.conftest import sign_in, wait_idle

REASON = "GAD-7 barely moved in six weeks at 150 mg; tolerating well."
RATIONALE = "Agree: step up to 200 mg, BP fine at the last visits."


def _open_patient(page, mrn: str) -> None:
    expect(page.get_by_role("heading", name="Patients")).to_be_visible(timeout=20000)
    row = page.locator("[data-testid='stHorizontalBlock']").filter(has_text=mrn)
    row.get_by_role("button", name="Open").first.click()
    wait_idle(page)
    expect(page.get_by_text(f"MRN {mrn}", exact=False).first).to_be_visible(timeout=20000)


def _nav(page, title: str) -> None:
    page.get_by_role("link", name=title).first.click()
    wait_idle(page)


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
    t.get_by_role("spinbutton", name="New dose (mg)").fill("200")
    t.get_by_role("textbox", name="Reason *").fill(REASON)
    t.get_by_role("button", name="Send proposal to prescriber").click()
    wait_idle(t)
    expect(t.get_by_text("Proposal sent to the prescriber.").first).to_be_visible(timeout=20000)
    expect(t.get_by_text(REASON).first).to_be_visible()

    # --- the prescriber approves with a rationale -------------------------------------------------
    ctx_p = browser.new_context()
    p = ctx_p.new_page()
    sign_in(p, app_server["url"], "mokafor")
    expect(p.get_by_role("heading", name="Patients")).to_be_visible(timeout=20000)
    _nav(p, "Review queue")
    expect(p.get_by_role("heading", name="Review queue")).to_be_visible(timeout=20000)
    # the queue is one table; the new proposal (Jordan Ellis, KAP-1001) is opened from the picker
    expect(p.get_by_text("Most urgent first", exact=False).first).to_be_visible(timeout=20000)
    p.get_by_role("combobox", name="Item to review").click()
    option = p.get_by_role("option", name=re.compile(r"Jordan Ellis \(KAP-1001\) · Increase: 200 mg"))
    expect(option).to_be_visible(timeout=20000)
    option.click()
    wait_idle(p)
    item = p.locator('[data-testid="stForm"]').filter(has_text=REASON)
    expect(item).to_be_visible(timeout=20000)
    expect(item.get_by_text("Increase: 200 mg every", exact=False).first).to_be_visible()
    item.get_by_role("textbox", name="Rationale (required to modify or reject)").fill(RATIONALE)
    item.get_by_role("button", name="Record decision").click()
    wait_idle(p)
    expect(p.get_by_text(re.compile(r"Item #\d+ approved\.")).first).to_be_visible(timeout=20000)
    expect(p.get_by_text(REASON)).to_have_count(0)

    # the prescriber's dashboard: the new plan version and the decision
    _nav(p, "Patients")
    _open_patient(p, "KAP-1001")
    expect(p.get_by_text(re.compile(rf"Version {version_before + 1}\b")).first).to_be_visible(timeout=20000)
    expect(p.get_by_text("200 mg", exact=False).first).to_be_visible()

    # --- the therapist sees the decision on the patient's dashboard ------------------------------
    _nav(t, "Patient dashboard")
    expect(t.get_by_role("heading", name="Dose suggestion")).to_be_visible(timeout=20000)
    expect(t.get_by_text(re.compile(r"Approved.* by Michelle Okafor")).first).to_be_visible(timeout=20000)
    expect(t.get_by_text(RATIONALE).first).to_be_visible(timeout=20000)  # the new decision, not a seeded one
    expect(t.get_by_text(re.compile(rf"Version {version_before + 1}\b")).first).to_be_visible()
    ctx_t.close()
    ctx_p.close()
