"""AppTest: dashboard, dose log, measures and import pages (signed in by role, signed out, other team)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import select
from streamlit.testing.v1 import AppTest

from kapnotes import assessments, doses
from kapnotes.db import session_scope
from kapnotes.models import Assessment, AuditEvent, DoseEntry, NoteStatus, SessionNote
from kapnotes.timeutil import utcnow
from tests.helpers.apptest import run_page
from tests.helpers.records import add_history

PAGES = ["dashboard", "dose_log", "import_doses", "measures"]


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "text", "info", "error", "success", "warning", "code")
             for e in at.get(kind) if isinstance(getattr(e, "value", None), str)]
    parts += [f"{m.label}: {m.value}" for m in at.metric]
    return "\n".join(parts)


@pytest.mark.parametrize("name", PAGES)
def test_signed_out_shows_sign_in_only(clinic, name):
    at = run_page(name)
    assert any(b.label == "Sign in" for b in at.button)
    assert "Alice" not in texts(at) and "A-001" not in texts(at)


@pytest.mark.parametrize("name", PAGES)
def test_admin_refused(clinic, name):
    at = run_page(name, "ada", "A-001")
    assert "not available for your role" in texts(at)
    assert "A-001" not in texts(at)


@pytest.mark.parametrize("name", PAGES)
def test_other_team_patient_refused(clinic, name):
    at = run_page(name, "theo", "A-001")
    assert "do not have access" in texts(at)
    assert "Alice" not in texts(at)


@pytest.mark.parametrize("name", PAGES)
def test_no_patient_selected(clinic, name):
    at = run_page(name, "tina")
    assert "Choose a patient on the Patients page first." in texts(at)


def test_dashboard_empty_states(clinic):
    at = run_page("dashboard", "tina", "A-002")
    assert not at.exception
    t = texts(at)
    assert "No doses logged yet — add one or import a CSV." in t
    assert "No GAD-7 or PHQ-9 recorded yet" in t
    assert "Dose log: 0 doses logged" in t
    assert "No signed integration note yet" in t


def test_dashboard_with_history(engine, clinic):
    add_history(engine, clinic)
    at = run_page("dashboard", "paul", "A-001")
    assert not at.exception
    t = texts(at)
    assert "Dose log: 6 doses logged" in t
    assert "Plan: 150 mg" in t and "GAD-7: 6" in t
    assert "GAD-7 baseline 15, latest 6: response" in t
    assert "Breathing practice <b>twice</b> daily" in t  # literal, via st.text
    assert "Next dose Friday" in t
    assert "Since this plan version took effect: 6 of 8 planned doses taken" in t
    charts = at.get("vega_lite_chart")
    assert len(charts) == 3  # scores + effects + BP
    with session_scope(engine) as s:
        opened = s.exec(select(AuditEvent).where(AuditEvent.action == "patient.open",
                                                 AuditEvent.actor_id == clinic.paul.id)).all()
        assert [e.detail for e in opened] == ["dashboard"]


def test_dashboard_shows_safety_flag(engine, clinic):
    with session_scope(engine) as s:
        assessments.record_assessment(s, clinic.tina, clinic.a1, "PHQ-9", assessments._today(), items=[1] * 9)
    at = run_page("dashboard", "tina", "A-001")
    assert "SAFETY FLAG" in texts(at)


def _submit(at: AppTest, label: str) -> AppTest:
    [b for b in at.button if b.label == label][0].click()
    return at.run()


def test_dose_log_add_and_bad_input(engine, clinic):
    at = run_page("dose_log", "tina", "A-001")
    assert not at.exception
    assert "No doses logged yet — add one or import a CSV." in texts(at)
    at = run_page("dose_log", "tina", "A-001", dose_tab="Add a dose")
    at.number_input(key="add_bp_systolic_pre").set_value(120)
    at.number_input(key="add_bp_diastolic_pre").set_value(130)  # systolic not above diastolic
    at = _submit(at, "Save dose")
    assert "systolic (120) must be above diastolic (130)" in texts(at)
    with session_scope(engine) as s:
        assert s.exec(select(DoseEntry)).all() == []
    at.number_input(key="add_bp_diastolic_pre").set_value(80)
    at.number_input(key="add_anxiety_before").set_value(7)
    at = _submit(at, "Save dose")
    assert not at.exception
    with session_scope(engine) as s:
        rows = s.exec(select(DoseEntry)).all()
        assert len(rows) == 1
        assert (rows[0].dose_mg, rows[0].formulation, rows[0].anxiety_before) == (150, "odt", 7)  # plan defaults
    at = run_page("dose_log", "tina", "A-001")
    assert "1 dose shown" in texts(at)


def test_dose_log_runs_only_the_open_tab(engine, clinic):
    """The entry forms (about 40 widgets) are built only when their tab is open: a rerun of the
    log does not pay for them, and the log's table is not built behind the forms."""
    add_history(engine, clinic)
    with session_scope(engine) as s:
        doses.add_dose(s, clinic.tina, clinic.a1, doses.DoseInput(
            taken_at=utcnow() - timedelta(hours=3), dose_mg=150, formulation="odt", context="home_with_sitter"))
    at = run_page("dose_log", "tina", "A-001")
    keys = {w.key for w in at.number_input}
    assert len(at.dataframe) == 1 and "7 doses shown" in texts(at)
    assert "At home with a sitter" in list(at.dataframe[0].value["Context"])  # words, not codes
    assert not any(k.startswith(("add_", "edit")) for k in keys)
    assert "de_entry" not in {w.key for w in at.selectbox}
    at = run_page("dose_log", "tina", "A-001", dose_tab="Add a dose")
    assert "add_dose" in {w.key for w in at.number_input} and len(at.dataframe) == 0
    assert [b.label for b in at.button if b.label != "Sign out"] == ["Save dose"]
    at = run_page("dose_log", "tina", "A-001", dose_tab="Edit or void")
    assert len(at.dataframe) == 0 and at.selectbox(key="de_entry").value is not None
    assert "Save dose" not in [b.label for b in at.button]


