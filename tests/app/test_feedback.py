"""AppTest of ``kapnotes.ui.feedback``: the one place a service's refusal becomes words on the page.

Each case is a small script: what ``attempt()`` shows, where, what it swallows and what it lets
through (reruns, stops, bugs), and how ``show_outcome`` reports a button callback's result.
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _run(script, **state) -> AppTest:
    at = AppTest.from_function(script, default_timeout=30)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def _refused_script():
    import streamlit as st

    from kapnotes.errors import ValidationError
    from kapnotes.ui.feedback import attempt

    with attempt() as done:
        raise ValidationError({"full_name": "Enter the person's full name.", "_": "**Bold** [x](http://e.example)"})
        st.write("not reached")  # the block stops at the refusal
    st.write(f"done={bool(done)} refused={type(done.refused).__name__}")


def test_a_refusal_is_shown_per_field_literally_and_the_block_stops():
    at = _run(_refused_script)
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 2
    assert errors[0].startswith("**") and "full name" in errors[0].lower()
    assert errors[1].startswith(r"\*\*Bold\*\*")  # typed text is never markdown
    texts = [m.value for m in at.markdown]
    assert "not reached" not in texts
    assert "done=False refused=ValidationError" in texts


def _success_script():
    import streamlit as st

    from kapnotes.ui.feedback import attempt

    with attempt() as done:
        st.write("inside")
    if done:
        st.success("Saved")


def test_a_call_that_goes_through_shows_no_error():
    at = _run(_success_script)
    assert not at.exception and not at.error
    assert [s.value for s in at.success] == ["Saved"]


def _where_script():
    import streamlit as st

    from kapnotes.errors import PermissionDenied
    from kapnotes.ui.feedback import attempt

    with attempt(where=st.sidebar):
        raise PermissionDenied()


def test_where_puts_the_refusal_in_the_given_container():
    at = _run(_where_script)
    assert not at.exception
    assert [e.value for e in at.sidebar.error] == ["You do not have access to this record."]
    assert not at.main.error


def _stop_script():
    import streamlit as st

    from kapnotes.ui.feedback import attempt

    with attempt():
        st.write("before")
        st.stop()
    st.write("after the block")


def test_stop_inside_the_block_passes_through():
    at = _run(_stop_script)
    assert not at.exception and not at.error
    assert [m.value for m in at.markdown] == ["before"]


def _bug_script():
    from kapnotes.ui.feedback import attempt

    with attempt():
        raise RuntimeError("a bug, not a refusal")


def test_a_bug_is_not_swallowed():
    at = _run(_bug_script)
    assert at.exception  # Streamlit's crash box (its message redacted), not a polite refusal
    assert not at.error


def _outcome_script():
    from kapnotes.ui.feedback import show_outcome

    show_outcome("result")


def test_show_outcome_confirms_once_and_reports_errors_with_a_heading():
    from kapnotes.errors import ValidationError

    at = _run(_outcome_script, result=("ok", "Approved"))
    assert [s.value for s in at.success] == ["Approved"]
    assert "result" not in at.session_state  # shown once
    at.run()
    assert not at.success

    at = _run(_outcome_script, result=("error", ValidationError("Give a reason."), "Not *approved*"))
    assert [e.value for e in at.error] == [r"Not \*approved\*", "Give a reason."]
    assert not _run(_outcome_script).error  # nothing waiting: nothing shown


def _callback_script():
    import streamlit as st

    from kapnotes.errors import PermissionDenied
    from kapnotes.ui.feedback import remember_outcome, show_outcome

    def works():
        with remember_outcome("result", "Marked as seen."):
            pass

    def refused():
        with remember_outcome("result", "Marked as seen.", heading="Nothing was marked."):
            raise PermissionDenied()

    show_outcome("result")
    st.button("Works", on_click=works)
    st.button("Refused", on_click=refused)


def test_remember_outcome_carries_a_callbacks_result_to_the_next_run():
    at = _run(_callback_script)
    at.button[0].click().run()
    assert [s.value for s in at.success] == ["Marked as seen."] and not at.error
    at.button[1].click().run()
    assert [e.value for e in at.error] == ["Nothing was marked.", "You do not have access to this record."]
    assert not at.success


def _save_script():
    import streamlit as st

    from kapnotes import admin, auth
    from kapnotes.ui.feedback import save_and_rerun

    st.write(f"kept={st.session_state.get('kept')}")
    if st.button("Create"):
        def create(session):
            ada = auth.load_actor(session, st.session_state["admin_id"])
            return admin.create_team(session, ada, st.session_state["team_name"]).name

        save_and_rerun(create, "Team created", keep="kept")


def test_save_and_rerun_commits_then_reruns_or_shows_the_refusal(sqlite_url, monkeypatch):
    """Saved: the result is kept for the rerun; refused: the reason shows and nothing is kept."""
    from sqlmodel import Session, select

    from kapnotes.db import make_engine
    from kapnotes.models import CareTeam
    from tests.factories import make_clinic

    monkeypatch.setenv("KAPNOTES_DATABASE_URL", sqlite_url)
    engine = make_engine(sqlite_url)
    clinic = make_clinic(engine)
    at = _run(_save_script, admin_id=clinic.ada.id, team_name="Evening team")
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert "kept=Evening team" in [m.value for m in at.markdown]  # the run after the commit
    at.session_state["kept"] = None
    at.button[0].click().run()  # the same name again: refused, nothing kept
    assert any("already exists" in e.value for e in at.error)
    assert "kept=None" in [m.value for m in at.markdown]
    with Session(engine) as s:
        assert list(s.exec(select(CareTeam.name).where(CareTeam.name == "Evening team"))) == ["Evening team"]
    engine.dispose()
