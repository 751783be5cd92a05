"""AppTest of the foundation pages: sign-in, idle sign-out, sign-out, Patients, dashboard, admin.

Pages are run file by file, as a URL opened in a fresh browser session would run them
(with ``pages/`` + ``st.navigation`` a page can run before app.py). The sign-in flow
itself is tested through ``kapnotes.ui.guard`` in a small script.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, col, select
from streamlit.testing.v1 import AppTest

from kapnotes.models import AuditEvent
from kapnotes.timeutil import utcnow
from tests.factories import PASSWORD
from tests.helpers.apptest import run_page
from tests.helpers.uitext import ROOT, app_pages, rendered_text

FOUNDATION_PAGES = {
    "pages/patients.py": ("therapist", "prescriber"),
    "pages/dashboard.py": ("therapist", "prescriber"),
    "pages/admin_users.py": ("admin",),
    "pages/admin_teams.py": ("admin",),
    "pages/audit_log.py": ("admin", "auditor"),
}
PATIENT_MARKERS = ("Alice Able", "A-001", "Aaron Ames", "A-002", "Bea Brook", "B-001")
REFUSAL = "This page is not available for your role."
GENERIC_DENIED = "You do not have access to this record."


def actions(engine, action: str) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))).all())


def press(at: AppTest, label: str) -> AppTest:
    """Click the first button labelled ``label`` and run the page."""
    return at.button[[b.label for b in at.button].index(label)].click().run()


def shows_sign_in_only(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert [b.label for b in at.button] == ["Sign in"]
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    text = rendered_text(at)
    for marker in PATIENT_MARKERS:
        assert marker not in text


def test_foundation_pages_are_in_the_navigation_with_their_roles():
    table = {p[0]: p[3] for p in app_pages()}
    for page, roles in FOUNDATION_PAGES.items():
        assert (ROOT / page).exists()
        assert tuple(table[page]) == roles


# --- signed out ---------------------------------------------------------------------------


@pytest.mark.parametrize("page", sorted(FOUNDATION_PAGES))
def test_signed_out_page_shows_only_the_sign_in_form(clinic, page):
    shows_sign_in_only(run_page(page, patient="A-001"))


@pytest.mark.parametrize("page", sorted(FOUNDATION_PAGES))
def test_deactivated_user_is_signed_out(engine, clinic, page):
    from kapnotes import admin, auth
    from kapnotes.db import session_scope

    with session_scope(engine) as s:
        if "admin" in FOUNDATION_PAGES[page]:
            user = auth.create_user(s, None, "ada2", "admin", "Ada Two", PASSWORD)
        else:
            user = clinic.tina
        admin.set_active(s, clinic.ada, user.id, False)
    at = run_page(page, user.username, patient="A-001")
    shows_sign_in_only(at)
    assert "user_id" not in at.session_state


# --- wrong role ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "page, role",
    [(p, r) for p, roles in sorted(FOUNDATION_PAGES.items()) for r in ("therapist", "prescriber", "admin")
     if r not in roles],
)
def test_wrong_role_is_refused_and_sees_no_data(clinic, page, role):
    actor = {"therapist": clinic.tina, "prescriber": clinic.paul, "admin": clinic.ada}[role]
    at = run_page(page, actor.username, patient="A-001")
    assert not at.exception
    assert [e.value for e in at.error] == [REFUSAL]
    text = rendered_text(at)
    for marker in PATIENT_MARKERS + ("Tina Torres", "theo", "Audit log", "Care teams"):
        assert marker not in text.replace(f"Signed in as **{actor.display_name}**", "")
    assert not at.dataframe


# --- right role ---------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["tina", "paul"])
def test_patients_page_lists_own_patients_only(clinic, who):
    at = run_page("pages/patients.py", who)
    assert not at.exception
    text = rendered_text(at)
    assert "Alice Able" in text and "A-002" in text
    assert "Bea Brook" not in text and "B-001" not in text
    assert "2 patients on your care teams." in text
    assert [b.label for b in at.button if b.label == "Open"] == ["Open", "Open"]


def test_patients_page_search(clinic):
    at = run_page("pages/patients.py", "tina")
    at.text_input[0].input("ames").run()
    text = rendered_text(at)
    assert "Aaron Ames" in text and "Alice Able" not in text
    at.text_input[0].input("B-001").run()
    assert "No patients match." in rendered_text(at)
    assert "Bea Brook" not in rendered_text(at)


def test_patients_page_empty_state(engine, clinic):
    from kapnotes import auth
    from kapnotes.db import session_scope

    with session_scope(engine) as s:
        new = auth.create_user(s, None, "nina", "therapist", "Nina New", PASSWORD)
    at = run_page("pages/patients.py", new.username)
    assert "No patients on your care teams yet" in rendered_text(at)


def test_dashboard_shows_own_patient_and_audits_the_open_once(engine, clinic):
    at = run_page("pages/dashboard.py", "tina", patient="A-001")
    assert not at.exception, at.exception
    text = rendered_text(at)
    assert "Alice Able" in text and "MRN A-001" in text
    assert "150 mg" in text and "**every 7 days**" in text
    assert "Paul Park" in text
    at.run()  # a rerun of the same view is not a second "open"
    opens = actions(engine, "patient.open")
    assert [(e.actor_id, e.patient_id, e.detail) for e in opens] == [(clinic.tina.id, clinic.a1, "dashboard")]


@pytest.mark.parametrize("who", ["tina", "paul"])
def test_dashboard_other_teams_patient_is_refused_without_the_name(engine, clinic, who):
    at = run_page("pages/dashboard.py", who, patient="B-001")
    assert not at.exception
    assert [e.value for e in at.error] == [GENERIC_DENIED]
    text = rendered_text(at)
    assert "Bea Brook" not in text and "B-001" not in text
    assert "patient_id" not in at.session_state
    assert actions(engine, "patient.open") == []


def test_dashboard_nonexistent_patient_gets_the_same_refusal(clinic):
    at = run_page("pages/dashboard.py", "tina", patient=987654)
    assert [e.value for e in at.error] == [GENERIC_DENIED]


def test_dashboard_without_a_patient_says_what_to_do(clinic):
    at = run_page("pages/dashboard.py", "tina")
    # (st.page_link to Patients raises in AppTest, where no st.navigation ran; the message comes first)
    assert "Choose a patient on the Patients page first." in rendered_text(at)
    assert "Alice Able" not in rendered_text(at)


def test_admin_users_page(clinic):
    at = run_page("pages/admin_users.py", "ada")
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert sorted(table["Username"]) == ["ada", "paul", "pia", "theo", "tina"]
    assert "Password" not in " ".join(table.columns) and "password_hash" not in " ".join(table.columns)
    for marker in PATIENT_MARKERS:
        assert marker not in rendered_text(at)


def test_admin_users_page_search_and_page_size(clinic, monkeypatch):
    from kapnotes import admin

    at = run_page("pages/admin_users.py", "ada")
    next(t for t in at.text_input if t.label == "Find an account").input("Ti").run()
    assert list(at.dataframe[0].value["Username"]) == ["tina"]
    monkeypatch.setattr(admin, "PAGE_SIZE", 2)
    at = run_page("pages/admin_users.py", "ada")
    assert len(at.dataframe[0].value) == 2
    assert any("Showing 2 of 5 accounts" in c.value for c in at.caption)


def test_admin_users_page_creates_a_user(engine, clinic):
    at = run_page("pages/admin_users.py", "ada")
    inputs = {t.label: t for t in at.text_input}
    inputs["Username"].input("newbie")
    inputs["Full name"].input("New Bie")
    inputs["Initial password"].input("short")
    press(at, "Create user")
    assert any("12 characters" in e.value for e in at.error)
    inputs = {t.label: t for t in at.text_input}
    inputs["Username"].input("newbie")
    inputs["Full name"].input("New Bie")
    inputs["Initial password"].input("a-long-enough-password")
    press(at, "Create user")
    assert not at.exception
    assert "newbie" in list(at.dataframe[0].value["Username"])
    assert [e.record_id for e in actions(engine, "user.create")][-1] is not None


def test_admin_teams_page(clinic):
    at = run_page("pages/admin_teams.py", "ada")
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert sorted(table["Patients"]) == [1, 2]
    assert "tina (therapist)" in " ".join(table["Members"])
    # least privilege: a patient is placed by full MRN and no name is ever shown, so the audit
    # log's patient ids cannot be joined to names here
    assert "A-001" not in rendered_text(at)  # the directory is read for a search only
    mrn = next(t for t in at.text_input if t.label == "Patient MRN")
    mrn.input("alice").run()
    assert "Alice" not in rendered_text(at) and "A-001" not in rendered_text(at)  # no search by name
    mrn.input("A-00").run()
    assert "A-001" not in rendered_text(at)  # no listing by prefix
    mrn.input("a-001").run()
    text = rendered_text(at)
    assert "MRN A-001" in text
    for marker in ("Alice", "Able", "Aaron", "A-002", "150 mg", "GAD-7"):
        assert marker not in text


def test_admin_teams_page_refuses_removing_last_therapist(engine, clinic):
    at = run_page("pages/admin_teams.py", "ada")
    from kapnotes import admin
    from kapnotes.db import session_scope

    with session_scope(engine) as s:
        team_a = next(t for t in admin.list_teams(s, clinic.ada) if "Tina" in t.name)
    # AppTest applies format_func to the chosen value, so select the objects themselves
    at.selectbox[0].select(team_a)
    at.selectbox[1].select((clinic.tina.id, "tina", "therapist"))
    at.run()
    press(at, "Remove from team")
    assert not at.exception, at.exception
    assert any("needs at least one therapist" in e.value for e in at.error)
    assert actions(engine, "team.member_remove") == []


def test_audit_log_page_lists_and_filters(engine, clinic):
    from kapnotes import patients
    from kapnotes.db import session_scope

    with session_scope(engine) as s:
        patients.open_record(s, clinic.tina, clinic.a1, "dashboard")
    at = run_page("pages/audit_log.py", "ada")
    assert not at.exception, at.exception
    assert any("has not been verified" in w.value for w in at.warning)
    assert not at.success  # the whole chain is walked only when asked
    next(b for b in at.button if b.label == "Verify chain now").click().run()
    assert any("Hash chain intact" in s.value for s in at.success)
    at.run()  # the check was recorded: later runs show it without walking the chain again
    assert any("Last verified" in i.value and "by ada: intact" in i.value for i in at.info)
    assert actions(engine, "audit.verify") != []
    table = at.dataframe[0].value
    assert "patient.open" in set(table["Action"])
    at.text_input[0].input("tina").run()
    table = at.dataframe[0].value
    assert set(table["User"]) == {"tina"}
    at.text_input[0].input("").run()
    at.selectbox[0].select("patient.open").run()
    assert set(at.dataframe[0].value["Action"]) == {"patient.open"}


def test_audit_log_page_shows_a_broken_chain(engine, clinic):
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER trg_audit_no_update"))  # as the database file's owner can
        conn.execute(text("UPDATE audit_events SET detail = 'forged' WHERE id = 3"))
    at = run_page("pages/audit_log.py", "ada")
    next(b for b in at.button if b.label == "Verify chain now").click().run()
    assert any("BROKEN at event 3" in e.value for e in at.error)
    at.run()  # the failed check stays loud on later visits
    assert any("broken at event 3" in e.value for e in at.error)


# --- idle sign-out, sign-out, the sign-in form -------------------------------------------------


@pytest.mark.parametrize("page", sorted(FOUNDATION_PAGES))
def test_idle_session_is_signed_out(engine, clinic, page, monkeypatch):
    monkeypatch.setenv("KAPNOTES_IDLE_MINUTES", "15")
    user = clinic.ada if "admin" in FOUNDATION_PAGES[page] else clinic.tina
    at = run_page(page, user.username, patient="A-001",
                  last_activity=utcnow() - timedelta(minutes=15, seconds=30))
    shows_sign_in_only(at)
    assert [i.value for i in at.info] == ["You were signed out after 15 minutes without activity."]
    assert "user_id" not in at.session_state and "patient_id" not in at.session_state
    assert [e.actor_id for e in actions(engine, "auth.idle_sign_out")] == [user.id]


def test_recent_activity_keeps_the_session(engine, clinic, monkeypatch):
    monkeypatch.setenv("KAPNOTES_IDLE_MINUTES", "15")
    at = run_page("pages/patients.py", "tina",
                  last_activity=utcnow() - timedelta(minutes=14))
    assert "Alice Able" in rendered_text(at)
    assert utcnow() - at.session_state["last_activity"] < timedelta(minutes=1)  # activity refreshed
    assert actions(engine, "auth.idle_sign_out") == []


def test_idle_timeout_is_configurable(clinic, monkeypatch):
    monkeypatch.setenv("KAPNOTES_IDLE_MINUTES", "5")
    at = run_page("pages/patients.py", "tina", last_activity=utcnow() - timedelta(minutes=6))
    shows_sign_in_only(at)
    assert "after 5 minutes" in at.info[0].value


def test_sign_out_button(engine, clinic):
    at = run_page("pages/patients.py", "tina")
    assert "Signed in as **Tina Torres, LMFT** (therapist)" in rendered_text(at)
    at.sidebar.button(key="sign_out").click().run()
    shows_sign_in_only(at)
    assert [i.value for i in at.info] == ["You have signed out."]
    assert [e.actor_id for e in actions(engine, "auth.sign_out")] == [clinic.tina.id]


def _gate_script():
    import streamlit as st

    from kapnotes.ui.guard import require_user

    actor = require_user("therapist", "prescriber")
    st.write(f"Welcome {actor.username}")


def _sign_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    return at.button[0].click().run()


def test_sign_in_form_signs_in(engine, clinic):
    at = AppTest.from_function(_gate_script, default_timeout=60).run()
    shows_sign_in_only(at)
    _sign_in(at, "tina", PASSWORD)
    assert not at.exception, at.exception
    assert at.session_state["user_id"] == clinic.tina.id
    assert "Welcome tina" in rendered_text(at)
    assert [e.actor_id for e in actions(engine, "auth.sign_in")] == [clinic.tina.id]


@pytest.mark.parametrize("username, password", [("tina", "wrong-password-xx"), ("nobody", PASSWORD), ("", "")])
def test_sign_in_failure_is_generic(clinic, username, password):
    from kapnotes.auth import GENERIC_FAILURE

    at = AppTest.from_function(_gate_script, default_timeout=60).run()
    _sign_in(at, username, password)
    assert [e.value for e in at.error] == [GENERIC_FAILURE]
    assert "user_id" not in at.session_state
    assert [b.label for b in at.button] == ["Sign in"]


def test_sign_in_form_honours_lockout(clinic):
    from kapnotes.auth import GENERIC_FAILURE

    at = AppTest.from_function(_gate_script, default_timeout=60).run()
    for i in range(5):
        _sign_in(at, "tina", f"wrong-password-{i}")
    _sign_in(at, "tina", PASSWORD)
    assert [e.value for e in at.error] == [GENERIC_FAILURE]
    assert "user_id" not in at.session_state


def test_sign_in_with_admin_on_clinical_gate_is_refused(clinic):
    at = AppTest.from_function(_gate_script, default_timeout=60).run()
    _sign_in(at, "ada", PASSWORD)
    assert [e.value for e in at.error] == [REFUSAL]
    assert "Welcome" not in rendered_text(at)


def test_app_entry_signed_out_shows_sign_in(clinic):
    """app.py's first run (before any page): the hidden sign-in page only."""
    at = run_page("app")
    shows_sign_in_only(at)


