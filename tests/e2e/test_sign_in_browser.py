"""Browser: sign-in, scoping and signed-out page access in real Chromium."""

import re
from pathlib import Path

from playwright.sync_api import expect

from tests.app.uitext import app_pages
from kapnotes.seed import DEMO_PATIENTS
from tests.e2e.conftest import sign_in, wait_idle

# every page of app.py's PAGES table (URL path = file name), so a page added later is covered
PAGE_PATHS = [""] + [Path(row[0]).stem for row in app_pages()]


def test_therapist_sees_exactly_own_patients(page, app_server):
    sign_in(page, app_server["url"], "tsato")
    expect(page.get_by_role("heading", name="Patients")).to_be_visible(timeout=20000)
    # tsato has the first four demo patients; rbennett's (KAP-1005..1008) are never shown.
    expect(page.get_by_text("KAP-1001", exact=True)).to_be_visible()
    # rows stream in while the script runs: wait for the last one before reading the page
    expect(page.get_by_role("button", name="Open")).to_have_count(4, timeout=20000)
    wait_idle(page)
    body = page.locator("section.main, [data-testid='stMain']").first.inner_text()
    shown = sorted(set(re.findall(r"KAP-\d{4}", body)))
    assert shown == ["KAP-1001", "KAP-1002", "KAP-1003", "KAP-1004"]
    page.get_by_label("Search by name or MRN").fill("KAP-1005")
    page.keyboard.press("Enter")
    wait_idle(page)
    expect(page.get_by_text("No patients match.")).to_be_visible()


def test_wrong_password_shows_generic_message(page, app_server):
    sign_in(page, app_server["url"], "tsato", "definitely-wrong-password")
    expect(page.get_by_text(re.compile("Sign-in failed"))).to_be_visible()
    sign_in(page, app_server["url"], "nobody-here", "definitely-wrong-password")
    expect(page.get_by_text(re.compile("Sign-in failed"))).to_be_visible()


def test_every_page_url_signed_out_shows_sign_in_only(browser, app_server):
    for path in PAGE_PATHS:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{app_server['url']}/{path}")
        expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=20000)
        wait_idle(page)  # the whole run, not just its first element
        body = page.locator("body").inner_text()
        assert "KAP-10" not in body, f"/{path} leaked patient data signed out"
        for name, _dob in DEMO_PATIENTS:
            assert name not in body, f"/{path} leaked a patient name signed out"
        assert page.get_by_role("button", name="Sign in").count() == 1
        context.close()


def _main_text(page) -> str:
    return page.locator("[data-testid='stMain']").first.inner_text()


def test_sign_out_returns_to_sign_in_form(page, app_server):
    sign_in(page, app_server["url"], "tsato")
    expect(page.get_by_role("heading", name="Patients")).to_be_visible(timeout=20000)
    expect(page.get_by_text("Signed in as")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    wait_idle(page)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=20000)
    expect(page.get_by_text("You have signed out.")).to_be_visible()
    assert "KAP-10" not in page.locator("body").inner_text()
    # the back button / a page URL does not bring the data back
    page.goto(f"{app_server['url']}/patients")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=20000)
    assert "KAP-10" not in page.locator("body").inner_text()


def test_prescriber_sees_all_eight_demo_patients(page, app_server):
    sign_in(page, app_server["url"], "mokafor")
    expect(page.get_by_role("heading", name="Patients")).to_be_visible(timeout=20000)
    expect(page.get_by_role("button", name="Open")).to_have_count(8, timeout=20000)
    wait_idle(page)
    shown = sorted(set(re.findall(r"KAP-\d{4}", _main_text(page))))
    assert shown == [f"KAP-{n}" for n in range(1001, 1009)]
    expect(page.get_by_text("8 patients on your care teams.")).to_be_visible()


def test_admin_sees_administration_and_no_patient_list(page, app_server):
    sign_in(page, app_server["url"], "admin")
    nav = page.locator("[data-testid='stSidebarNav']")
    for title in ("Users", "Care teams", "Audit log"):
        expect(nav.get_by_role("link", name=title)).to_be_visible(timeout=20000)
    for title in ("Patients", "Patient dashboard"):
        expect(nav.get_by_role("link", name=title, exact=True)).to_have_count(0)
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    assert "KAP-10" not in page.locator("body").inner_text()
    nav.get_by_role("link", name="Audit log").click()
    wait_idle(page)
    page.get_by_role("button", name="Verify chain now").click()
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"Hash chain intact \(\d+ events\)"))).to_be_visible(timeout=20000)
    assert "KAP-10" not in page.locator("body").inner_text()


def test_idle_tab_is_signed_out_without_a_click(page, tmp_path):
    """A tab left open clears itself: the page checks for idleness on a timer."""
    import subprocess

    from tests.e2e.conftest import start_server

    proc, base = start_server(tmp_path / "idle.db", extra_env={"KAPNOTES_IDLE_MINUTES": "1"})
    try:
        sign_in(page, base, "tsato")
        expect(page.get_by_text("KAP-1001", exact=True)).to_be_visible(timeout=20000)
        # no interaction from here on: within timeout (60 s) + one check interval (10 s) + slack
        expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=120000)
        expect(page.get_by_text("You were signed out after 1 minute without activity.")).to_be_visible()
        assert "KAP-10" not in page.locator("body").inner_text()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