def test_dose_log_void(engine, clinic):
    add_history(engine, clinic)
    at = run_page("dose_log", "tina", "A-001", dose_tab="Edit or void")
    entry_id = at.selectbox(key="de_entry").value
    at.text_input(key=f"void_reason_{entry_id}").input("Entered twice")
    at = _submit(at, "Void this entry")
    assert not at.exception
    with session_scope(engine) as s:
        assert s.get(DoseEntry, entry_id).void_reason == "Entered twice"


def test_measures_items_and_flag(engine, clinic):
    at = run_page("measures", "tina", "A-001")
    assert "Feeling nervous, anxious, or on edge" in "\n".join(r.label for r in at.radio)
    for i in range(1, 8):
        at.radio(key=f"ms_GAD-7_item{i}").set_value(2)
    at = _submit(at, "Save score")
    assert "Saved GAD-7: total **14**, band **moderate**." in texts(at)
    at.radio(key="ms_instrument").set_value("PHQ-9").run()
    labels = "\n".join(r.label for r in at.radio)
    assert "Thoughts that you would be better off dead" in labels
    for i in range(1, 10):
        at.radio(key=f"ms_PHQ-9_item{i}").set_value(1)
    at = _submit(at, "Save score")
    assert "safety flag is raised" in texts(at)
    with session_scope(engine) as s:
        rows = s.exec(select(Assessment).order_by(Assessment.id)).all()
        assert [(r.instrument, r.total, r.item9) for r in rows] == [("GAD-7", 14, None), ("PHQ-9", 9, 1)]
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "safety.flag_raised")).first() is not None
    at = at.run()
    assert "SAFETY FLAG" in texts(at)


