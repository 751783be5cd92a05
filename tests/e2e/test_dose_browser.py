"""Browser: from the dashboard, "Add a dose" opens the dose log on its entry form (the tab is
named in the URL); a saved dose shows in the log once its tab is opened."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import sign_in, wait_idle
from tests.e2e.test_review_browser import _open_patient


def test_dashboard_link_opens_the_add_tab_and_the_log_tab_shows_the_dose(browser, app_server):
    ctx = browser.new_context()
    page = ctx.new_page()
    sign_in(page, app_server["url"], "tsato")
    _open_patient(page, "KAP-1002")
    page.get_by_role("link", name="Add a dose").first.click()
    wait_idle(page)
    expect(page.get_by_role("heading", name="Dose log")).to_be_visible(timeout=20000)
    assert "dose_tab=" in page.url
    expect(page.get_by_role("tab", name="Add a dose")).to_have_attribute("aria-selected", "true")
    save = page.get_by_role("button", name="Save dose")
    expect(save).to_be_visible(timeout=20000)
    expect(page.get_by_text("doses shown", exact=False)).to_have_count(0)  # the log did not run

    page.get_by_role("spinbutton", name="Anxiety before (0–10)").fill("7")
    page.get_by_role("spinbutton", name="Anxiety before (0–10)").press("Tab")
    page.get_by_role("textbox", name="Notes").fill("Browser-entered dose 7f3a")
    save.click()
    wait_idle(page)
    expect(page.get_by_text("Saved dose entry", exact=False).first).to_be_visible(timeout=20000)

    page.get_by_role("tab", name="Log").click()
    wait_idle(page)
    expect(page.get_by_text("shown · times in", exact=False).first).to_be_visible(timeout=20000)
    expect(page.get_by_role("button", name="Save dose")).to_have_count(0)
    ctx.close()
