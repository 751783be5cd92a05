"""Plain helpers of the browser tier (issue 18: no test module imports another, nor a conftest).

- ``start_server``, ``stop_server``: ``uvicorn kapnotes.asgi:app`` (as ``make run``) on a free port
  and its own database, seeded with the demo clinic so tests can sign in as the demo users.
- ``RUN_TRACKER``, ``wait_idle``, ``wait_app``: wait for Streamlit's own state, never a duration.
- ``sign_in``, ``open_patient``, ``nav``: moves in the browser that many tests make.

The fixtures (the browser, the session's server) stay in tests/e2e/conftest.py.
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

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from tests.helpers.cli import kap

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_PREPARED: dict[tuple, Path] = {}  # one migrated (and seeded) database file per set-up, per worker


def _prepared_database(db_path: Path, env: dict[str, str], seed: bool, key: tuple) -> None:
    """``init-db`` (and ``seed-demo``) once per worker and set-up; later servers start on a copy."""
    if key not in _PREPARED:
        template = db_path.with_name(f"template-{len(_PREPARED)}-{db_path.name}")
        for command in (["init-db"], ["seed-demo"])[: 2 if seed else 1]:
            _kapnotes(f"sqlite:///{template}", env, *command)
        _PREPARED[key] = template
    template = _PREPARED[key]
    shutil.copy(template, db_path)
    key_file = template.with_name("signing.key")  # the seeded notes' signing key lives beside the file
    if key_file.exists() and not db_path.with_name("signing.key").exists():
        shutil.copy(key_file, db_path.with_name("signing.key"))


def _kapnotes(db_url: str, env: dict[str, str], *args: str) -> None:
    """``python -m kapnotes ARGS`` with the server's settings, in this process (tests/helpers/cli.py)."""
    settings = {k: v for k, v in env.items() if k.startswith("KAPNOTES_") and k != "KAPNOTES_DATABASE_URL"}
    done = kap(db_url, *args, env=settings)
    if done.returncode != 0:
        raise RuntimeError(f"kapnotes {' '.join(args)} failed: {done.stderr}")


def start_server(db_path: Path, extra_env: dict[str, str] | None = None, seed: bool = True):
    """Start ``uvicorn kapnotes.asgi:app`` (as ``make run``) on a fresh database; returns (process, base_url).

    Without the AppTest-only sign-in flag: the browser signs in through the real routes. Each
    server has its own database file and a free port (a port taken in between is tried again), so
    pytest-xdist workers never share either. ``seed=False`` on a database that already exists
    starts a second process on it, as is (issue 19: several processes, one database)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STREAMLIT_") and k != "KAPNOTES_APPTEST_SIGN_IN"}
    env.update({"KAPNOTES_DATABASE_URL": f"sqlite:///{db_path}", "KAPNOTES_FAST_HASH": "1",
                "PYTHONUNBUFFERED": "1"})
    env.update(extra_env or {})
    if env["KAPNOTES_DATABASE_URL"] != f"sqlite:///{db_path}":  # a database of the caller's (PostgreSQL)
        for command in (["init-db"], ["seed-demo", "--if-empty"])[: 2 if seed else 1]:
            _kapnotes(env["KAPNOTES_DATABASE_URL"], env, *command)
    elif seed or not db_path.exists():
        _prepared_database(db_path, env, seed, (seed, tuple(sorted((extra_env or {}).items()))))
    for _attempt in range(3):
        started = _serve(db_path, env)
        if started:
            return started
    raise RuntimeError(f"the server did not start; see {db_path.with_suffix('.log')}")


def stop_server(proc) -> None:
    """Stop a server ``start_server`` started (killed if it has not stopped after ten seconds)."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _serve(db_path: Path, env: dict[str, str]):
    port = free_port()
    log = open(db_path.with_suffix(".log"), "a")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "kapnotes.asgi:app", "--host", "127.0.0.1", "--port", str(port),
         "--no-proxy-headers"],  # KAPNOTES_TRUST_PROXY decides about X-Forwarded-*, not uvicorn
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120  # a loaded machine imports Streamlit slowly
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=5) as r:
                if r.read().strip() == b"ok":
                    return proc, base
        except OSError:
            time.sleep(0.3)
        if proc.poll() is not None:
            return None  # e.g. the port was taken after we chose it: try another
    proc.kill()
    return None