@pytest.mark.parametrize(
    "username, expected, absent",
    [
        ("tina", ("Patients", "Alice Able", "A-002"), ("Bea Brook", "B-001")),
        ("theo", ("Patients", "Bea Brook"), ("Alice Able", "A-001", "A-002")),
        ("ada", ("Users",), PATIENT_MARKERS),
    ],
)
def test_app_entry_sign_in_lands_on_the_first_page_of_the_role(clinic, username, expected, absent):
    at = run_page("app")
    _sign_in(at, username, PASSWORD)
    assert not at.exception, at.exception
    text = rendered_text(at)
    for marker in expected:
        assert marker in text
    for marker in absent:
        assert marker not in text
    assert at.title[0].value == expected[0]


def test_app_entry_wrong_password(clinic):
    from kapnotes.auth import GENERIC_FAILURE

    at = run_page("app")
    _sign_in(at, "tina", "not-the-password")
    assert [e.value for e in at.error] == [GENERIC_FAILURE]
    shows_sign_in_only(at)


def test_error_messages_quote_user_text_literally(engine, clinic):
    """A typed value echoed in an error must not become markdown (bold, links, colours)."""
    from kapnotes import admin
    from kapnotes.db import session_scope

    hostile = "**Bold** [click](http://evil.example) :red[x] <img src=x>"
    with session_scope(engine) as s:
        admin.create_team(s, clinic.ada, hostile)
    at = run_page("pages/admin_teams.py", "ada")
    form_input = next(t for t in at.text_input if t.label == "New team name")
    form_input.input(hostile)
    press(at, "Create team")
    assert not at.exception, at.exception
    (error,) = at.error
    assert "already exists" in error.value
    # escaped, and the URL's scheme broken by a word joiner so that Streamlit cannot autolink it
    assert (r"\*\*Bold\*\* \[click\](h" + "\u2060" + r"ttp://evil.example) \:red\[x\] \<img src=x\>") in error.value


