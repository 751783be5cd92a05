"""No N+1 queries: the statements a service call or a page render sends do not grow with the data.

The same calls run against a small clinic (5 patients on the clinician's care team,
≈4 months of history) and a larger one (50 patients, 1 year: ~3× the doses, notes and
scores); every SQL statement is counted (SQLAlchemy ``before_cursor_execute``). The count
must be the same in both, and below a small fixed bound.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session

from kapnotes import auth, patients
from kapnotes.actor import Actor
from kapnotes.db import make_engine
from kapnotes.models import CareTeamMember, Patient, User
from kapnotes.seed import HEAVIEST_MRN, seed_demo
from tests.conftest import truncate_all
from tests.helpers.rows import copy_rows

# seeds whole clinics: `make test` runs this module, `make check` leaves it out
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SMALL = (5, 0.35)  # (patients, years of history)
LARGE = (20, 1.0)  # four times the patients and three times the history: a query per row would show
SERVICE_BOUND = 12
PAGE_BOUND = 60


class Counter:
    """Counts statements on every engine (the pages use their own cached engine)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __enter__(self):
        event.listen(Engine, "before_cursor_execute", self._hook)
        return self

    def __exit__(self, *exc):
        event.remove(Engine, "before_cursor_execute", self._hook)

    def _hook(self, conn, cursor, statement, parameters, context, executemany):
        self.statements.append(" ".join(statement.split())[:160])

    @property
    def count(self) -> int:
        return len(self.statements)


def _seed_one_caseload(engine, size: tuple[int, float]) -> tuple[Actor, int]:
    """Seed ``size`` and put every patient on tsato's care team: the caseload is the clinic."""
    n, years = size
    seed_demo(engine, patients=n, years=years, seed=9)
    with Session(engine, expire_on_commit=False) as s:
        tsato_id = s.execute(select(User.id).where(User.username == "tsato")).scalar_one()
        team = s.execute(select(CareTeamMember.team_id).where(CareTeamMember.user_id == tsato_id)).scalar_one()
        s.execute(update(Patient).values(care_team_id=team))
        s.commit()
        pid = s.execute(select(Patient.id).where(Patient.mrn == HEAVIEST_MRN)).scalar_one()
        return auth.load_actor(s, tsato_id), pid


def _service_counts(engine, actor, pid) -> dict[str, int]:
    out = {}
    with Session(engine, expire_on_commit=False) as s:
        rows = patients.list_patients(s, actor)
        with Counter() as c:
            rows = patients.list_patients(s, actor)
        out["list_patients"] = c.count
        out["rows"] = len(rows)
        with Counter() as c:
            ov = patients.overview(s, actor, pid)
            _ = (ov.plan.dose_mg, [a.total for a in ov.latest.values()], ov.team, ov.flags)
        out["overview"] = c.count
        s.rollback()
    return out


def test_list_patients_and_overview_do_not_grow_with_rows(engine, backend, tmp_path, two_clinics):
    counts = {}
    for name in ("small", "large"):
        url, ids, pid = two_clinics[name]
        if backend == "sqlite":  # a copy: the services audit what they read
            path = tmp_path / f"{name}.db"
            shutil.copy(make_url(url).database, path)
            clinic_engine = make_engine(f"sqlite:///{path}")
        else:
            truncate_all(engine)
            source = make_engine(url)
            copy_rows(source, engine)
            source.dispose()
            clinic_engine = engine
        with Session(clinic_engine, expire_on_commit=False) as s:
            actor = auth.load_actor(s, ids["tsato"])
        counts[name] = _service_counts(clinic_engine, actor, pid)
        if clinic_engine is not engine:
            clinic_engine.dispose()
    small, large = counts["small"], counts["large"]
    assert (small["rows"], large["rows"]) == (SMALL[0], LARGE[0])
    assert small["list_patients"] == large["list_patients"] <= SERVICE_BOUND, (small, large)
    assert small["overview"] == large["overview"] <= SERVICE_BOUND, (small, large)


def _patient_pages() -> list[tuple[str, str]]:
    """(page, username) for every clinical page of app.py that exists: a therapist if allowed."""
    from bench.pages import app_pages

    out = []
    for page, _title, roles in app_pages():
        if (ROOT / page).exists() and ({"therapist", "prescriber"} & set(roles)):
            out.append((page, "tsato" if "therapist" in roles else "mokafor"))
    return out


@pytest.fixture(scope="module")
def two_clinics(tmp_path_factory, sqlite_template):
    urls = {}
    for name, size in (("small", SMALL), ("large", LARGE)):
        path = tmp_path_factory.mktemp("count") / f"{name}.db"
        shutil.copy(sqlite_template, path)
        eng = make_engine(f"sqlite:///{path}")
        _actor, pid = _seed_one_caseload(eng, size)
        with Session(eng) as s:
            ids = dict(s.execute(select(User.username, User.id)).all())
        eng.dispose()
        urls[name] = (f"sqlite:///{path}", ids, pid)
    return urls


def _page_counts(page: str, username: str, url: str, ids: dict, pid: int, monkeypatch) -> tuple[int, int, list[str]]:
    from streamlit.testing.v1 import AppTest

    from kapnotes.timeutil import utcnow

    monkeypatch.setenv("KAPNOTES_DATABASE_URL", url)
    at = AppTest.from_file(str(ROOT / page), default_timeout=60)
    at.session_state["user_id"] = ids[username]
    at.session_state["last_activity"] = utcnow()
    at.session_state["patient_id"] = pid
    with Counter() as first:
        at.run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    at.session_state["last_activity"] = utcnow()
    with Counter() as rerun:
        at.run()
    return first.count, rerun.count, rerun.statements


# Reported to their owners; the test still runs (an xfail that starts passing shows as XPASS).
KNOWN_N_PLUS_ONE: dict[str, str] = {}


@pytest.mark.parametrize(("page", "username"), _patient_pages())
def test_page_render_statement_count_is_flat(page, username, two_clinics, monkeypatch, request):
    if page in KNOWN_N_PLUS_ONE:
        request.applymarker(pytest.mark.xfail(reason=KNOWN_N_PLUS_ONE[page], strict=False))
    small = _page_counts(page, username, *two_clinics["small"], monkeypatch)
    large = _page_counts(page, username, *two_clinics["large"], monkeypatch)
    detail = "\n".join(large[2])
    assert small[0] == large[0], f"{page}: first render {small[0]} vs {large[0]} statements\n{detail}"
    assert small[1] == large[1], f"{page}: rerun {small[1]} vs {large[1]} statements\n{detail}"
    assert large[1] <= PAGE_BOUND, f"{page}: {large[1]} statements per rerun\n{detail}"


def test_dashboard_is_measured():
    """The dashboard is among the pages whose statements are counted."""
    assert "pages/dashboard.py" in [page for page, _ in _patient_pages()]
