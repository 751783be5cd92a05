"""Server-side page runs with Streamlit's AppTest, against an empty page, in this process.

Each page gets one AppTest signed in by role (``user_id``/``last_activity``/``patient_id``
in session state, the heaviest patient selected); a first run warms it (imports, the
"record opened" audit event), then every timed run is a rerun, which is what a widget
click costs. Runs of the compared scripts are interleaved so that machine noise hits
both sides alike.
"""

from __future__ import annotations

import ast
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EMPTY_PAGE = 'import streamlit as st\n\nst.title("Empty page")\n'
SIGNED_IN_PAGE = ('import streamlit as st\n\nfrom kapnotes.ui.session import require_user\n\n'
                  'require_user("therapist", "prescriber")\nst.title("Signed-in empty page")\n')
ROLE_USER = {"therapist": "tsato", "prescriber": "mokafor", "admin": "admin"}


def app_pages() -> list[tuple[str, str, tuple[str, ...]]]:
    """(file, title, roles) of every page in app.py's PAGES, read without running Streamlit."""
    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PAGES" for t in node.targets):
            rows = ast.literal_eval(node.value)
            return [(r[0], r[1], tuple(r[3])) for r in rows]
    raise RuntimeError("app.py has no PAGES list")


def _script(name: str, source: str) -> Path:
    path = ROOT / "bench" / "out" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != source:
        path.write_text(source)
    return path


def empty_page_path() -> Path:
    """The baseline: a Streamlit page with a title and nothing else."""
    return _script("empty_page.py", EMPTY_PAGE)


def signed_in_page_path() -> Path:
    """For information: the page guard (sign-in check, idle timeout, sidebar) plus a title."""
    return _script("signed_in_page.py", SIGNED_IN_PAGE)


@dataclass
class Runner:
    """One AppTest for one script, signed in as ``user_id`` on database ``url``."""

    script: Path
    url: str
    user_id: int | None
    patient_id: int | None
    times: list[float] = field(default_factory=list)
    error: str | None = None

    def __post_init__(self) -> None:
        import logging

        from streamlit.testing.v1 import AppTest

        logging.disable(logging.CRITICAL)  # AppTest's "missing ScriptRunContext" chatter; errors: at.exception

        self.at = AppTest.from_file(str(self.script), default_timeout=120)

    def run(self, timed: bool = True) -> None:
        from kapnotes.timeutil import utcnow

        if self.error:
            return
        os.environ["KAPNOTES_DATABASE_URL"] = self.url
        if self.user_id is not None:
            self.at.session_state["user_id"] = self.user_id
            self.at.session_state["last_activity"] = utcnow()
            self.at.session_state["patient_id"] = self.patient_id
        t0 = time.perf_counter()
        try:
            self.at.run()
        except Exception as exc:  # noqa: BLE001 - a broken page is reported, not fatal
            self.error = f"{type(exc).__name__}: {exc}"[:200]
            return
        elapsed = time.perf_counter() - t0
        if self.at.exception:
            exc = self.at.exception[0]
            trace = [line for line in (exc.stack_trace or []) if line.strip()]
            self.error = (trace[-1] if trace and "redacted" in exc.message else exc.message).strip()[:200]
            return
        if timed:
            self.times.append(elapsed)

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None


def role_for(roles: tuple[str, ...]) -> str:
    return "therapist" if "therapist" in roles else roles[0]


def runner_for(page: str, roles: tuple[str, ...], clinic) -> Runner:
    return Runner(ROOT / page, clinic.url, clinic.users[ROLE_USER[role_for(roles)]], clinic.heavy_patient_id)


SLOW_PAGE_S = 2.0  # a page slower than this gets 3 timed runs, not ``runs`` (keeps make bench < 10 min)


def time_interleaved(runners: list[Runner], runs: int) -> None:
    for r in runners:
        r.run(timed=False)  # warm-up
    for _ in range(runs):
        for r in runners:
            if len(r.times) >= 3 and r.median > SLOW_PAGE_S:
                continue
            r.run()