def test_md_escape_round_trips_through_markdown():
    from kapnotes.textsafe import md_escape

    assert md_escape("plain words") == "plain words"
    assert md_escape("a*b_c") == r"a\*b\_c"
    assert md_escape("line1\nline2") == "line1  \nline2"


def _save_then_stop_script():
    import streamlit as st

    from kapnotes import admin, auth
    from kapnotes.ui.database import db

    with db() as session:
        ada = auth.load_actor(session, st.session_state["admin_id"])
        admin.create_team(session, ada, "Saved before st.stop")
        st.stop()


def _fail_script():
    import streamlit as st

    from kapnotes import admin, auth
    from kapnotes.ui.database import db

    try:
        with db() as session:
            ada = auth.load_actor(session, st.session_state["admin_id"])
            admin.create_team(session, ada, "Rolled back")
            raise RuntimeError("boom")
    except RuntimeError:
        st.write("failed")


@pytest.mark.parametrize("script", [_save_then_stop_script, _fail_script])
def test_db_rolls_back_work_interrupted_by_stop_or_error(engine, clinic, script):
    """st.stop()/st.rerun() can fire inside a service (from a progress callback): never commit half of it."""
    from kapnotes.models import CareTeam

    at = AppTest.from_function(script, default_timeout=60)
    at.session_state["admin_id"] = clinic.ada.id
    at.run()
    assert not at.exception, at.exception
    with Session(engine) as s:
        names = set(s.exec(select(CareTeam.name)).all())
    assert "Saved before st.stop" not in names
    assert "Rolled back" not in names