def test_measures_incomplete_items_write_nothing(engine, clinic):
    at = run_page("measures", "tina", "A-001")
    at.radio(key="ms_GAD-7_item1").set_value(3)
    at = _submit(at, "Save score")
    assert "Answer every item before saving" in texts(at)
    with session_scope(engine) as s:
        assert s.exec(select(Assessment)).all() == []


def test_measures_total_only_phq9_requires_item9(clinic):
    at = run_page("measures", "tina", "A-001")
    at.radio(key="ms_instrument").set_value("PHQ-9").run()
    at.radio(key="ms_mode").set_value("Total only").run()
    at.number_input(key="ms_PHQ-9_total").set_value(12)
    at = _submit(at, "Save score")
    assert "still needs the answer to item 9" in texts(at)
    at.number_input(key="ms_PHQ-9_total").set_value(12)
    at.radio(key="ms_phq9_item9_only").set_value(0)
    at = _submit(at, "Save score")
    assert "Saved PHQ-9: total **12**, band **moderate**." in texts(at)


def test_import_page_without_file(clinic):
    at = run_page("import_doses", "tina", "A-001")
    assert not at.exception
    assert "Nothing is written until you press Import" in texts(at)
    assert "No imports for this patient yet." in texts(at)


def _edit_form(engine, clinic) -> tuple[AppTest, int, int]:
    """The dose log's edit tab on the small clinic's history: the page, the entry it selected first
    and that entry's version (the edit form's keys name both)."""
    add_history(engine, clinic)
    at = run_page("dose_log", "tina", "A-001", dose_tab="Edit or void")
    entry_id = at.selectbox(key="de_entry").value
    with session_scope(engine) as s:
        version = s.get(DoseEntry, entry_id).version
    return at, entry_id, version


def test_dose_log_edit_and_locked_entry(engine, clinic):
    at, entry_id, version = _edit_form(engine, clinic)
    at.number_input(key=f"edit{entry_id}v{version}_dose").set_value(125.0)
    at = _submit(at, "Save changes")
    assert not at.exception
    with session_scope(engine) as s:
        row = s.get(DoseEntry, entry_id)
        assert (row.dose_mg, row.version) == (125, version + 1)
        note = SessionNote(patient_id=clinic.a1, author_id=clinic.tina.id, note_type="dosing",
                           status=NoteStatus.signed, session_date=date.today(), fields={})
        s.add(note)
        s.flush()
        row.session_note_id = note.id
        s.add(row)
    at = run_page("dose_log", "tina", "A-001", dose_tab="Edit or void")
    assert "part of a signed session note" in texts(at)
    assert not [b for b in at.button if b.label in ("Save changes", "Void this entry")]


def test_dashboard_three_years_of_daily_doses(engine, clinic):
    from sqlalchemy import insert

    now = utcnow()
    with session_scope(engine) as s:
        s.execute(insert(DoseEntry.__table__), [
            {"taken_at": now - timedelta(days=i), "dose_mg": 150, "formulation": "odt", "context": "home",
             "anxiety_before": 6, "anxiety_after": 2, "dissociation": 4, "nausea": 0, "vomited": False,
             "bp_systolic_pre": 120, "bp_diastolic_pre": 80, "bp_systolic_post": 132, "bp_diastolic_post": 86,
             "adverse_events": "", "patient_id": clinic.a1, "source": "import", "entered_by_id": clinic.tina.id,
             "created_at": now, "version": 1} for i in range(1, 1096)])
    at = run_page("dashboard", "tina", "A-001")
    assert not at.exception
    assert "Dose log: 1095 doses logged" in texts(at)
    assert len(at.get("vega_lite_chart")) == 2  # no scores yet: effects + BP (weekly means)


