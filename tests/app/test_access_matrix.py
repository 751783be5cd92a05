"""Every page × role × (signed out, own patient, another team's patient).

Pages come from app.py's PAGES table, so a page added later is covered without
editing this file. Each page must check the user itself: run directly (as a URL
opened in a fresh session would), signed out, it shows the sign-in form only.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from kapnotes.db import make_engine
from kapnotes.timeutil import utcnow
from tests.app.uitext import ROOT, app_pages, rendered_text
from tests.factories import make_clinic

PAGES = app_pages()
ROLES = ("therapist", "prescriber", "admin")
# Team A's patients (tina, paul) and team B's (theo, pia); see tests/factories.py.
OTHER_TEAM_MARKERS = ("Bea Brook", "B-001")
OWN_MARKERS = ("Alice Able", "A-001")


@pytest.fixture
def ui_clinic(sqlite_url, monkeypatch):
    monkeypatch.setenv("KAPNOTES_DATABASE_URL", sqlite_url)
    engine = make_engine(sqlite_url)
    clinic = make_clinic(engine)
    engine.dispose()
    return clinic


def _run(page: str, user_id: int | None = None, patient_id: int | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / page), default_timeout=60)
    if user_id is not None:
        at.session_state["user_id"] = user_id
        at.session_state["last_activity"] = utcnow()
    if patient_id is not None:
        at.session_state["patient_id"] = patient_id
    return at.run()


def _actor_for(clinic, role: str):
    return {"therapist": clinic.tina, "prescriber": clinic.paul, "admin": clinic.ada}[role]


@pytest.mark.parametrize("page", [p[0] for p in PAGES])
def test_signed_out_shows_sign_in_only(ui_clinic, page):
    at = _run(page, patient_id=ui_clinic.a1)
    assert not at.exception, at.exception
    assert [b.label for b in at.button] == ["Sign in"], "signed out, the only control is the sign-in form"
    text = rendered_text(at)
    for marker in OWN_MARKERS + OTHER_TEAM_MARKERS:
        assert marker not in text, f"{page} shows {marker!r} signed out"


@pytest.mark.parametrize(("page", "role"), [(p[0], r) for p in PAGES for r in ROLES if r not in p[3]])
def test_wrong_role_is_refused_without_data(ui_clinic, page, role):
    at = _run(page, _actor_for(ui_clinic, role).id, ui_clinic.a1)
    assert not at.exception, at.exception
    text = rendered_text(at)
    assert "not available for your role" in text
    for marker in OWN_MARKERS + OTHER_TEAM_MARKERS:
        assert marker not in text, f"{page} shows {marker!r} to a {role}"


CLINICAL = [(p[0], r) for p in PAGES for r in ("therapist", "prescriber") if r in p[3]]


@pytest.mark.parametrize(("page", "role"), CLINICAL)
def test_other_teams_patient_never_shown(ui_clinic, page, role):
    # Team A's clinician with team B's patient selected (e.g. a stale or forged session value).
    at = _run(page, _actor_for(ui_clinic, role).id, ui_clinic.b1)
    assert not at.exception, at.exception
    text = rendered_text(at)
    for marker in OTHER_TEAM_MARKERS:
        assert marker not in text, f"{page} shows another team's patient ({marker!r}) to a {role}"


@pytest.mark.parametrize(("page", "role"), CLINICAL)
def test_own_patient_page_runs(ui_clinic, page, role):
    at = _run(page, _actor_for(ui_clinic, role).id, ui_clinic.a1)
    assert not at.exception, at.exception
    assert "Sign in" not in [b.label for b in at.button]