# --- audit details, the auditor role, table exports ------------------------------------------------


def _clinical_events(engine, clinic):
    from kapnotes import audit
    from kapnotes.db import session_scope

    with session_scope(engine) as s:
        audit.record(s, clinic.tina, "assessment.flag", "assessment", 7, clinic.a1, detail="flag=suicidality")
        audit.record(s, clinic.tina, "assessment.add", "assessment", 8, clinic.a1, detail="instrument=PHQ-9 by=items")
        audit.record(s, clinic.paul, "adjustment.decide", "dose_adjustment", 9, clinic.a1,
                     detail="action=hold role=prescriber")


def test_audit_log_shows_admins_no_clinical_values(engine, clinic):
    _clinical_events(engine, clinic)
    at = run_page("pages/audit_log.py", "ada")
    assert not at.exception, at.exception
    details = " | ".join(str(d) for d in at.dataframe[0].value["Detail"])
    for fact in ("suicidality", "PHQ-9", "hold", "items"):
        assert fact not in details
    assert "flag=…" in details and "role=prescriber" in details  # the shape stays, the values go
    with Session(engine) as s:  # the stored detail (covered by the chain) is unchanged
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "assessment.flag")).one().detail \
            == "flag=suicidality"


def test_an_auditor_reads_full_details_and_nothing_clinical_elsewhere(engine, clinic):
    from kapnotes import auth
    from kapnotes.db import session_scope

    _clinical_events(engine, clinic)
    with session_scope(engine) as s:
        auditor = auth.create_user(s, None, "audrey", "auditor", "Audrey Auditor", PASSWORD)
    at = run_page("pages/audit_log.py", auditor.username)
    assert not at.exception, at.exception
    details = " | ".join(str(d) for d in at.dataframe[0].value["Detail"])
    assert "flag=suicidality" in details and "instrument=PHQ-9" in details and "action=hold" in details
    assert actions(engine, "audit.read")[-1].actor_username == "audrey"  # an investigation is itself logged
    for page in ("pages/patients.py", "pages/dashboard.py", "pages/admin_users.py", "pages/admin_teams.py"):
        other = run_page(page, auditor.username, patient="A-001")
        assert [e.value for e in other.error] == [REFUSAL], page
        for marker in PATIENT_MARKERS:
            assert marker not in rendered_text(other)