# Installed in every page before Streamlit's own code: it watches the app's websocket and counts the
# rerun requests the browser sends (BackMsg.rerun_script, field 11) and the runs the server reports
# finished (ForwardMsg.script_finished, field 6, except "finished early for a rerun"). The page is
# idle once every requested run has finished and the browser has drawn the result (two animation
# frames later). Nothing here guesses a duration: ``wait_idle`` waits for the app's own state.
RUN_TRACKER = """
(() => {
  const state = window.__kapRuns = {seq: 0, requested: 0, finished: 0, drawn: 0, log: []};
  const note = (...what) => {  // the last few websocket events, for the message of a timeout
    state.log.push([Math.round(performance.now()), ...what]);
    state.log.splice(0, state.log.length - 12);
  };
  function fields(buf) {  // top-level protobuf fields: [number, wire type, varint value]
    const b = new Uint8Array(buf), out = [];
    let i = 0;
    const varint = () => {
      let v = 0, m = 1, c;
      do { c = b[i++]; v += (c & 127) * m; m *= 128; } while (c & 128 && i < b.length);
      return v;
    };
    while (i < b.length) {
      const tag = varint(), no = Math.floor(tag / 8), wt = tag & 7;
      let value = null;
      if (wt === 0) value = varint();
      else if (wt === 2) { const n = varint(); i += n; }  // (not i += varint(): i would be read first)
      else if (wt === 1) i += 8;
      else if (wt === 5) i += 4;
      else break;
      out.push([no, wt, value]);
    }
    return out;
  }
  const Real = window.WebSocket;
  class Tracked extends Real {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        if (!(e.data instanceof ArrayBuffer)) return;
        for (const [no, wt, value] of fields(e.data)) {
          if (no === 6 && wt === 0) note("finished", value);
          if (no === 9) note("status");
          if (no === 6 && wt === 0 && value !== 2) {
            const seq = state.finished = ++state.seq;
            requestAnimationFrame(() => requestAnimationFrame(() => { state.drawn = Math.max(state.drawn, seq); }));
          }
        }
      });
    }
    send(data) {
      try {
        const buf = data instanceof ArrayBuffer ? data
          : ArrayBuffer.isView(data) ? data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) : null;
        const sent = buf ? fields(buf).map(([no]) => no) : [];
        note("sent", sent.join(","));
        if (sent.includes(11)) state.requested = ++state.seq;
      } catch (err) { /* never break the app for a test helper */ }
      return super.send(data);
    }
  }
  window.WebSocket = Tracked;
})();
"""

IDLE = """() => {
  const r = window.__kapRuns;
  const app = document.querySelector('[data-testid="stApp"]');
  const calm = !!app && app.getAttribute("data-test-script-state") === "notRunning"
    && !document.querySelector('[data-testid="stStatusWidget"]')
    && !document.querySelector('[data-stale="true"]')
    && !document.querySelector('[data-testid="stSkeleton"], [data-testid="stAppSkeleton"]')
    && (!r || (r.requested > 0 && r.drawn > r.requested));
  window.__kapCalmPolls = calm ? (window.__kapCalmPolls || 0) + 1 : 0;
  return window.__kapCalmPolls >= 3;  // calm at three checks running (50 ms apart): nothing left to start
}"""


WHY_BUSY = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return {now: Math.round(performance.now()), runs: window.__kapRuns || null,
          script: app && app.getAttribute("data-test-script-state"),
          connection: app && app.getAttribute("data-test-connection-state"),
          statusWidget: !!document.querySelector('[data-testid="stStatusWidget"]'),
          stale: document.querySelectorAll('[data-stale="true"]').length,
          skeletons: document.querySelectorAll('[data-testid="stSkeleton"], [data-testid="stAppSkeleton"]').length};
}"""


def wait_idle(page, timeout: float = 60000) -> None:
    """Wait for Streamlit to finish what the last action asked for: every rerun the browser
    requested has finished on the server and been drawn, the app says its script is not running,
    the running indicator is gone, no element is still drawn faded from the previous run and none
    is a placeholder while its code loads (axe and text checks must not see a half-updated page on
    a busy machine). An action that asks for
    no rerun (typing before a form is submitted, opening an expander) returns at once."""
    page.evaluate("() => { window.__kapCalmPolls = 0; }")
    try:
        # every 50 ms, not every animation frame: polling each frame kept Chromium drawing 60 frames a second
        # in every waiting tab, CPU the server under test then lacked (the browser tier used 15 % more)
        page.wait_for_function(IDLE, polling=50, timeout=timeout)
    except PlaywrightTimeoutError:
        raise AssertionError(f"the app did not become idle at {page.url}: {page.evaluate(WHY_BUSY)}") from None


def wait_app(page) -> None:
    """Wait until Streamlit is connected and its first script run has finished and been drawn."""
    page.locator('[data-testid="stApp"][data-test-connection-state="CONNECTED"]').wait_for(timeout=60000)
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


def open_patient(page, mrn: str) -> None:
    expect(page.get_by_role("heading", name="Patients")).to_be_visible(timeout=20000)
    row = page.locator("[data-testid='stHorizontalBlock']").filter(has_text=mrn)
    row.get_by_role("button", name="Open").first.click()
    wait_idle(page)
    expect(page.get_by_text(f"MRN {mrn}", exact=False).first).to_be_visible(timeout=20000)


def nav(page, title: str) -> None:
    page.get_by_role("link", name=title).first.click()
    wait_idle(page)
