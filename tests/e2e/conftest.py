"""Browser tier: the real server (``uvicorn kapnotes.asgi:app``, as ``make run``) and Debian's Chromium.

The server runs on a free port against its own SQLite database, seeded with the demo
clinic, so tests can sign in as the demo users (``kapnotes.seed.DEMO_USERS``). The plain helpers
(``start_server``, ``sign_in``, ``wait_idle``, ...) are in tests/helpers/browser.py; the fixtures
are here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers.browser import RUN_TRACKER, start_server, stop_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage",
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def browser_type_launch_args():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture(scope="session")
def app_server(tmp_path_factory, browser_type_launch_args):
    db_path = tmp_path_factory.mktemp("e2e") / "e2e.db"
    proc, base = start_server(db_path)
    yield {"url": base, "db_url": f"sqlite:///{db_path}"}
    stop_server(proc)


@pytest.fixture(scope="session")
def browser(browser):
    """pytest-playwright's Chromium: every context it opens (the ``page`` fixture's, and the
    tests' own ``browser.new_context()``) runs the run tracker in each page."""
    real = browser.new_context

    def new_context(*args, **kwargs):
        ctx = real(*args, **kwargs)
        ctx.add_init_script(RUN_TRACKER)
        return ctx

    browser.new_context = new_context
    return browser
