"""Browser: sign-in, scoping and signed-out page access in real Chromium."""

import re

from playwright.sync_api import expect

from tests.e2e.conftest import sign_in, wait_idle

PAGE_PATHS = ["", "patients", "dashboard", "admin_users", "admin_teams", "audit_log"]


def test_therapist_sees_exactly_own_patients(page, app_server):
    sign_in(page, app_server["url"], "tsato")
    expect(page.get_by_role("heading", name="Patients")).to_be_visible(timeout=20000)
    # tsato has the first four demo patients; rbennett's (KAP-1005..1008) are never shown.
    expect(page.get_by_text("KAP-1001", exact=True)).to_be_visible()
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
        body = page.locator("body").inner_text()
        assert "KAP-10" not in body, f"/{path} leaked patient data signed out"
        context.close()
