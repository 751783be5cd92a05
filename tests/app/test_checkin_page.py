"""AppTest: the patient's check-in page (valid, expired, revoked, unknown tokens) and the dashboard panel."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select
from streamlit.testing.v1 import AppTest

from kapnotes import checkin
from kapnotes.db import session_scope
from kapnotes.models import CheckinLink, DoseEntry
from kapnotes.timeutil import utcnow
from kapnotes.ui.checkin_panel import GENERIC_REFUSAL, LINK_KEY
from tests.helpers.apptest import run_page
from tests.helpers.uitext import rendered_text


def new_link(engine, clinic, **kw):
    with session_scope(engine) as s:
        link, token = checkin.create_link(s, clinic.tina, clinic.a1, **kw)
        return link.id, token


def fill_dose(at: AppTest) -> None:
    at.number_input(key="ck_minutes").set_value(10)
    at.radio(key="ck_spit").set_value("Spit it out")
    at.radio(key="ck_anx_before").set_value(6)
    at.radio(key="ck_anx_after").set_value(2)
    at.radio(key="ck_spaced").set_value(4)
    at.radio(key="ck_nausea").set_value("Mild")


def send(at: AppTest) -> AppTest:
    submit = [b for b in at.button if b.label == "Send my check-in"]
    submit[0].click()
    return at.run()


def test_valid_token_shows_first_name_and_clinic_only_and_clears_url(engine, clinic):
    link_id, token = new_link(engine, clinic)
    at = run_page("checkin", query={"t": token})
    assert not at.exception
    text = rendered_text(at)
    assert "Hello Alice" in text and "KAPNotes Demo Clinic" in text
    assert "Able" not in text and "A-001" not in text and "F41" not in text
    assert at.session_state[LINK_KEY] == link_id
    assert "t" not in at.query_params  # the token left the URL
    # the scales are due (none recorded): the instruments' own wording
    assert "Over the last 2 weeks, how often have you been bothered by the following problems?" in text
    assert "Thoughts that you would be better off dead or of hurting yourself in some way" in text[:100000]
    at.run()  # a rerun (reload in the same browser session) keeps working without the token
    assert "Hello Alice" in rendered_text(at)


def test_submit_stores_patient_dose_and_shows_crisis_for_item9(engine, clinic):
    _, token = new_link(engine, clinic)
    at = run_page("checkin", query={"t": token})
    fill_dose(at)
    at.text_area(key="ck_note").set_value("**bold** <script>alert(1)</script>")
    for i, v in enumerate([1, 1, 0, 0, 1, 0, 0], start=1):
        at.radio(key=f"ck_gad7_{i}").set_value(at.radio(key=f"ck_gad7_{i}").options[v])
    for i, v in enumerate([1, 1, 1, 0, 0, 0, 0, 0, 1], start=1):
        at.radio(key=f"ck_phq9_{i}").set_value(at.radio(key=f"ck_phq9_{i}").options[v])
    at = send(at)
    assert not at.exception
    text = rendered_text(at)
    assert "Thank you" in text and "988" in text
    assert "<script>" not in text and "**bold**" not in text  # nothing typed is echoed back
    assert "total" not in text.lower() and "score" not in text.lower()
    with session_scope(engine) as s:
        (entry,) = s.exec(select(DoseEntry)).all()
        assert entry.source == "patient" and entry.anxiety_before == 6 and entry.nausea == 1


def test_impossible_values_refused_in_plain_words(engine, clinic):
    _, token = new_link(engine, clinic)
    at = run_page("checkin", query={"t": token})
    fill_dose(at)
    at.number_input(key="ck_sys").set_value(400)
    at.number_input(key="ck_dia").set_value(80)
    at.number_input(key="ck_pulse").set_value(5)
    at.number_input(key="ck_dose").set_value(300)
    at = send(at)
    errors = " ".join(e.value for e in at.error)
    assert "nothing was sent" in errors
    assert "top blood pressure number must be from 60 to 260" in errors
    assert "Pulse must be from 30 to 220" in errors
    assert "not your planned dose of 150 mg" in errors
    with session_scope(engine) as s:
        assert s.exec(select(DoseEntry)).all() == []


def test_double_submit_stores_one(engine, clinic):
    _, token = new_link(engine, clinic)
    at = run_page("checkin", query={"t": token})
    fill_dose(at)
    nonce = at.session_state["checkin_nonce"]
    at = send(at)
    assert "Thank you" in rendered_text(at)
    with session_scope(engine) as s:  # the same form sent again (a resubmit of the same render)
        again = checkin.submit(s, at.session_state[LINK_KEY], nonce, checkin.CheckinInput(taken_at=utcnow()))
    assert again.repeated
    with session_scope(engine) as s:
        assert len(s.exec(select(DoseEntry)).all()) == 1


@pytest.mark.parametrize("kind", ["expired", "revoked", "unknown"])
def test_bad_tokens_get_one_generic_page(engine, clinic, kind):
    link_id, token = new_link(engine, clinic)
    with session_scope(engine) as s:
        link = s.get(CheckinLink, link_id)
        if kind == "expired":
            link.expires_at = utcnow() - timedelta(minutes=1)
            s.add(link)
        elif kind == "revoked":
            checkin.revoke_link(s, clinic.tina, link_id)
    at = run_page("checkin", query={"t": token if kind != "unknown" else "x" * 43})
    text = rendered_text(at)
    assert GENERIC_REFUSAL in text
    assert "Alice" not in text and "Send my check-in" not in text
    assert LINK_KEY not in at.session_state


def test_no_token_is_refused(clinic):
    at = run_page("checkin")
    assert GENERIC_REFUSAL in rendered_text(at)


def test_link_revoked_while_open_stops_the_page(engine, clinic):
    link_id, token = new_link(engine, clinic)
    at = run_page("checkin", query={"t": token})
    assert "Hello Alice" in rendered_text(at)
    with session_scope(engine) as s:
        checkin.revoke_link(s, clinic.tina, link_id)
    at.run()
    assert GENERIC_REFUSAL in rendered_text(at)


def test_failed_tokens_are_rate_limited(engine, clinic):
    _, token = new_link(engine, clinic)
    for _ in range(checkin.LIMITER.limit):
        run_page("checkin", query={"t": "wrong-token-" + "y" * 30})
    at = run_page("checkin", query={"t": token})  # even the right token: this address is blocked for a while
    assert GENERIC_REFUSAL in rendered_text(at)


# --- the clinician's panel on the dashboard -------------------------------------------------------


def test_dashboard_panel_creates_lists_and_revokes(engine, clinic):
    at = run_page("dashboard", "tina", "A-001")
    assert not at.exception
    assert "No check-in link yet." in rendered_text(at)
    [b for b in at.button if b.label == "Create a check-in link"][0].click()
    at.run()
    assert not at.exception
    codes = [c.value for c in at.code]
    assert len(codes) == 1 and "?t=" in codes[0]
    token = codes[0].split("t=", 1)[1]
    with session_scope(engine) as s:
        assert checkin.resolve(s, token) is not None
    assert "active" in rendered_text(at) and "last used never" in rendered_text(at)
    at.run()  # the address is shown once only
    assert [c.value for c in at.code] == []
    [b for b in at.button if b.label == "End link"][0].click()
    at.run()
    assert "revoked" in rendered_text(at)
    with session_scope(engine) as s:
        assert checkin.resolve(s, token) is None


def test_patient_reported_dose_shows_on_dashboard_and_dose_log(engine, clinic):
    link_id, _ = new_link(engine, clinic)
    with session_scope(engine) as s:
        checkin.submit(s, link_id, "n-dash", checkin.CheckinInput(taken_at=utcnow() - timedelta(hours=1),
                                                                  anxiety_before=5))
    at = run_page("dashboard", "tina", "A-001")
    assert "Latest patient-reported dose: 150 mg" in rendered_text(at)
    assert "1 check-in" in rendered_text(at)
    log = run_page("dose_log", "tina", "A-001")
    assert not log.exception
    table = log.dataframe[0].value
    assert list(table["Source"]) == ["patient-reported"]
