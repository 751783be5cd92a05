"""Browser: from the dashboard, "Add a dose" opens the dose log on its entry form (the tab is
named in the URL); a saved dose shows in the log once its tab is opened. An unusual dose asks
for a confirmation at the dose field first; a bad date is refused at the field, never replaced."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import expect
from sqlmodel import select

from kapnotes.config import get_settings
from kapnotes.db import make_engine, session_scope
from kapnotes.models import DoseAdjustment, DoseEntry, Patient
from kapnotes.timeutil import utcnow
from tests.helpers.browser import open_patient as _open_patient
from tests.helpers.browser import sign_in, wait_idle

TZ = get_settings().tz


def _today():
    return utcnow().astimezone(TZ).date()


def _doses(db_url: str, mrn: str) -> list[DoseEntry]:
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as s:
            pid = s.exec(select(Patient.id).where(Patient.mrn == mrn)).one()
            return list(s.exec(select(DoseEntry).where(DoseEntry.patient_id == pid)).all())
    finally:
        engine.dispose()


def _open_holds(db_url: str, mrn: str) -> list[DoseAdjustment]:
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as s:
            pid = s.exec(select(Patient.id).where(Patient.mrn == mrn)).one()
            return list(s.exec(select(DoseAdjustment).where(DoseAdjustment.patient_id == pid,
                                                            DoseAdjustment.status == "pending",
                                                            DoseAdjustment.action == "hold")).all())
    finally:
        engine.dispose()


def _open_add_tab(browser, base_url: str, mrn: str):
    """A new browser context signed in as the therapist, on the patient's "Add a dose" tab:
    (context, page, its "Save dose" button)."""
    ctx = browser.new_context()
    page = ctx.new_page()
    sign_in(page, base_url, "tsato")
    _open_patient(page, mrn)
    page.get_by_role("link", name="Add a dose").first.click()
    wait_idle(page)
    expect(page.get_by_role("heading", name="Dose log")).to_be_visible(timeout=20000)
    save = page.get_by_role("button", name="Save dose")
    expect(save).to_be_visible(timeout=20000)
    return ctx, page, save


def _fill(locator, text: str) -> None:
    locator.click()
    locator.press("ControlOrMeta+a")
    locator.press("Backspace")
    if text:
        locator.press_sequentially(text)
    locator.press("Tab")


def test_dashboard_link_opens_the_add_tab_and_the_log_tab_shows_the_dose(browser, app_server):
    ctx, page, save = _open_add_tab(browser, app_server["url"], "KAP-1002")
    assert "dose_tab=" in page.url
    expect(page.get_by_role("tab", name="Add a dose")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_text("doses shown", exact=False)).to_have_count(0)  # the log did not run

    page.get_by_role("spinbutton", name="Anxiety before (0–10)").fill("7")
    page.get_by_role("spinbutton", name="Anxiety before (0–10)").press("Tab")
    page.get_by_role("textbox", name="Notes").fill("Browser-entered dose 7f3a")
    save.click()
    wait_idle(page)
    expect(page.get_by_text("Dose saved:", exact=False).first).to_be_visible(timeout=20000)

    page.get_by_role("tab", name="Log").click()
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"shown · rows [\d,]+–[\d,]+ of [\d,]+ · newest first · times in")).first) \
        .to_be_visible(timeout=20000)
    expect(page.get_by_role("button", name="Save dose")).to_have_count(0)
    ctx.close()


def test_900_mg_asks_for_confirmation_then_saves_and_shows_in_the_log(browser, app_server):
    mrn = "KAP-1003"
    before = len(_doses(app_server["db_url"], mrn))
    ctx, page, save = _open_add_tab(browser, app_server["url"], mrn)
    _fill(page.get_by_role("spinbutton", name="Dose (mg)"), "900")
    page.get_by_role("textbox", name="Notes").fill("Confirmed large dose 5c1e")
    save.click()
    wait_idle(page)
    expect(page.get_by_text("Dose (mg): 900 mg is above", exact=False)).to_be_visible(timeout=20000)
    confirm = page.get_by_text("Yes, 900 mg was taken — record it")
    expect(confirm).to_be_visible()
    assert len(_doses(app_server["db_url"], mrn)) == before  # nothing saved yet
    confirm.click()
    page.get_by_role("button", name="Save dose").click()
    wait_idle(page)
    expect(page.get_by_text("Dose saved: 900 mg", exact=False)).to_be_visible(timeout=20000)
    rows = _doses(app_server["db_url"], mrn)
    assert len(rows) == before + 1 and any(r.dose_mg == 900 and r.notes == "Confirmed large dose 5c1e"
                                           for r in rows)
    # ... and then holds: the engine's dose-above-plan hold is in the prescriber's queue, urgent, sent by nobody
    hold = _open_holds(app_server["db_url"], mrn)
    assert any("dose_above_plan" in h.flags and h.urgent and h.sent_by_id is None for h in hold), hold
    expect(page.get_by_text("a dose above the plan's dose was taken", exact=False)).to_be_visible(timeout=20000)

    page.get_by_role("tab", name="Log").click()
    wait_idle(page)
    # the table is a canvas: its caption counts the rows shown (the last 90 days, voided left out)
    shown = sum(1 for r in rows
                if r.voided_at is None and r.taken_at.astimezone(TZ).date() >= _today() - timedelta(days=90))
    expect(page.get_by_text(f"{shown:,} doses shown · rows", exact=False)).to_be_visible(timeout=20000)
    expect(page.locator("[data-testid='stDataFrame']")).to_be_visible()
    ctx.close()


def test_a_bad_date_is_refused_at_the_field_not_replaced(browser, app_server):
    mrn = "KAP-1004"
    before = len(_doses(app_server["db_url"], mrn))
    ctx, page, save = _open_add_tab(browser, app_server["url"], mrn)
    year = page.get_by_role("spinbutton", name="year, Date taken")
    expect(year).to_be_visible(timeout=20000)
    year.click()
    year.press_sequentially("2090")  # a date in the future
    year.press("Tab")
    save.click()
    wait_idle(page)
    expect(page.get_by_text("Date and time taken: this time is in the future", exact=False)).to_be_visible(
        timeout=20000)
    assert len(_doses(app_server["db_url"], mrn)) == before
    page.get_by_role("tabpanel", name="Add a dose").get_by_role("button", name="Clear date").click()
    page.get_by_role("button", name="Save dose").click()
    wait_idle(page)
    expect(page.get_by_text("Date taken: enter a valid date", exact=False)).to_be_visible(timeout=20000)
    assert len(_doses(app_server["db_url"], mrn)) == before
    ctx.close()
