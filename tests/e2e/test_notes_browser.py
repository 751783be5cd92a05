"""Browser: write a dosing note, close the tab, reopen the draft in a new one, sign it;
the edit controls are gone and "Add addendum" is offered."""

from __future__ import annotations

import re
import time

from playwright.sync_api import expect
from sqlmodel import select

from kapnotes.db import make_engine, session_scope
from kapnotes.models import DoseEntry, SessionNote
from tests.helpers.browser import open_patient, sign_in, wait_idle


def _nav(page, title: str) -> None:
    page.get_by_role("link", name=title, exact=True).first.click()
    wait_idle(page)


def _tab(browser, url: str, username: str = "tsato"):
    """A new tab (browser context) signed in as ``username``: (context, page)."""
    ctx = browser.new_context()
    page = ctx.new_page()
    sign_in(page, url, username)
    return ctx, page


def _saved_fields(engine) -> dict:
    with session_scope(engine) as s:
        draft = s.exec(select(SessionNote).where(SessionNote.status == "draft")).first()
        return dict(draft.fields) if draft else {}


def _wait_saved(engine, name: str, value) -> None:
    """Autosave is asynchronous to the browser: wait until the draft in the database holds the value."""
    for _ in range(100):
        if _saved_fields(engine).get(name) == value:
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} was not autosaved: {_saved_fields(engine)}")


def _commit(page, engine, label: str, name: str, value: str, stored=None) -> None:
    """Fill a field and leave it (Tab): Streamlit reruns and the draft autosaves."""
    field = page.get_by_label(label, exact=True)
    field.fill(value)
    field.press("Tab")
    wait_idle(page)
    _wait_saved(engine, name, value if stored is None else stored)