def test_hostile_text_renders_literally(engine, clinic):
    hostile = "<img src=x onerror=alert(1)> **bold** [link](http://evil.example)"
    with session_scope(engine) as s:
        doses.add_dose(s, clinic.tina, clinic.a1, doses.DoseInput(
            taken_at=utcnow() - timedelta(days=1), dose_mg=150, formulation="odt", notes=hostile))
        s.add(SessionNote(patient_id=clinic.a1, author_id=clinic.tina.id, note_type="integration",
                          status=NoteStatus.signed, session_date=date.today(), fields={"homework": hostile}))
    at = run_page("dashboard", "tina", "A-001")
    assert hostile in [t.value for t in at.text]  # st.text: no markdown, no HTML
    at = run_page("dose_log", "tina", "A-001")
    assert not at.exception
    table = at.dataframe[0].value
    assert hostile in list(table["Notes"])


def test_banner_prints_a_markdown_name_literally(engine, clinic):
    from kapnotes.models import Patient
    from kapnotes.textsafe import md_escape

    with session_scope(engine) as s:
        p = s.get(Patient, clinic.a1)
        p.full_name = "**Ann** _[x](http://evil.example)_ # <b>"
        s.add(p)
    at = run_page("dashboard", "tina", "A-001")
    assert not at.exception, at.exception
    heading = at.markdown[0].value
    assert heading.startswith("### ")
    # every markdown character is escaped: the name shows as typed, with no link or bold
    assert heading == "### " + md_escape("**Ann** _[x](http://evil.example)_ # <b>")
    assert "\\*\\*Ann\\*\\*" in heading and "\\[x\\]" in heading and "\\<b\\>" in heading


def _rows(engine, model=DoseEntry) -> list:
    with session_scope(engine) as s:
        return s.exec(select(model)).all()


def test_dose_log_unusual_dose_asks_for_confirmation_then_saves(engine, clinic):
    """900 mg on a 150 mg plan: the reason and a confirmation at the dose field, nothing saved;
    confirmed, it is recorded as taken."""
    at = run_page("dose_log", "tina", "A-001", dose_tab="Add a dose")
    at.number_input(key="add_dose").set_value(900.0)
    at = _submit(at, "Save dose")
    assert not at.exception
    assert ("Dose (mg): 900 mg is above the plan's 150 mg and the protocol's 300 mg ceiling. Check the number; "
            "if that is what was taken, confirm it.") in texts(at)
    assert _rows(engine) == []
    confirm = at.checkbox(key="add_confirm_900")
    assert confirm.label == "Yes, 900 mg was taken — record it" and confirm.value is False
    at = _submit(at, "Save dose")  # saving again without ticking it: still refused
    assert _rows(engine) == []
    at.checkbox(key="add_confirm_900").check()
    at = _submit(at, "Save dose")
    assert not at.exception
    assert [r.dose_mg for r in _rows(engine)] == [900]
    assert "Dose saved: 900 mg" in texts(at)
    assert "mg is above the plan" not in texts(at)  # the form starts afresh (no confirmation left)
    # ... and then holds: the banner carries the engine's dose-above-plan flag
    assert "a dose above the plan's dose was taken" in texts(at)


def test_dose_log_confirmation_is_for_that_dose_only(engine, clinic):
    at = run_page("dose_log", "tina", "A-001", dose_tab="Add a dose")
    at.number_input(key="add_dose").set_value(900.0)
    at = _submit(at, "Save dose")
    at.checkbox(key="add_confirm_900").check()
    at.number_input(key="add_dose").set_value(950.0)  # changed after confirming 900
    at = _submit(at, "Save dose")
    assert "Dose (mg): 950 mg is above" in texts(at)
    assert _rows(engine) == []


