"""Moves in the browser that several end-to-end tests make: opening a patient from the list,
following a page link (a helper module, so no test module imports another)."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import wait_idle


def open_patient(page, mrn: str) -> None:
    expect(page.get_by_role("heading", name="Patients")).to_be_visible(timeout=20000)
    row = page.locator("[data-testid='stHorizontalBlock']").filter(has_text=mrn)
    row.get_by_role("button", name="Open").first.click()
    wait_idle(page)
    expect(page.get_by_text(f"MRN {mrn}", exact=False).first).to_be_visible(timeout=20000)


def nav(page, title: str) -> None:
    page.get_by_role("link", name=title).first.click()
    wait_idle(page)
