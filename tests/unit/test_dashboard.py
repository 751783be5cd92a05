"""Dashboard data and charts: derived figures, last session, a handful of queries for 3 years."""

from __future__ import annotations

import json
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, insert

from kapnotes import assessments, charts, dashboard, doses
from kapnotes.db import session_scope
from kapnotes.dosing import plans
from kapnotes.errors import PermissionDenied
from kapnotes.models import DoseEntry, NoteStatus, SessionNote
from kapnotes.timeutil import utcnow

NY = ZoneInfo("America/New_York")


def _dose(t, **kw):
    base = dict(taken_at=t, dose_mg=150, formulation="odt", administration="spit", context="home",
                anxiety_before=6, anxiety_after=2, dissociation=5, nausea=1, bp_systolic_pre=120,
                bp_diastolic_pre=80, bp_systolic_post=130, bp_diastolic_post=85, heart_rate=70)
    base.update(kw)
    return doses.DoseInput(**base)


def test_empty_patient(session, clinic):
    data = dashboard.load(session, clinic.tina, clinic.a2)
    assert data.dose_count == 0 and data.last_dose_at is None and data.last_session is None
    assert data.gad7_baseline is None and data.response_status == ""
    assert data.adherence_plan.planned == 8 and data.adherence_plan.taken == 0
    assert data.trends().empty
    spec = charts.scores_chart(data.scores, data.steps(), NY, None).to_dict()
    assert spec  # builds without data


def test_dashboard_figures(engine, clinic):
    now = utcnow()
    today = assessments._today()
    with session_scope(engine) as s:
        for k in range(5):
            doses.add_dose(s, clinic.tina, clinic.a1, _dose(now - timedelta(days=1 + 7 * k),
                                                              adverse_events="headache" if k == 0 else ""))
        voided = doses.add_dose(s, clinic.tina, clinic.a1, _dose(now - timedelta(days=2)))
        doses.void_dose(s, clinic.tina, voided.id, "duplicate")
        for days_ago, total in ((56, 16), (28, 12), (0, 7)):
            assessments.record_assessment(s, clinic.tina, clinic.a1, "GAD-7", today - timedelta(days=days_ago),
                                          total=total)
        assessments.record_assessment(s, clinic.tina, clinic.a1, "PHQ-9", today, items=[1] * 8 + [0])
        plans.new_plan_version(s, clinic.paul, clinic.a1, plans.PlanInput("odt", 200, 7), "Partial response.",
                               effective_from=now - timedelta(days=10))
        for d, homework, status in ((today - timedelta(days=9), "Old homework", NoteStatus.signed),
                                    (today - timedelta(days=3), "Walk daily; journal", NoteStatus.signed),
                                    (today, "Draft homework", NoteStatus.draft)):
            s.add(SessionNote(patient_id=clinic.a1, author_id=clinic.tina.id, note_type="integration",
                              status=status, session_date=d,
                              fields={"homework": homework, "plan": "Next dosing Friday"}))
    with session_scope(engine) as s:
        data = dashboard.load(s, clinic.tina, clinic.a1)
    assert data.dose_count == 5  # voided excluded
    assert data.adverse_recent(30) == 1
    assert (data.gad7_baseline, data.gad7_current, data.phq9_current) == (16, 7, 8)
    assert data.response_status == "response"
    assert data.plan.dose_mg == 200 and len(data.history) == 2
    assert data.adherence_plan.planned == 1 and data.adherence_plan.taken == 2  # since v2 took effect
    assert data.adherence_plan.describe().endswith("more doses than planned")
    assert data.last_session.homework == "Walk daily; journal"
    assert data.last_session.plan == "Next dosing Friday"
    steps = data.steps()
    assert list(steps["planned_dose_mg"]) == [150, 200, 200]
    spec = json.dumps(charts.scores_chart(data.scores, steps, NY, data.gad7_baseline).to_dict(), ensure_ascii=False)
    assert "Remission (< 5)" in spec and "50 % below baseline 16" in spec and "step-after" in spec
    assert "Planned dose (mg)" in spec
    effects = json.dumps(charts.effects_chart(data.trends(), NY).to_dict(), ensure_ascii=False)
    assert "Anxiety before (0–10)" in effects and "Dissociation (0–10)" in effects
    assert "Systolic after" in json.dumps(charts.bp_chart(data.trends(), NY).to_dict(), ensure_ascii=False)