@pytest.mark.parametrize(("key", "words"), [
    ("add_date", "Date taken: enter a valid date"),
    ("add_time", "Time taken: enter a valid time"),
    ("add_dose", "Dose (mg): enter the dose in mg."),
])
def test_dose_log_unreadable_value_is_refused_not_replaced(engine, clinic, key, words):
    """A date, time or dose the browser could not read comes back empty: Save says why at the
    field, and nothing is recorded with today's date or the plan's dose instead."""
    at = run_page("dose_log", "tina", "A-001", dose_tab="Add a dose")
    getattr(at, {"add_date": "date_input", "add_time": "time_input", "add_dose": "number_input"}[key])(
        key=key).set_value(None)
    at = _submit(at, "Save dose")
    assert not at.exception
    assert words in texts(at)
    assert _rows(engine) == []


def test_dose_log_future_dose_refused_at_the_field(engine, clinic):
    at = run_page("dose_log", "tina", "A-001", dose_tab="Add a dose")
    at.date_input(key="add_date").set_value(date(2090, 1, 1))
    at = _submit(at, "Save dose")
    assert "Date and time taken: this time is in the future" in texts(at)
    assert _rows(engine) == []


def test_dose_log_messages_use_the_labels(engine, clinic):
    at = run_page("dose_log", "tina", "A-001", dose_tab="Add a dose")
    at.number_input(key="add_bp_systolic_pre").set_value(300)
    at.number_input(key="add_bp_diastolic_pre").set_value(80)
    at = _submit(at, "Save dose")
    t = texts(at)
    assert "Blood pressure before the dose: systolic (mmHg) must be 60–260, got 300." in t
    assert "Bp systolic pre" not in t and "bp_systolic_pre" not in t
    assert _rows(engine) == []


def test_measures_future_date_refused_not_saved_as_today(engine, clinic):
    at = run_page("measures", "tina", "A-001")
    at.date_input(key="ms_date_GAD-7").set_value(date(2090, 1, 1))
    for i in range(1, 8):
        at.radio(key=f"ms_GAD-7_item{i}").set_value(2)
    at = _submit(at, "Save score")
    assert not at.exception
    assert "Date answered: 2090-01-01 is after today" in texts(at)
    assert _rows(engine, Assessment) == []
    assert at.radio(key="ms_GAD-7_item1").value == 2  # the answers are kept
    at.date_input(key="ms_date_GAD-7").set_value(None)  # unreadable: refused, never today
    at = _submit(at, "Save score")
    assert "Date answered: enter a valid date" in texts(at)
    assert _rows(engine, Assessment) == []


def test_dose_log_edit_to_unusual_dose_asks_for_confirmation(engine, clinic):
    at, entry_id, version = _edit_form(engine, clinic)
    prefix = f"edit{entry_id}v{version}"
    at.number_input(key=f"{prefix}_dose").set_value(400.0)
    at = _submit(at, "Save changes")
    assert "Dose (mg): 400 mg is above the plan's 150 mg and the protocol's 300 mg ceiling." in texts(at)
    with session_scope(engine) as s:
        assert s.get(DoseEntry, entry_id).dose_mg == 150
    at.checkbox(key=f"{prefix}_confirm_400").check()
    at = _submit(at, "Save changes")
    assert not at.exception
    with session_scope(engine) as s:
        row = s.get(DoseEntry, entry_id)
        assert (row.dose_mg, row.version) == (400, version + 1)


# --- one click from the patient (issue 16) --------------------------------------------------------


def test_dashboard_action_row_has_every_patient_task(clinic):
    at = run_page("dashboard", "tina", "A-001")
    assert not at.exception, at.exception
    labels = [b.label for b in at.button]  # page links become (disabled) buttons when run on its own
    for label in ("New note", "Add a dose", "Enter GAD-7 / PHQ-9", "Propose a change", "Export"):
        assert label in labels, labels
    at = run_page("dashboard", "paul", "A-001")
    labels = [b.label for b in at.button]
    assert "New note" not in labels and "Propose a change" in labels and "Export" in labels


