"""WCAG 2.1 AA: axe-core finds no violations on the sign-in page and each role's pages."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.helpers.axe import AXE, violations
from tests.helpers.browser import sign_in, wait_idle
from tests.helpers.uitext import app_pages

DEMO_USER = {"therapist": "tsato", "prescriber": "mokafor", "admin": "admin"}


@pytest.fixture
def browser_context_args(browser_context_args):
    """axe-core is injected as an inline script, which the app's CSP (rightly) refuses."""
    return {**browser_context_args, "bypass_csp": True}


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        pytest.skip("axe-core is not installed (make test runs npm install)")
    return str(AXE)


def test_sign_in_page_is_accessible(page, app_server, axe_source):
    page.goto(app_server["url"])
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=20000)
    assert violations(page, axe_source) == []


@pytest.mark.parametrize("role", ["therapist", "prescriber", "admin"])
def test_role_pages_are_accessible(page, app_server, axe_source, role):
    sign_in(page, app_server["url"], DEMO_USER[role])
    expect(page.get_by_role("button", name="Sign out")).to_be_visible(timeout=20000)
    # Select the first patient so patient pages render their content, not the empty state.
    if role != "admin":
        page.get_by_role("button", name="Open").first.click()
        wait_idle(page)
    found: dict[str, list[str]] = {}
    for _path, title, _icon, roles, _section in app_pages():
        if role not in roles:
            continue
        page.get_by_role("link", name=title, exact=True).first.click()
        wait_idle(page)
        problems = violations(page, axe_source)
        if problems:
            found[title] = problems
    assert found == {}
