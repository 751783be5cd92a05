"""AppTest: the note editor (each template's form, autosave, errors at the field, conflicts,
signing), the notes page (timeline, viewer, addenda, search), My drafts and process notes."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from sqlmodel import select
from streamlit.testing.v1 import AppTest

from kapnotes import notes, process_notes
from kapnotes.config import get_settings
from kapnotes.db import session_scope
from kapnotes.models import Addendum, NoteStatus, SessionNote
from kapnotes.notes.templates import TEMPLATES, template
from kapnotes.timeutil import utcnow
from kapnotes.ui.note_form import fkey, hkey, label_of, skey
from tests.helpers.apptest import run_page
from tests.helpers.uitext import rendered_text

YESTERDAY = utcnow().date() - timedelta(days=1)


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, at.exception
    return at


def _start(at: AppTest, note_type: str, carry: bool = False) -> int:
    at.selectbox(key="new_note_type").select(note_type).run()
    at.button(key="load_last_note" if carry else "start_note").click().run()
    _ok(at)
    return at.session_state["edit_note_id"]


SAMPLE = {"text": "Sample text", "textarea": "Sample paragraph.\nSecond line.", "bool": True, "int": 7,
          "float": 2.5, "time": time(10, 15)}
SPECIFIC = {"bp_systolic_pre": 124, "bp_diastolic_pre": 78, "heart_rate_pre": 70, "session_number": 2}


def _set(at: AppTest, nid: int, name: str, value) -> None:
    spec = next(s for s in TEMPLATES_ALL if s.name == name)
    key = fkey(nid, name)
    if spec.kind in ("text",):
        at.text_input(key=key).input(value)
    elif spec.kind == "textarea":
        at.text_area(key=key).input(value)
    elif spec.kind in ("int", "float"):
        at.number_input(key=key).set_value(value)
    elif spec.kind == "bool":
        at.checkbox(key=key).check() if value else at.checkbox(key=key).uncheck()
    elif spec.kind == "time":
        at.time_input(key=key).set_value(value)
    elif spec.kind == "select":
        at.selectbox(key=key).select(value)
    elif spec.kind == "multiselect":
        for v in value:
            at.multiselect(key=key).select(v)
    at.run()
    _ok(at)


TEMPLATES_ALL = [s for t in TEMPLATES.values() for s in t.fields]


@pytest.mark.parametrize("note_type", list(TEMPLATES))
def test_each_template_form_renders_fills_and_signs(engine, clinic, note_type):
    tpl = template(note_type)
    at = _ok(run_page("note_editor.py", "tina", "A-001"))
    nid = _start(at, note_type)
    labels = {w.label for kind in ("text_input", "text_area", "number_input", "checkbox", "time_input",
                                   "selectbox", "multiselect", "date_input") for w in getattr(at, kind)}
    assert {label_of(s) for s in tpl.fields} <= labels  # every template field is on the form, units included
    at.time_input(key=hkey(nid, "start_time")).set_value(time(9, 0)).run()
    at.time_input(key=hkey(nid, "end_time")).set_value(time(9, 50)).run()
    at.date_input(key=hkey(nid, "session_date")).set_value(YESTERDAY).run()
    for spec in tpl.fields:
        if spec.required:
            with session_scope(engine) as s:
                current = s.get(SessionNote, nid).fields.get(spec.name)
            if current is None:
                _set(at, nid, spec.name, SPECIFIC.get(spec.name, SAMPLE.get(spec.kind)))
    with session_scope(engine) as s:  # autosave: every change is already stored
        stored = s.get(SessionNote, nid)
        assert stored.status == NoteStatus.draft and stored.version > 1
        assert all(stored.fields.get(sp.name) not in (None, "") for sp in tpl.fields if sp.required)
    at.button(key="sign_note").click().run()
    _ok(at)
    assert f"{tpl.title} note" in rendered_text(at) and "09:00 to 09:50" in rendered_text(at)
    at.button(key="confirm_sign").click().run()
    _ok(at)
    with session_scope(engine) as s:
        note = s.get(SessionNote, nid)
        assert note.status == NoteStatus.signed and note.content_hash and note.signed_by_id == clinic.tina.id
    # After signing, the viewer: edit controls gone, "Add addendum" offered.
    labels = [b.label for b in at.button]
    assert "Sign note" not in labels and "Save draft" not in labels
    assert "Add addendum" in labels
    assert "Note signed." in rendered_text(at)


def test_bad_input_shows_at_field_and_saves_nothing(engine, clinic):
    at = _ok(run_page("note_editor.py", "tina", "A-001"))
    nid = _start(at, "dosing")
    version = at.session_state[skey(nid, "state")]["version"]
    at.number_input(key=fkey(nid, "bp_systolic_pre")).set_value(300).run()
    errors = [e.value for e in at.error]
    assert any("between 60 and 260 mmHg, got 300" in e for e in errors)
    at.time_input(key=hkey(nid, "start_time")).set_value(time(11, 0)).run()
    at.time_input(key=hkey(nid, "end_time")).set_value(time(10, 0)).run()
    assert any("End time 10:00 is before start time 11:00" in e.value for e in at.error)
    at.date_input(key=hkey(nid, "session_date")).set_value(utcnow().date() + timedelta(days=5)).run()
    assert any("is in the future" in e.value for e in at.error)
    with session_scope(engine) as s:
        note = s.get(SessionNote, nid)
        assert note.version == version and "bp_systolic_pre" not in note.fields and note.end_time is None
    # Dose differing from the plan: allowed, warned at the field and recorded.
    at.number_input(key=fkey(nid, "bp_systolic_pre")).set_value(120).run()
    at.time_input(key=hkey(nid, "end_time")).set_value(time(12, 0)).run()
    at.date_input(key=hkey(nid, "session_date")).set_value(YESTERDAY).run()
    at.number_input(key=fkey(nid, "dose_mg")).set_value(200.0).run()
    _ok(at)
    assert any("differs from the active plan" in w.value for w in at.warning)
    with session_scope(engine) as s:
        assert s.get(SessionNote, nid).fields["dose_differs_from_plan"] is True


def test_conflict_shows_both_versions_and_overwrites_nothing(engine, clinic):
    at = _ok(run_page("note_editor.py", "tina", "A-001"))
    nid = _start(at, "check_in")
    at.text_area(key=fkey(nid, "data")).input("from this tab").run()
    v = at.session_state[skey(nid, "state")]["version"]
    with session_scope(engine) as s:  # the same draft saved from another tab
        notes.save_draft(s, clinic.tina, nid, v, fields={"data": "from the other tab"})
    at.text_area(key=fkey(nid, "data")).input("edited here again").run()
    _ok(at)
    text = rendered_text(at)
    assert "Conflict" in text and "Your version (not saved)" in text
    assert "edited here again" in text and "from the other tab" in text
    with session_scope(engine) as s:
        assert s.get(SessionNote, nid).fields["data"] == "from the other tab"
    at.button(key="conflict_keep_mine").click().run()
    _ok(at)
    with session_scope(engine) as s:
        assert s.get(SessionNote, nid).fields["data"] == "edited here again"
    assert "Your version (not saved)" not in rendered_text(at)


def test_conflict_load_saved_version(engine, clinic):
    at = _ok(run_page("note_editor.py", "tina", "A-001"))
    nid = _start(at, "check_in")
    v = at.session_state[skey(nid, "state")]["version"]
    with session_scope(engine) as s:
        notes.save_draft(s, clinic.tina, nid, v, fields={"data": "theirs"})
    at.text_area(key=fkey(nid, "data")).input("mine").run()
    at.button(key="conflict_load_saved").click().run()
    _ok(at)
    assert at.text_area(key=fkey(nid, "data")).value == "theirs"
    with session_scope(engine) as s:
        assert s.get(SessionNote, nid).fields["data"] == "theirs"


def test_reopen_draft_from_my_drafts_restores_content(clinic):
    at = _ok(run_page("note_editor.py", "tina", "A-001"))
    nid = _start(at, "preparation")
    at.text_area(key=fkey(nid, "intention")).input("Be gentle with myself").run()
    # A new browser session (the tab was closed): My drafts lists the draft, Open restores it.
    at2 = _ok(run_page("my_drafts.py", "tina"))
    assert "A-001" in rendered_text(at2)
    at2.button(key=f"open_draft_{nid}").click().run()
    _ok(at2)
    assert at2.session_state["edit_note_id"] == nid and at2.session_state["patient_id"] == clinic.a1
    # (st.switch_page needs app.py's navigation; AppTest runs the editor page with that state.)
    at3 = _ok(run_page("note_editor.py", "tina", "A-001", edit_note_id=nid))
    assert at3.text_area(key=fkey(nid, "intention")).value == "Be gentle with myself"
    assert "Sign note" in [b.label for b in at3.button]


def test_load_last_note_marks_carried_over(engine, clinic):
    with session_scope(engine) as s:
        n = notes.create_draft(s, clinic.tina, clinic.a1, "preparation", session_date=YESTERDAY,
                               fields={"data": "d", "assessment": "a", "plan": "Old plan", "intention": "Old intention",
                                       "homework": "Old homework"})
        notes.sign(s, clinic.tina, n.id, n.version, start_time="09:00")
    at = _ok(run_page("note_editor.py", "tina", "A-001"))
    nid = _start(at, "preparation", carry=True)
    assert "Carried over from the signed note" in rendered_text(at)
    assert at.text_area(key=fkey(nid, "homework")).value == "Old homework"
    assert at.text_area(key=fkey(nid, "data")).value == ""


def _signed(engine, clinic, free_text="Plain words.", patient=None):
    with session_scope(engine) as s:
        n = notes.create_draft(s, clinic.tina, patient or clinic.a1, "check_in", session_date=YESTERDAY,
                               fields={"data": "Observed calm.", "assessment": "Stable.", "plan": "Continue."},
                               free_text=free_text)
        notes.sign(s, clinic.tina, n.id, n.version, start_time="09:00")
        return n.id


def test_viewer_read_only_addenda_in_order_and_hostile_text_literal(engine, clinic):
    hostile = "**bold** <script>alert(1)</script> [link](http://evil.example)"
    nid = _signed(engine, clinic, hostile)
    at = _ok(run_page("notes.py", "paul", "A-001", view_note_id=nid))
    texts = [t.value for t in at.text]
    assert hostile in texts  # rendered with st.text: literally, not as Markdown
    assert all(hostile not in m.value for m in at.markdown)
    labels = [b.label for b in at.button]
    assert "Continue editing" not in labels and "Add addendum" in labels
    at.text_area(key=f"addendum_text_{nid}").input("Prescriber addendum one")
    at.button(key=f"FormSubmitter:addendum_{nid}-Add addendum").click().run()
    _ok(at)
    at2 = _ok(run_page("notes.py", "tina", "A-001", view_note_id=nid))
    at2.text_area(key=f"addendum_text_{nid}").input("Therapist addendum two")
    at2.button(key=f"FormSubmitter:addendum_{nid}-Add addendum").click().run()
    _ok(at2)
    texts = [t.value for t in at2.text]
    assert texts.index("Prescriber addendum one") < texts.index("Therapist addendum two")
    with session_scope(engine) as s:
        assert [a.author_id for a in s.exec(select(Addendum).order_by(Addendum.id)).all()] == [clinic.paul.id,
                                                                                             clinic.tina.id]
        assert s.get(SessionNote, nid).free_text == hostile


def test_prescriber_sees_signed_notes_never_drafts_or_process_notes(engine, clinic):
    signed = _signed(engine, clinic)
    with session_scope(engine) as s:
        draft = notes.create_draft(s, clinic.tina, clinic.a1, "dosing", session_date=YESTERDAY,
                                   free_text="DRAFT-ONLY-WORDS")
        process_notes.add(s, clinic.tina, clinic.a1, "PRIVATE-PROCESS-WORDS")
    at = _ok(run_page("notes.py", "paul", "A-001"))
    buttons = [b.key for b in at.button]
    assert f"open_note_{signed}" in buttons and f"open_note_{draft.id}" not in buttons
    assert "New note" not in [b.label for b in at.button]
    # Forcing the draft's id into the session shows a refusal, not the draft.
    at = _ok(run_page("notes.py", "paul", "A-001", view_note_id=draft.id))
    text = rendered_text(at)
    assert "DRAFT-ONLY-WORDS" not in text and "do not have access" in text
    for page in ("process_notes.py", "my_drafts.py", "note_editor.py"):
        at = _ok(run_page(page, "paul", "A-001", edit_note_id=draft.id))
        text = rendered_text(at)
        assert "not available for your role" in text
        assert "PRIVATE-PROCESS-WORDS" not in text and "DRAFT-ONLY-WORDS" not in text
    # The therapist sees both, and the draft opens in the viewer with "Continue editing".
    at = _ok(run_page("notes.py", "tina", "A-001", view_note_id=draft.id))
    assert "Continue editing" in [b.label for b in at.button]
    at = _ok(run_page("process_notes.py", "tina", "A-001"))
    assert "PRIVATE-PROCESS-WORDS" in rendered_text(at)


def test_timeline_filters_and_search(engine, clinic):
    signed = _signed(engine, clinic, "The word aurora appears here.")
    other = _signed(engine, clinic, "Nothing special.", patient=clinic.a2)
    with session_scope(engine) as s:
        draft = notes.create_draft(s, clinic.tina, clinic.a1, "preparation", session_date=YESTERDAY)
    at = _ok(run_page("notes.py", "tina", "A-001"))
    keys = [b.key for b in at.button]
    assert f"open_note_{signed}" in keys and f"open_note_{draft.id}" in keys and f"open_note_{other}" not in keys
    at.multiselect(key="filter_status").select("draft").run()
    keys = [b.key for b in at.button]
    assert f"open_note_{draft.id}" in keys and f"open_note_{signed}" not in keys
    at.multiselect(key="filter_status").unselect("draft").run()
    at.multiselect(key="filter_types").select("preparation").run()
    assert f"open_note_{signed}" not in [b.key for b in at.button]
    at.text_input(key="note_search").input("AURORA").run()
    _ok(at)
    assert f"hit_{signed}" in [b.key for b in at.button]
    at.button(key=f"hit_{signed}").click().run()
    _ok(at)
    assert at.session_state["view_note_id"] == signed
    assert "The word aurora appears here." in [t.value for t in at.text]


def test_process_notes_page_write_and_edit(engine, clinic):
    at = _ok(run_page("process_notes.py", "tina", "A-001"))
    at.text_area(key="pn_new_text").input("First private thought")
    at.button(key="FormSubmitter:new_process_note-Save process note").click().run()
    _ok(at)
    with session_scope(engine) as s:
        rows = process_notes.list_mine(s, clinic.tina, clinic.a1)
        assert [r.text for r in rows] == ["First private thought"]
        pid_, ver = rows[0].id, rows[0].version
    at.text_area(key=f"pn_text_{pid_}_{ver}").input("Revised thought").run()
    at.button(key=f"pn_save_{pid_}_{ver}").click().run()
    _ok(at)
    with session_scope(engine) as s:
        assert process_notes.list_mine(s, clinic.tina, clinic.a1)[0].text == "Revised thought"


def test_inputs_emptied_together_by_an_interrupted_run_are_restored(engine, clinic):
    """Streamlit can hand back several untouched inputs empty after a stopped run; autosave must
    not wipe them. A single input cleared by the user is saved as cleared."""
    at = _ok(run_page("note_editor.py", "tina", "A-001"))
    nid = _start(at, "dosing")
    at.number_input(key=fkey(nid, "minutes_in_mouth")).set_value(None)
    at.number_input(key=fkey(nid, "session_number")).set_value(None)
    at.time_input(key=hkey(nid, "start_time")).set_value(None)
    at.text_area(key=fkey(nid, "intention")).input("typed meanwhile")
    at.run()
    _ok(at)
    with session_scope(engine) as s:
        note = s.get(SessionNote, nid)
        assert note.fields["intention"] == "typed meanwhile"
        assert note.fields["minutes_in_mouth"] == 10 and note.fields["session_number"] == 1
        assert note.start_time is not None
    assert at.number_input(key=fkey(nid, "minutes_in_mouth")).value == 10
    at.number_input(key=fkey(nid, "minutes_in_mouth")).set_value(None).run()  # one deliberate clear
    with session_scope(engine) as s:
        assert "minutes_in_mouth" not in s.get(SessionNote, nid).fields


def test_sign_with_end_before_start_or_no_date_is_refused_at_the_field(engine, clinic):
    """End before start, or a session date the browser could not read (it comes back empty):
    Sign says why at the field; the note is not signed, and never with today's date instead."""
    at = _ok(run_page("note_editor.py", "tina", "A-001"))
    nid = _start(at, "integration")
    at.date_input(key=hkey(nid, "session_date")).set_value(YESTERDAY).run()
    for name, value in (("client_account", "Calmer."), ("risk_check", "Denies."), ("plan", "Continue.")):
        at.text_area(key=fkey(nid, name)).input(value).run()
    at.time_input(key=hkey(nid, "start_time")).set_value(time(11, 0)).run()
    at.time_input(key=hkey(nid, "end_time")).set_value(time(10, 0)).run()
    at.button(key="sign_note").click().run()
    _ok(at)
    assert "Not signed yet" in rendered_text(at)
    assert any("End time 10:00 is before start time 11:00" in e.value for e in at.error)
    at.time_input(key=hkey(nid, "end_time")).set_value(time(11, 50)).run()
    at.date_input(key=hkey(nid, "session_date")).set_value(None)
    at.button(key="sign_note").click().run()
    _ok(at)
    assert any("Enter the session date" in e.value for e in at.error)
    with session_scope(engine) as s:
        note = s.get(SessionNote, nid)
        assert note.status == NoteStatus.draft and note.session_date == YESTERDAY
        assert (note.start_time, note.end_time) == ("11:00", "11:50")
    at.date_input(key=hkey(nid, "session_date")).set_value(YESTERDAY)
    at.button(key="sign_note").click().run()
    _ok(at)
    at.button(key="confirm_sign").click().run()
    _ok(at)
    with session_scope(engine) as s:
        note = s.get(SessionNote, nid)
        assert note.status == NoteStatus.signed and note.session_date == YESTERDAY and note.end_time == "11:50"