def test_audit_log_filters_by_mrn(engine, clinic):
    """The admin types the MRN (never an internal id); the service resolves it."""
    from kapnotes import patients

    with session_scope(engine) as s:
        patients.open_record(s, clinic.tina, clinic.a1, "dashboard")
    at = run_page("audit_log", "ada")
    assert not at.exception, at.exception
    assert "Patient id" not in [w.label for w in at.number_input]

    def mrn(value):
        next(t for t in at.text_input if t.label == "Patient MRN").input(value).run()

    mrn("A-001")
    table = at.dataframe[0].value
    assert "patient.open" in set(table["Action"]) and "Patient id" not in table.columns and "#" not in table.columns
    mrn("A-002")
    assert not at.dataframe or "patient.open" not in set(at.dataframe[0].value["Action"])
    mrn("Z-999")
    assert any("No patient has the MRN 'Z-999'" in e.value for e in at.error)


def test_audit_log_pages_50_at_a_time(engine, clinic):
    from kapnotes import audit

    with session_scope(engine) as s:
        for _ in range(70):
            audit.record(s, clinic.tina, "patient.open", "patient", clinic.a1, clinic.a1, detail="dashboard")
    at = run_page("audit_log", "ada")
    assert len(at.dataframe[0].value) == 50
    assert next(b for b in at.button if b.label == "Previous").disabled
    next(b for b in at.button if b.label == "Next").click().run()
    assert 20 <= len(at.dataframe[0].value) < 50
    assert any("events 51–" in c.value for c in at.caption)


def test_import_preview_warns_of_doses_above_the_plan(engine, clinic):
    """A 400 mg row (the plan is 150 mg) is recorded as the file says; the preview warns by row
    that the dose rules will hold the plan. Nothing is written by the preview."""
    day = (utcnow() - timedelta(days=3)).date().isoformat()
    data = (f"taken_at,dose_mg,formulation,context,adverse_events,notes\n"
            f"{day} 10:00,150,odt,home,,\n{day} 19:00,400,odt,home_with_sitter,chest_pain,second\n").encode()
    at = run_page("import_doses", "tina", "A-001")
    at.file_uploader[0].upload("doses.csv", data, "text/csv").run()
    assert not at.exception, at.exception
    warning = "\n".join(w.value for w in at.warning)
    assert "1 row has a dose above the plan or the protocol's ceiling" in warning
    assert "the dose rules will then hold the plan" in warning
    rows = next(d.value for d in at.dataframe if "Warning" in d.value.columns)
    assert list(rows["Row"]) == [3] and "400" in rows["Warning"][0]
    preview = next(d.value for d in at.dataframe if "Dose (mg)" in d.value.columns)
    assert "At home with a sitter" in list(preview["Context"]) and "chest pain" in list(preview["Adverse events"])
    with session_scope(engine) as s:
        assert not s.exec(select(DoseEntry).where(DoseEntry.patient_id == clinic.a1)).all()


def test_dose_log_pages_fifty_rows_at_a_time(engine, clinic):
    """1,100 doses: the page shows 50 of them with "Rows 1–50 of 1,100"; Next moves on."""
    now = utcnow()
    with session_scope(engine) as s:
        s.add_all([DoseEntry(patient_id=clinic.a1, taken_at=now - timedelta(hours=2 + 2 * i), dose_mg=150,
                             formulation="odt", context="home", entered_by_id=clinic.tina.id) for i in range(1100)])
    at = run_page("dose_log", "tina", "A-001")
    at.session_state["dl_period"] = ((now - timedelta(days=200)).date(), now.date())
    at.run()
    assert not at.exception, at.exception
    assert len(at.dataframe[0].value) == 50 and "rows 1–50 of 1,100" in texts(at)
    next(b for b in at.button if b.label == "Next").click().run()
    assert len(at.dataframe[0].value) == 50 and "rows 51–100 of 1,100" in texts(at)
    assert next(b for b in at.button if b.label == "Previous").disabled is False
    assert any(b.label.startswith("Prepare dose log (CSV)") for b in at.button)