def test_tables_offer_no_builtin_csv_download():
    """Streamlit's table toolbar download is off app-wide: a cell such as =HYPERLINK(...)
    cannot leave as a live formula through it (the app's own exports neutralise formulas)."""
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["disableDataExport"] is True


def test_app_csv_neutralises_formulas():
    import pandas as pd

    from kapnotes.csvsafe import to_csv_bytes

    frame = pd.DataFrame({"User": ['=HYPERLINK("http://evil.example","x")', "+1", "@SUM(A1)", "-2+3", "tina"],
                          "Dose": [150.0, -1.5, 0, 2, 3]})
    text = to_csv_bytes(frame).decode("utf-8-sig")
    lines = text.splitlines()
    assert lines[1].startswith('"\'=HYPERLINK(') and lines[2].startswith("'+1,-1.5")
    assert lines[3].startswith("'@SUM") and lines[4].startswith("'-2+3") and lines[5] == "tina,3.0"


def test_admin_users_page_resets_a_password_and_changes_a_role(engine, clinic):
    at = run_page("pages/admin_users.py", "ada")
    account = next(s for s in at.selectbox if s.label == "Account")
    account.select(next(o for o in account.options if o.startswith("theo"))).run()
    press(at, "Reset password")
    assert not at.exception, at.exception
    temporary = at.code[0].value
    assert len(temporary) == 19 and any("shown only now" in s.value for s in at.success)
    assert [e.record_id for e in actions(engine, "user.password_reset")] == [str(clinic.theo.id)]
    from kapnotes import auth
    with Session(engine) as s:
        result = auth.authenticate(s, "theo", temporary)
        assert result.steps == ("change_password",)
    at = run_page("pages/admin_users.py", "ada")
    account = next(s for s in at.selectbox if s.label == "Account")
    account.select(next(o for o in account.options if o.startswith("ada"))).run()
    at.selectbox(key=f"edit_role_{clinic.ada.id}").select("therapist")  # sent with the form's submit
    press(at, "Save changes")
    assert any("last active administrator" in e.value for e in at.error), (
        [e.value for e in at.error], [s.label + "=" + str(s.value) for s in at.selectbox])
    assert actions(engine, "user.role_change") == []


def test_my_account_changes_the_password(engine, clinic):
    at = run_page("pages/account.py", "tina")
    assert not at.exception, at.exception

    def change_password(new: str) -> None:
        inputs = {t.label: t for t in at.text_input}
        inputs["Current password"].input(PASSWORD)
        inputs["New password"].input(new)
        inputs["New password again"].input(new)
        press(at, "Change password")

    change_password("password1234")
    assert any("common or breached" in e.value for e in at.error)
    change_password("granite lantern orbit")
    assert any("password is changed" in s.value for s in at.success)
    from kapnotes import auth
    with Session(engine) as s:
        assert auth.authenticate(s, "tina", "granite lantern orbit").complete
