"""The note editor's state machine on its own (kapnotes/ui/note_editor_state.py), without a page.

It lives under tests/app because the module imports kapnotes.ui.note_form (which imports
streamlit); nothing here runs a page.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import Session

from kapnotes import notes
from kapnotes.db import session_scope
from kapnotes.models import NoteStatus, SessionNote
from kapnotes.ui import note_editor_state as es

YESTERDAY = date.today() - timedelta(days=1)


@pytest.fixture
def draft(engine, clinic) -> SessionNote:
    """Tina's check-in draft for patient A1, yesterday at 10:00."""
    with session_scope(engine) as s:
        return notes.create_draft(s, clinic.tina, clinic.a1, "check_in", session_date=YESTERDAY, start_time="10:00")


def content(**over):
    base = {"session_date": YESTERDAY, "start_time": "10:00", "end_time": "10:50", "modality": "telehealth",
            "fields": {"data": "Reported calm week.", "assessment": "Stable.", "plan": "Continue."},
            "free_text": "Typed text."}
    return base | over


def stored(engine, nid) -> SessionNote:
    with Session(engine) as s:
        return s.get(SessionNote, nid)


def run(engine, clinic, nid, ed, mine, action=None):
    note = stored(engine, nid)
    stored_content = notes.content_of(note)
    return es.step(clinic.tina, nid, ed, mine, stored_content, note.version, action, lambda: session_scope(engine))


@pytest.mark.parametrize(("over", "field", "words"), [
    ({"session_date": None}, "session_date", "session date"),
    ({"start_time": None}, "start_time", "start time"),
    ({"end_time": None}, "end_time", "end time"),
    ({"end_time": "09:00"}, "end_time", "before start time"),
    ({"session_date": date.today() + timedelta(days=3)}, "end_time", "has not come yet"),
])
def test_sign_problems_name_the_field(over, field, words):
    problems = es.sign_problems(content(**over))
    assert field in problems and words in problems[field]


def test_sign_problems_none_for_a_finished_session():
    assert es.sign_problems(content()) == {}
    assert es.sign_problems(content(session_date=YESTERDAY.isoformat())) == {}


def test_sign_summary_says_type_date_times_and_dose():
    text = es.sign_summary("KAP dosing session", content(fields={"dose_mg": 150.0}))
    assert text.startswith("KAP dosing session note · ") and "10:00 to 10:50" in text and "dose 150 mg" in text
    assert "Telehealth" in text


def test_typing_autosaves_and_moves_the_version(engine, clinic, draft):
    nid, version = draft.id, draft.version
    ed = {"version": version, "conflict": None}
    out = run(engine, clinic, nid, ed, content())
    assert out.saved is not None and not out.errors
    assert ed["version"] == stored(engine, nid).version > version
    assert stored(engine, nid).free_text == "Typed text."


def test_review_with_bad_times_saves_the_draft_but_does_not_sign(engine, clinic, draft):
    nid, version = draft.id, draft.version
    ed = {"version": version, "conflict": None}
    out = run(engine, clinic, nid, ed, content(end_time="09:00"), es.REVIEW)
    assert "end_time" in out.errors and "Not signed yet" in out.message and not out.signed
    assert ed.get("confirm") is None and stored(engine, nid).status == NoteStatus.draft


def test_sign_needs_the_confirmation_of_the_same_content(engine, clinic, draft):
    nid, version = draft.id, draft.version
    ed = {"version": version, "conflict": None}
    run(engine, clinic, nid, ed, content(), es.REVIEW)
    assert ed["confirm"] is not None
    # edited while the confirmation was open: the confirmation closes and Sign does nothing
    out = run(engine, clinic, nid, ed, content(free_text="Changed."), es.SIGN)
    assert not out.signed and stored(engine, nid).status == NoteStatus.draft
    run(engine, clinic, nid, ed, content(free_text="Changed."), es.REVIEW)
    out = run(engine, clinic, nid, ed, content(free_text="Changed."), es.SIGN)
    assert out.signed and stored(engine, nid).status == NoteStatus.signed


def test_cancel_closes_the_confirmation(engine, clinic, draft):
    nid, version = draft.id, draft.version
    ed = {"version": version, "conflict": None}
    run(engine, clinic, nid, ed, content(), es.REVIEW)
    run(engine, clinic, nid, ed, content(), es.CANCEL)
    assert ed["confirm"] is None
    assert not run(engine, clinic, nid, ed, content(), es.SIGN).signed


def test_a_save_elsewhere_is_a_conflict_not_an_overwrite(engine, clinic, draft):
    nid, version = draft.id, draft.version
    with session_scope(engine) as s:  # another tab saved first
        notes.save_draft(s, clinic.tina, nid, version, free_text="From the other tab.")
    ed = {"version": version, "conflict": None}
    out = run(engine, clinic, nid, ed, content())
    assert out.saved is None and ed["conflict"] is not None
    assert stored(engine, nid).free_text == "From the other tab."
    out = run(engine, clinic, nid, ed, content(), es.KEEP_MINE)  # the clinician keeps their own text
    assert out.saved is not None and stored(engine, nid).free_text == "Typed text." and ed["conflict"] is None


def test_discard(engine, clinic, draft):
    nid, version = draft.id, draft.version
    ed = {"version": version, "conflict": None}
    out = run(engine, clinic, nid, ed, notes.content_of(stored(engine, nid)), es.DISCARD)
    assert out.discarded
