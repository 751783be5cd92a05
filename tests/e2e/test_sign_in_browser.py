"""Browser: sign-in through the server's form and HttpOnly session cookie, scoping, signed-out
page access, refresh/new tab/deep link, sign-out across tabs, idle and absolute limits."""

import re
from pathlib import Path

from playwright.sync_api import expect

from kapnotes.seed import DEMO_PATIENTS
from tests.helpers.browser import sign_in, stop_server, wait_app, wait_idle
from tests.helpers.uitext import app_pages

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
        assert page.url == f"{app_server['url']}/auth/sign-in?next=/{path}"  # the form, keeping the page
        page.wait_for_load_state("load")  # the server-rendered form: no Streamlit run to wait for
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
    expect(page.get_by_text("You have signed out.")).to_be_visible(timeout=20000)
    expect(page.locator("body")).not_to_contain_text("KAP-10", timeout=20000)  # stale rows go when the run ends
    page.get_by_role("link", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=20000)
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
    """A tab left open clears itself: the page asks the server about its session on a timer.

    A 1-minute timeout makes the page check every 10 s; the session is then moved two minutes
    into the past on the server (what two idle minutes would do), and nobody touches the page."""

    from tests.helpers.browser import start_server

    db = tmp_path / "idle.db"
    proc, base = start_server(db, extra_env={"KAPNOTES_IDLE_MINUTES": "1"})
    try:
        sign_in(page, base, "tsato")
        expect(page.get_by_text("KAP-1001", exact=True)).to_be_visible(timeout=20000)
        wait_idle(page)
        _age_sessions(f"sqlite:///{db}", "tsato", seen={"minutes": 2})
        # no interaction from here on: the next check (every 10 s) finds the session idle
        expect(page.get_by_text("You were signed out after 1 minute without activity.")).to_be_visible(timeout=45000)
        expect(page.get_by_role("link", name="Sign in")).to_be_visible()
        assert "KAP-10" not in page.locator("body").inner_text()
        page.reload()  # the server revoked the session: the cookie no longer opens anything
        expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=20000)
    finally:
        stop_server(proc)


# --- server-side sessions: refresh, tabs, deep links, revocation --------------------------------


def _signed_in_on(page, base: str, path: str) -> None:
    expect(page.get_by_text("Signed in as")).to_be_visible(timeout=20000)
    assert page.url == f"{base}/{path}"
    assert page.get_by_role("button", name="Sign in").count() == 0


def test_refresh_new_tab_and_deep_link_keep_the_user_signed_in(browser, app_server):
    base = app_server["url"]
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, base, "mokafor", path="review_queue")  # signed-out deep link: back there after sign-in
    _signed_in_on(page, base, "review_queue")
    page.reload()
    wait_app(page)
    _signed_in_on(page, base, "review_queue")
    second = context.new_page()
    second.goto(f"{base}/dose_log")
    wait_app(second)
    _signed_in_on(second, base, "dose_log")
    third = context.new_page()
    third.goto(f"{base}/")  # the default page (Patients; Streamlit shows its URL as /)
    wait_app(third)
    _signed_in_on(third, base, "")
    expect(third.get_by_role("button", name="Open")).to_have_count(8, timeout=20000)
    cookie = next(c for c in context.cookies() if c["name"] == "kapnotes_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert page.evaluate("document.cookie").find("kapnotes_session") == -1  # not readable by scripts
    context.close()


def test_sign_out_in_one_tab_signs_out_the_other_and_the_copied_cookie(browser, app_server):
    base = app_server["url"]
    context = browser.new_context()
    first = context.new_page()
    sign_in(first, base, "tsato")
    copied = [c for c in context.cookies() if c["name"] == "kapnotes_session"]
    second = context.new_page()
    second.goto(f"{base}/")
    wait_app(second)
    expect(second.get_by_role("button", name="Open")).to_have_count(4, timeout=20000)

    thief = browser.new_context()  # another browser given a copy of the cookie
    thief.add_cookies(copied)
    stolen = thief.new_page()
    stolen.goto(f"{base}/")
    wait_app(stolen)
    expect(stolen.get_by_text("KAP-1001", exact=True)).to_be_visible(timeout=20000)  # it worked until now

    first.get_by_role("button", name="Sign out").click()
    expect(first.get_by_text("You have signed out.")).to_be_visible(timeout=20000)

    second.bring_to_front()  # the user goes back to the other tab
    wait_app(second)
    second.get_by_role("button", name="Open").first.click()  # the other tab's next action
    expect(second.get_by_text("You have been signed out.")).to_be_visible(timeout=20000)
    expect(second.locator("body")).not_to_contain_text("KAP-10", timeout=20000)

    stolen.goto(f"{base}/patients")
    expect(stolen.get_by_role("button", name="Sign in")).to_be_visible(timeout=20000)
    assert "KAP-10" not in stolen.locator("body").inner_text()
    thief.close()
    context.close()


def _age_sessions(db_url: str, username: str, **delta) -> None:
    """Move this user's open sessions into the past (what hours of waiting would do)."""
    from datetime import timedelta

    from sqlmodel import Session, select

    from kapnotes.db import make_engine
    from kapnotes.models import User, UserSession

    engine = make_engine(db_url)
    with Session(engine) as s:
        user = s.exec(select(User).where(User.username == username)).one()
        for row in s.exec(select(UserSession).where(UserSession.user_id == user.id)).all():
            row.created_at -= timedelta(**delta.get("created", {}))
            row.last_seen_at -= timedelta(**delta.get("seen", {}))
            s.add(row)
        s.commit()
    engine.dispose()


def test_idle_and_absolute_limits_end_the_session_on_the_server(browser, app_server):
    base = app_server["url"]
    for user, delta in (("rbennett", {"seen": {"minutes": 16}}),            # idle past 15 minutes
                        ("admin", {"created": {"hours": 13}})):             # alive but past 12 hours
        context = browser.new_context()
        page = context.new_page()
        sign_in(page, base, user)
        expect(page.get_by_text("Signed in as")).to_be_visible(timeout=20000)
        _age_sessions(app_server["db_url"], user, **delta)
        page.reload()
        expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=20000)
        expect(page.get_by_text("Your session has ended.")).to_be_visible()
        context.close()