def test_dashboard_scoped(session, clinic):
    with pytest.raises(PermissionDenied):
        dashboard.load(session, clinic.theo, clinic.a1)
    with pytest.raises(PermissionDenied):
        dashboard.load(session, clinic.ada, clinic.a1)


@pytest.mark.slow
def test_three_years_daily_is_a_handful_of_queries_and_weekly_trends(engine, clinic):
    now = utcnow()
    rows = [{**{c: getattr(_dose(now - timedelta(days=i)), c) for c in doses.CSV_COLUMNS}, "patient_id": clinic.a1,
             "source": "manual", "entered_by_id": clinic.tina.id, "created_at": now, "version": 1}
            for i in range(1, 3 * 365 + 1)]
    with session_scope(engine) as s:
        s.execute(insert(DoseEntry.__table__), rows)
        for k in range(80):
            assessments.record_assessment(s, clinic.tina, clinic.a1, "GAD-7" if k % 2 else "PHQ-9",
                                          assessments._today() - timedelta(days=14 * k), total=10 - k % 5,
                                          item9=0 if k % 2 == 0 else None)
    statements = []
    with session_scope(engine) as s:
        listener = lambda *a, **k: statements.append(a[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            data = dashboard.load(s, clinic.tina, clinic.a1)
        finally:
            event.remove(engine, "before_cursor_execute", listener)
    selects = [q for q in statements if q.lstrip().upper().startswith("SELECT")]
    assert len(selects) <= 6, selects
    assert data.dose_count == 1095
    trends = data.trends()
    assert len(trends) <= 160  # weekly means, not 1,095 points
    assert trends["anxiety_before"].dropna().between(5.9, 6.1).all()
    spec = charts.effects_chart(trends, NY, weekly=True).to_dict()
    assert "weekly means" in json.dumps(spec, ensure_ascii=False)


def test_weekly_means_match_pandas_resample_at_the_week_edges():
    """``weekly_means`` bins exactly as ``resample("W").mean()`` in UTC: weeks end on Sunday
    with the whole Sunday in them; gaps, missing values and empty weeks behave the same."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    numeric = ["anxiety_before", "bp_systolic_pre", "heart_rate"]
    edges = ["2024-01-06 23:59:59", "2024-01-07 00:00:00", "2024-01-07 23:59:59.999", "2024-01-08 00:00:00",
             "2024-01-14 12:00", "2024-02-25 00:00:01"]  # Sat, Sun 00:00, Sun late, Mon 00:00, Sun, Sun
    times = list(pd.to_datetime(edges, utc=True, format="ISO8601"))
    times += list(pd.Timestamp("2023-06-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 600 * 86400, 400), "s"))
    values = rng.integers(0, 200, (len(times), 3)).astype("float64")
    values[rng.random(values.shape) < 0.3] = np.nan
    values[5] = np.nan  # one dose without any value: its week may become empty
    frame = pd.DataFrame(values, columns=numeric)
    frame.insert(0, "taken_at", pd.DatetimeIndex(times).as_unit("us"))
    frame = frame.sort_values("taken_at")

    expected = (frame[numeric].set_axis(pd.DatetimeIndex(frame["taken_at"].dt.tz_localize(None), name="taken_at"))
                .resample("W").mean().dropna(how="all").reset_index())
    expected["taken_at"] = expected["taken_at"].dt.tz_localize("UTC")
    got = dashboard.weekly_means(frame, numeric)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True))
    sunday = got.loc[got["taken_at"] == pd.Timestamp("2024-01-07", tz="UTC")]
    assert len(sunday) == 1  # Saturday 23:59 and all of Sunday the 7th, not Monday the 8th
