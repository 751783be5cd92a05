"""The one AppTest harness: ``run_page(name, user=, patient=, **state)`` (tests/app/conftest.py also
offers it as the ``run_page`` fixture).

``run_page`` builds the AppTest, signs the user in as the page's guard expects (``user_id`` and a
fresh ``last_activity``; see kapnotes/ui/guard.py), selects the patient, sets any further
session_state keys, runs the script once and returns the AppTest:

    at = run_page("dashboard", user="tina", patient="A-001")

The pages use the database ``KAPNOTES_DATABASE_URL`` names (tests/app/conftest.py points it at
the test's own database).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlmodel import Session, select
from streamlit.testing.v1 import AppTest

from kapnotes.db import make_engine
from kapnotes.models import Patient, User
from kapnotes.timeutil import utcnow
from tests.helpers.uitext import ROOT

TIMEOUT = 90  # seconds a single script run may take: generous, for a busy machine


def page_path(name: str) -> Path:
    """``"dashboard"``, ``"dashboard.py"`` and ``"pages/dashboard.py"`` name the same page; ``"app"``
    (or ``"app.py"``) is the entry script with its navigation and sidebar."""
    if name in ("app", "app.py"):
        return ROOT / "app.py"
    name = name.removeprefix("pages/").removesuffix(".py")
    return ROOT / "pages" / f"{name}.py"


def _lookup(column, where) -> int:
    """One id from the database the pages will use (``KAPNOTES_DATABASE_URL``)."""
    engine = make_engine(os.environ["KAPNOTES_DATABASE_URL"])
    try:
        with Session(engine) as s:
            found = s.exec(select(column).where(where)).first()
    finally:
        engine.dispose()
    if found is None:
        raise LookupError(f"no row where {where}")
    return found


def user_id(username: str) -> int:
    return _lookup(User.id, User.username == username)


def patient_id(patient: str | int) -> int:
    """A patient by MRN (``"A-001"``) or by id."""
    if isinstance(patient, int):
        return patient
    return _lookup(Patient.id, Patient.mrn == patient)


def run_page(name: str, user: str | None = None, patient: str | int | None = None, *,
             query: dict[str, str] | None = None, timeout: float = TIMEOUT, **state) -> AppTest:
    """Run page ``name`` once, signed in as ``user`` (a username; None: signed out) with ``patient``
    (MRN or id) selected, further session_state from ``state`` (e.g. ``last_activity=`` to test
    the idle sign-out) and URL query parameters from ``query``; returns the AppTest after the run."""
    at = AppTest.from_file(str(page_path(name)), default_timeout=timeout)
    if user is not None:
        at.session_state["user_id"] = user_id(user)
        at.session_state["last_activity"] = utcnow()
    if patient is not None:
        at.session_state["patient_id"] = patient_id(patient)
    for key, value in state.items():
        at.session_state[key] = value
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at.run()


def failing_page():
    """An AppTest page (``AppTest.from_function``) whose unit of work fails its first
    ``fail_times`` runs (session_state; default 2) with the database error ``error`` names:
    ``"locked"`` (SQLite's busy lock, the default) or ``"lost"`` (a dropped connection); then it
    says how many tries it took. Self-contained: AppTest runs the function's source alone."""
    import streamlit as st
    from sqlalchemy.exc import OperationalError

    from kapnotes.ui.busy import retry_when_busy

    st.session_state["tries"] = st.session_state.get("tries", 0) + 1
    lost = st.session_state.get("error", "locked") == "lost"
    with retry_when_busy():
        if st.session_state["tries"] <= st.session_state.get("fail_times", 2):
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly" if lost
                                                             else "database is locked"), connection_invalidated=lost)
    st.success(f"loaded after {st.session_state['tries']} tries")