def _ready_integration(at, nid, end=time(10, 50)):
    at.date_input(key=hkey(nid, "session_date")).set_value(YESTERDAY).run()
    for name, value in (("client_account", "Calmer."), ("risk_check", "Denies."), ("plan", "Continue.")):
        at.text_area(key=fkey(nid, name)).input(value).run()
    at.time_input(key=hkey(nid, "start_time")).set_value(time(10, 0)).run()
    if end is not None:
        at.time_input(key=hkey(nid, "end_time")).set_value(end).run()


def test_sign_asks_for_confirmation_with_a_summary(engine, clinic):
    """Sign shows type, date, times and asks; "Not yet" and an edit leave a draft; "Yes, sign" signs."""
    at = _ok(run_page("note_editor.py", "tina", "A-001"))
    nid = _start(at, "integration")
    _ready_integration(at, nid)
    at.button(key="sign_note").click().run()
    _ok(at)
    text = rendered_text(at)
    assert "Sign this note?" in text
    assert f"Integration session note · {YESTERDAY.strftime('%A %-d %B %Y')} · 10:00 to 10:50 · In person" in text
    with session_scope(engine) as s:
        assert s.get(SessionNote, nid).status == NoteStatus.draft  # one click signs nothing
    at.button(key="cancel_sign").click().run()
    assert "Sign this note?" not in rendered_text(at)
    at.button(key="sign_note").click().run()
    at.text_area(key=fkey(nid, "plan")).input("Continue; review in a week.").run()  # an edit closes it
    assert "Sign this note?" not in rendered_text(at)
    with session_scope(engine) as s:
        assert s.get(SessionNote, nid).status == NoteStatus.draft
    at.button(key="sign_note").click().run()
    at.button(key="confirm_sign").click().run()
    _ok(at)
    with session_scope(engine) as s:
        note = s.get(SessionNote, nid)
        assert note.status == NoteStatus.signed and note.fields["plan"] == "Continue; review in a week."


def test_sign_refuses_a_missing_or_future_end_time(engine, clinic):
    at = _ok(run_page("note_editor.py", "tina", "A-001"))
    nid = _start(at, "integration")
    _ready_integration(at, nid, end=None)
    at.button(key="sign_note").click().run()
    assert any("Enter the session's end time before signing" in e.value for e in at.error)
    assert "Sign this note?" not in rendered_text(at)
    at.date_input(key=hkey(nid, "session_date")).set_value(notes._local_today()).run()
    at.time_input(key=hkey(nid, "start_time")).set_value(time(0, 0)).run()
    at.time_input(key=hkey(nid, "end_time")).set_value(time(23, 55)).run()
    at.button(key="sign_note").click().run()
    late = utcnow().astimezone(get_settings().tz).strftime("%H:%M") > "23:49"
    assert late or any("has not come yet" in e.value for e in at.error)
    with session_scope(engine) as s:
        assert s.get(SessionNote, nid).status == NoteStatus.draft
