"""Charts are built once per data: reruns reuse the spec, any change in the data rebuilds it.

The cache lives in the browser session's state (never shared between users), and its key is
a hash of the chart's inputs, so a clinician never sees a chart of stale data.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from kapnotes import assessments, charts, doses
from kapnotes.db import session_scope
from kapnotes.timeutil import utcnow
from kapnotes.ui import chart_cache
from tests.helpers.apptest import run_page
from tests.helpers.records import add_history

CHARTS = ("scores_chart", "effects_chart", "bp_chart")


@pytest.fixture
def builds(monkeypatch):
    """Counts real chart builds per chart function."""
    counts = dict.fromkeys(CHARTS, 0)
    for name in CHARTS:
        real = getattr(charts, name)

        def counted(*args, _real=real, _name=name, **kw):
            counts[_name] += 1
            return _real(*args, **kw)

        counted.__qualname__ = real.__qualname__
        counted.__module__ = real.__module__
        monkeypatch.setattr(charts, name, counted)
    return counts


def _dataset_rows(at) -> int:
    """Rows in the scores chart's dataset as sent to the browser (Arrow bytes → frame)."""
    import pyarrow as pa

    chart = at.get("vega_lite_chart")[0]
    datasets = chart.proto.datasets
    return sum(pa.ipc.open_stream(d.data.data).read_all().num_rows for d in datasets)


def test_rerun_with_unchanged_data_reuses_every_chart(engine, clinic, builds):
    add_history(engine, clinic)
    at = run_page("dashboard", "tina", "A-001")
    assert not at.exception, at.exception
    assert len(at.get("vega_lite_chart")) == 3
    first = dict(builds)
    assert all(first[name] == 1 for name in CHARTS)
    at.run()
    at.run()
    assert dict(builds) == first  # no rebuild
    assert len(at.get("vega_lite_chart")) == 3  # and still drawn


def test_new_score_or_dose_rebuilds_the_affected_charts(engine, clinic, builds):
    add_history(engine, clinic)
    at = run_page("dashboard", "tina", "A-001")
    rows_before = _dataset_rows(at)
    with session_scope(engine) as s:  # another clinician enters a score
        assessments.record_assessment(s, clinic.paul, clinic.a1, "GAD-7", date.today() - timedelta(days=1), total=8)
    at.run()
    assert builds["scores_chart"] == 2
    assert _dataset_rows(at) > rows_before  # the new score is in what is drawn
    assert builds["effects_chart"] == builds["bp_chart"] == 1  # dose charts untouched
    with session_scope(engine) as s:
        doses.add_dose(s, clinic.tina, clinic.a1, doses.DoseInput(
            taken_at=utcnow() - timedelta(hours=2), dose_mg=150, formulation="odt", anxiety_before=5,
            anxiety_after=1, bp_systolic_pre=150, bp_diastolic_pre=95))
    at.run()
    assert builds["effects_chart"] == builds["bp_chart"] == 2


def test_a_voided_dose_rebuilds_the_dose_charts(engine, clinic, builds):
    add_history(engine, clinic)
    at = run_page("dashboard", "tina", "A-001")
    with session_scope(engine) as s:
        entry = doses.list_doses(s, clinic.tina, clinic.a1).iloc[0]
        doses.void_dose(s, clinic.tina, int(entry["id"]), "entered twice", expected_version=int(entry["version"]))
    at.run()
    assert builds["effects_chart"] == builds["bp_chart"] == 2


def test_each_session_builds_its_own_charts(engine, clinic, builds):
    """Another user's session never starts from the first user's stored specs."""
    add_history(engine, clinic)
    tina = run_page("dashboard", "tina", "A-001")
    paul = run_page("dashboard", "paul", "A-001")
    assert builds["scores_chart"] == 2
    assert chart_cache.STATE_KEY in tina.session_state and chart_cache.STATE_KEY in paul.session_state


def test_fingerprint_is_by_content():
    a = pd.DataFrame({"x": [1, 2], "t": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True)})
    assert chart_cache.fingerprint(a, "UTC") == chart_cache.fingerprint(a.copy(), "UTC")
    changed = a.copy()
    changed.loc[1, "x"] = 3
    assert chart_cache.fingerprint(changed, "UTC") != chart_cache.fingerprint(a, "UTC")
    assert chart_cache.fingerprint(a, "UTC") != chart_cache.fingerprint(a, "America/New_York")
    assert chart_cache.fingerprint(a.iloc[:1], "UTC") != chart_cache.fingerprint(a, "UTC")
    lists = pd.DataFrame({"items": [[1, 2], [3]]})  # unhashable cells still fingerprint
    assert chart_cache.fingerprint(lists) != chart_cache.fingerprint(pd.DataFrame({"items": [[1, 2], [4]]}))
