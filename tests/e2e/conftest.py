"""Browser tier: the real server (``uvicorn kapnotes.asgi:app``, as ``make run``) and Debian's Chromium.

The server runs on a free port against its own SQLite database, seeded with the demo
clinic, so tests can sign in as the demo users (``kapnotes.seed.DEMO_USERS``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db_path: Path, extra_env: dict[str, str] | None = None, seed: bool = True):
    """Start ``uvicorn kapnotes.asgi:app`` (as ``make run``) on a fresh database; returns (process, base_url).

    Without the AppTest-only sign-in flag: the browser signs in through the real routes."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STREAMLIT_") and k != "KAPNOTES_APPTEST_SIGN_IN"}
    env.update({"KAPNOTES_DATABASE_URL": f"sqlite:///{db_path}", "KAPNOTES_FAST_HASH": "1",
                "PYTHONUNBUFFERED": "1"})
    env.update(extra_env or {})
    subprocess.run([sys.executable, "-m", "kapnotes", "init-db"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    if seed:
        subprocess.run([sys.executable, "-m", "kapnotes", "seed-demo"], cwd=ROOT, env=env, check=True,
                       capture_output=True)
    port = _free_port()
    log = open(db_path.with_suffix(".log"), "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "kapnotes.asgi:app", "--host", "127.0.0.1", "--port", str(port),
         "--no-proxy-headers"],  # KAPNOTES_TRUST_PROXY decides about X-Forwarded-*, not uvicorn
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc, base
        except OSError:
            time.sleep(0.3)
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"the server did not start; see {db_path.with_suffix('.log')}")


@pytest.fixture(scope="session")
def app_server(tmp_path_factory, browser_type_launch_args):
    db_path = tmp_path_factory.mktemp("e2e") / "e2e.db"
    proc, base = start_server(db_path)
    yield {"url": base, "db_url": f"sqlite:///{db_path}"}
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_idle(page) -> None:
    """Wait for Streamlit to finish the current run: the app says its script is not running, the
    running indicator is gone, and no element is still drawn faded from the previous run (axe and
    text checks must not see a half-updated page on a busy machine)."""
    page.wait_for_timeout(150)  # let a click's rerun start before asking whether it is over
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=30000)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=30000)
    page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", timeout=30000)


def wait_app(page) -> None:
    """Wait until Streamlit is connected and its script run has finished."""
    page.locator('[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
                 '[data-test-script-state="notRunning"]').wait_for(timeout=30000)
    wait_idle(page)


def sign_in(page, base_url: str, username: str, password: str | None = None, path: str = "") -> None:
    """Sign in on the server's form (a signed-out page load is sent there) and wait for the app.

    On a failed sign-in the browser stays on the form, which shows the message."""
    from kapnotes.seed import DEMO_PASSWORD

    page.goto(f"{base_url}/{path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password or DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    if "/auth/sign-in" not in page.url:
        wait_app(page)