def test_dosing_note_survives_closed_tab_then_signs(browser, app_server):
    url = app_server["url"]
    engine = make_engine(app_server["db_url"])
    intention = "Meet the fear with curiosity — ünïcödé ✓"

    # --- first tab: start a dosing note for KAP-1001 and type into it -------------------------
    first, page = _tab(browser, url)
    expect(page.get_by_text("KAP-1001", exact=True)).to_be_visible(timeout=20000)
    open_patient(page, "KAP-1001")
    _nav(page, "Write note")
    page.get_by_label("Note type").click()
    page.get_by_role("option", name="KAP dosing session").click()
    wait_idle(page)
    page.get_by_role("button", name="Start note").click()
    wait_idle(page)
    expect(page.get_by_role("heading", name="KAP dosing session note")).to_be_visible(timeout=20000)
    _commit(page, engine, "Who was present *", "present", "Therapist and sitter")
    _commit(page, engine, "Intention *", "intention", intention)
    _commit(page, engine, "Blood pressure before dosing, systolic (mmHg) *", "bp_systolic_pre", "124", 124)
    _commit(page, engine, "Blood pressure before dosing, diastolic (mmHg) *", "bp_diastolic_pre", "79", 79)
    _commit(page, engine, "Heart rate before dosing (bpm) *", "heart_rate_pre", "71", 71)
    _commit(page, engine, "Discharge and safety status *", "discharge_status",
            "Partner drove home; no driving until tomorrow.")
    page.get_by_text("Consent confirmed for this session *").click()
    wait_idle(page)
    _wait_saved(engine, "consent_confirmed", True)
    first.close()  # the tab is gone: nothing was submitted explicitly

    with session_scope(engine) as s:
        draft = s.exec(select(SessionNote).where(SessionNote.status == "draft",
                                                 SessionNote.note_type == "dosing")).one()
        assert draft.fields["intention"] == intention and draft.fields["consent_confirmed"] is True
        note_id, start = draft.id, draft.start_time  # "HH:MM": the session began when the note was started

    # --- second tab: My drafts -> reopen, everything is there; sign ---------------------------
    second, page = _tab(browser, url)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible(timeout=20000)
    _nav(page, "My drafts")
    expect(page.get_by_text("KAP-1001", exact=True)).to_be_visible()
    page.get_by_role("button", name="Open").first.click()
    wait_idle(page)
    expect(page.get_by_label("Intention *", exact=True)).to_have_value(intention, timeout=20000)
    expect(page.get_by_label("Heart rate before dosing (bpm) *", exact=True)).to_have_value("71")
    # signing needs an end time: the session started when the note was begun, so it ends then too
    end = page.get_by_label("End time", exact=True)
    end.click()
    page.keyboard.type(start)
    page.keyboard.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Sign note").click()
    wait_idle(page)
    expect(page.get_by_text("Sign this note?")).to_be_visible(timeout=20000)
    page.get_by_role("button", name="Yes, sign").click()
    wait_idle(page)
    expect(page.get_by_text("Note signed.")).to_be_visible(timeout=20000)
    expect(page.get_by_role("button", name="Sign note")).to_have_count(0)
    expect(page.get_by_role("button", name="Save draft")).to_have_count(0)
    expect(page.get_by_label("Intention *", exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Add addendum")).to_be_visible()
    expect(page.get_by_text(intention)).to_be_visible()

    # An addendum from the browser lands under the note.
    page.get_by_label("Addendum text", exact=True).fill("Sitter's name added to the chart.")
    page.get_by_role("button", name="Add addendum").click()
    wait_idle(page)
    expect(page.get_by_text("Sitter's name added to the chart.")).to_be_visible(timeout=20000)
    second.close()

    with session_scope(engine) as s:
        note = s.get(SessionNote, note_id)
        assert note.status == "signed" and note.content_hash
        doses = s.exec(select(DoseEntry).where(DoseEntry.session_note_id == note_id)).all()
        assert len(doses) == 1 and doses[0].context == "in_session" and doses[0].bp_systolic_pre == 124
    engine.dispose()


def test_prescriber_sees_no_drafts_or_process_notes_in_the_browser(browser, app_server):
    context, page = _tab(browser, app_server["url"], "mokafor")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible(timeout=20000)
    nav = page.locator("[data-testid='stSidebarNav']").inner_text()
    assert "Session notes" in nav
    for hidden in ("Write note", "My drafts", "Private process notes"):
        assert hidden not in nav
    context.close()


def test_free_text_typed_without_leaving_the_field_survives_a_closed_tab(browser, app_server):
    """Typing alone (no Tab, no click elsewhere) saves after a pause: the app says "Saved", the tab
    closes, and the reopened draft has the text."""
    url = app_server["url"]
    engine = make_engine(app_server["db_url"])
    words = "She named the fear out loud — first time, ünïcödé ✓"
    first, page = _tab(browser, url)
    open_patient(page, "KAP-1002")
    _nav(page, "Write note")
    page.get_by_role("button", name="Start note").click()
    wait_idle(page)
    box = page.get_by_label("Free text", exact=True)
    expect(box).to_be_visible(timeout=20000)
    saved_before = page.get_by_text(re.compile(r"Saved \d\d:\d\d")).first.inner_text()
    box.click()
    page.keyboard.type(words, delay=20)
    # the app's own state: the draft in the database holds the text, though the field never lost focus
    for _ in range(150):
        with session_scope(engine) as s:
            drafts = s.exec(select(SessionNote).where(SessionNote.status == "draft",
                                                      SessionNote.free_text == words)).all()
        if drafts:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the typed text was not saved while typing")
    note_id = drafts[0].id
    expect(page.get_by_text(re.compile(r"Saved \d\d:\d\d")).first).to_be_visible(timeout=20000)
    assert saved_before  # the indicator was there from the start and is still shown
    first.close()

    second, page = _tab(browser, url)
    _nav(page, "My drafts")
    page.get_by_role("button", name="Open").first.click()
    wait_idle(page)
    expect(page.get_by_label("Free text", exact=True)).to_have_value(words, timeout=20000)
    second.close()
    with session_scope(engine) as s:
        assert s.get(SessionNote, note_id).free_text == words
    engine.dispose()
