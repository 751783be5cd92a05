"""The one AppTest harness: ``run_page(name, user=, patient=, **state)``.

Every AppTest here runs against its own migrated SQLite database (the ``db_url``, ``engine`` and
``clinic`` fixtures of tests/conftest.py, with ``backend`` pinned to SQLite: AppTest runs the
pages in this process, where ``KAPNOTES_DATABASE_URL`` names the database). A test that needs the
small clinic takes ``clinic`` (and ``engine`` to write more records), then opens a page as a user:

    at = run_page("dashboard", user="tina", patient="A-001")

``run_page`` is a plain function (import it from tests/helpers/apptest.py or take the ``run_page`` fixture): it
builds the AppTest, signs the user in as the page's guard expects (``user_id`` and a fresh
``last_activity``; see kapnotes/ui/guard.py), selects the patient, sets any further
session_state keys, runs the script once and returns the AppTest.
"""

from __future__ import annotations

import pytest

from kapnotes.dosing import protocol
from tests.helpers.apptest import run_page


@pytest.fixture
def backend() -> str:
    """AppTest runs the pages in this process on SQLite (the services' tests cover PostgreSQL)."""
    return "sqlite"


@pytest.fixture(autouse=True)
def app_database(db_url, monkeypatch) -> str:
    """Point the pages at this test's database, with nothing from the caller's environment that
    changes what they show (a protocol file, mail, a shorter idle time). The check-in rate
    limiter counts in this database, so each test starts with none."""
    monkeypatch.setenv("KAPNOTES_DATABASE_URL", db_url)
    for name in (protocol.ENV_VAR, "KAPNOTES_SMTP_URL", "KAPNOTES_IDLE_MINUTES"):
        monkeypatch.delenv(name, raising=False)
    return db_url


@pytest.fixture(name="run_page")
def run_page_fixture():
    return run_page
