"""Every page × role × (signed out, own patient, another team's patient).

Pages come from app.py's PAGES table, so a page added later is covered without
editing this file. Each page must check the user itself: run directly (as a URL
opened in a fresh session would), signed out, it shows the sign-in form only.
"""

from __future__ import annotations

import pytest

from tests.helpers.apptest import run_page
from tests.helpers.uitext import app_pages, rendered_text

PAGES = app_pages()
ROLES = ("therapist", "prescriber", "admin")
# Team A's patients (tina, paul) and team B's (theo, pia); see tests/factories.py.
OTHER_TEAM_MARKERS = ("Bea Brook", "B-001")
OWN_MARKERS = ("Alice Able", "A-001")
USER = {"therapist": "tina", "prescriber": "paul", "admin": "ada"}
pytestmark = pytest.mark.usefixtures("clinic")  # the small clinic of tests/factories.py


@pytest.mark.parametrize("page", [p[0] for p in PAGES])
def test_signed_out_shows_sign_in_only(page):
    at = run_page(page, patient="A-001")
    assert not at.exception, at.exception
    assert [b.label for b in at.button] == ["Sign in"], "signed out, the only control is the sign-in form"
    text = rendered_text(at)
    for marker in OWN_MARKERS + OTHER_TEAM_MARKERS:
        assert marker not in text, f"{page} shows {marker!r} signed out"


@pytest.mark.parametrize(("page", "role"), [(p[0], r) for p in PAGES for r in ROLES if r not in p[3]])
def test_wrong_role_is_refused_without_data(page, role):
    at = run_page(page, USER[role], "A-001")
    assert not at.exception, at.exception
    text = rendered_text(at)
    assert "not available for your role" in text
    for marker in OWN_MARKERS + OTHER_TEAM_MARKERS:
        assert marker not in text, f"{page} shows {marker!r} to a {role}"


CLINICAL = [(p[0], r) for p in PAGES for r in ("therapist", "prescriber") if r in p[3]]


@pytest.mark.parametrize(("page", "role"), CLINICAL)
def test_other_teams_patient_never_shown(page, role):
    # Team A's clinician with team B's patient selected (e.g. a stale or forged session value).
    at = run_page(page, USER[role], "B-001")
    assert not at.exception, at.exception
    text = rendered_text(at)
    for marker in OTHER_TEAM_MARKERS:
        assert marker not in text, f"{page} shows another team's patient ({marker!r}) to a {role}"


@pytest.mark.parametrize(("page", "role"), CLINICAL)
def test_own_patient_page_runs(page, role):
    at = run_page(page, USER[role], "A-001")
    assert not at.exception, at.exception
    assert "Sign in" not in [b.label for b in at.button]
