"""GAD-7 / PHQ-9: every band edge, item validation, recording, the safety flag and its audit."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import select

from kapnotes import assessments, events, scales
from kapnotes.db import session_scope
from kapnotes.errors import PermissionDenied, ValidationError
from kapnotes.models import Assessment, AuditEvent
from kapnotes.patients import safety_flags

GAD7_EDGES = [(0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (14, "moderate"),
              (15, "severe"), (21, "severe")]
PHQ9_EDGES = [(0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (14, "moderate"),
              (15, "moderately severe"), (19, "moderately severe"), (20, "severe"), (27, "severe")]


TODAY = assessments._today  # the clinic's today: a later date is refused


def _items_for(total: int, n: int) -> list[int]:
    items = [0] * n
    for i in range(total):
        items[i % n] += 1
    return items


@pytest.mark.parametrize(("total", "band"), GAD7_EDGES)
def test_gad7_band_edges(total, band):
    assert scales.score("GAD-7", total=total).band == band
    by_items = scales.score("GAD-7", items=_items_for(total, 7))
    assert (by_items.total, by_items.band) == (total, band)


@pytest.mark.parametrize(("total", "band"), PHQ9_EDGES)
def test_phq9_band_edges(total, band):
    assert scales.score("PHQ-9", total=total).band == band
    by_items = scales.score("PHQ-9", items=_items_for(total, 9))
    assert (by_items.total, by_items.band) == (total, band)


@pytest.mark.parametrize(("instrument", "total"), [("GAD-7", 22), ("GAD-7", -1), ("PHQ-9", 28), ("PHQ-9", -1)])
def test_totals_out_of_range(instrument, total):
    with pytest.raises(ValidationError) as exc:
        scales.score(instrument, total=total)
    assert "total" in exc.value.errors


@pytest.mark.parametrize("items", [[0] * 6, [0] * 8, [0, 0, 0, 0, 0, 0, 4], [0, 0, 0, 0, 0, 0, -1],
                                   [0, 0, 0, 0, 0, 0, True], [0, 0, 0, 0, 0, 0, 1.5]])
def test_bad_items_refused(items):
    with pytest.raises(ValidationError):
        scales.score("GAD-7", items=items)


def test_items_and_total_must_agree_and_loinc():
    with pytest.raises(ValidationError, match="add up to 7"):
        scales.score("GAD-7", items=[1] * 7, total=8)
    s = scales.score("PHQ-9", items=[0] * 8 + [2])
    assert (s.loinc_panel, s.loinc_total, s.item9, s.suicidality) == ("44249-1", "44261-6", 2, True)
    assert scales.score("GAD-7", total=3).loinc_total == "70274-6"


def test_response_status_and_lines():
    assert scales.response_line(16) == 8
    assert scales.status(16, 8) == "response"
    assert scales.status(16, 9) == "partial response"
    assert scales.status(16, 12) == "partial response"
    assert scales.status(16, 13) == "no response"
    assert scales.status(16, 4) == "remission"
    assert scales.status(None, 4) == ""


def test_wording_is_the_real_questionnaire():
    assert scales.GAD7.items[0] == "Feeling nervous, anxious, or on edge"
    assert scales.PHQ9.items[8].startswith("Thoughts that you would be better off dead")


# --- service --------------------------------------------------------------------------------------


def test_record_by_items_computes_total_band_and_loinc(engine, clinic, monkeypatch):
    seen = []
    monkeypatch.setattr(events, "LISTENER_MODULES", ("tests.unit.test_assessments",))
    globals()["handle"] = lambda s, e, a, p: seen.append((e, p))
    with session_scope(engine) as s:
        row = assessments.record_assessment(s, clinic.tina, clinic.a1, "GAD-7", TODAY(), items=[2, 2, 2, 2, 2, 2, 3])
    with session_scope(engine) as s:
        a = s.get(Assessment, row.id)
        assert (a.total, a.band, a.loinc_panel, a.loinc_total, a.items) == (15, "severe", "69737-5", "70274-6",
                                                                           [2, 2, 2, 2, 2, 2, 3])
        assert "assessment.add" in s.exec(select(AuditEvent.action)).all()
    assert seen == [("assessment.changed", {"patient_id": clinic.a1, "assessment_id": row.id})]


def test_total_only_phq9_needs_item9(engine, clinic):
    with pytest.raises(ValidationError) as exc, session_scope(engine) as s:
        assessments.record_assessment(s, clinic.tina, clinic.a1, "PHQ-9", TODAY(), total=12)
    assert "item9" in exc.value.errors
    with pytest.raises(ValidationError), session_scope(engine) as s:
        assessments.record_assessment(s, clinic.tina, clinic.a1, "PHQ-9", TODAY(), total=1, item9=2)
    with session_scope(engine) as s:
        row = assessments.record_assessment(s, clinic.tina, clinic.a1, "PHQ-9", TODAY(), total=12, item9=0)
        assert row.items is None and row.band == "moderate" and row.item9 == 0
        assessments.record_assessment(s, clinic.tina, clinic.a1, "GAD-7", TODAY(), total=11)


def test_bad_dates_and_access(engine, clinic):
    with pytest.raises(ValidationError), session_scope(engine) as s:
        assessments.record_assessment(s, clinic.tina, clinic.a1, "GAD-7", TODAY() + timedelta(days=3), total=3)
    with pytest.raises(ValidationError), session_scope(engine) as s:
        assessments.record_assessment(s, clinic.tina, clinic.a1, "GAD-7", date(1999, 5, 1), total=3)
    with pytest.raises(PermissionDenied), session_scope(engine) as s:
        assessments.record_assessment(s, clinic.theo, clinic.a1, "GAD-7", TODAY(), total=3)
    with pytest.raises(ValidationError), session_scope(engine) as s:
        assessments.record_assessment(s, clinic.tina, clinic.a1, "BDI", TODAY(), total=3)
    with session_scope(engine) as s:
        assert s.exec(select(Assessment)).all() == []


def test_item9_raises_flag_until_newer_phq9_answers_zero(engine, clinic):
    today = TODAY()
    with session_scope(engine) as s:
        assessments.record_assessment(s, clinic.tina, clinic.a1, "PHQ-9", today - timedelta(days=14),
                                      items=[1, 1, 1, 1, 1, 1, 1, 1, 1])
        assert safety_flags(s, [clinic.a1]) == {clinic.a1: ["suicidality"]}
        raised = s.exec(select(AuditEvent).where(AuditEvent.action == "safety.flag_raised")).all()
        assert len(raised) == 1 and raised[0].patient_id == clinic.a1
        # a GAD-7 or an older PHQ-9 does not clear it
        assessments.record_assessment(s, clinic.tina, clinic.a1, "GAD-7", today, total=3)
        assessments.record_assessment(s, clinic.tina, clinic.a1, "PHQ-9", today - timedelta(days=30),
                                      items=[0] * 9)
        assert safety_flags(s, [clinic.a1]) == {clinic.a1: ["suicidality"]}
        newer = assessments.record_assessment(s, clinic.paul, clinic.a1, "PHQ-9", today, items=[1] * 8 + [0])
        assert safety_flags(s, [clinic.a1]) == {}
        cleared = s.exec(select(AuditEvent).where(AuditEvent.action == "safety.flag_cleared")).all()
        assert [c.record_id for c in cleared] == [str(newer.id)]
        # voiding the clearing PHQ-9 brings the flag back
        assessments.void_assessment(s, clinic.paul, newer.id, "Entered for the wrong patient")
        assert safety_flags(s, [clinic.a1]) == {clinic.a1: ["suicidality"]}
        assert len(s.exec(select(AuditEvent).where(AuditEvent.action == "safety.flag_raised")).all()) == 2
        for ev in s.exec(select(AuditEvent)).all():  # never clinical values in the audit detail
            assert "item" not in ev.detail.replace("by=items", "")


def test_void_needs_reason_and_series_excludes_voided(engine, clinic):
    with session_scope(engine) as s:
        a = assessments.record_assessment(s, clinic.tina, clinic.a1, "GAD-7", TODAY() - timedelta(days=7), total=14)
        assessments.record_assessment(s, clinic.tina, clinic.a1, "GAD-7", TODAY(), total=9)
        with pytest.raises(ValidationError):
            assessments.void_assessment(s, clinic.tina, a.id, "")
        assessments.void_assessment(s, clinic.tina, a.id, "duplicate")
        frame = assessments.series(s, clinic.tina, clinic.a1, "GAD-7")
        assert list(frame["total"]) == [9]
        assert len(assessments.series(s, clinic.tina, clinic.a1, include_voided=True)) == 2
        with pytest.raises(PermissionDenied):
            assessments.series(s, clinic.theo, clinic.a1)


def _count(engine) -> int:
    with session_scope(engine) as s:
        return len(s.exec(select(Assessment.id)).all())


@pytest.mark.parametrize(("when", "words"), [
    (1, "is after today"),  # tomorrow in the clinic's zone: refused (there used to be a day of slack)
    (None, "Enter the date the questionnaire was answered."),  # never defaulted to today
    ("2090-01-01", "Enter the date"),  # text is not a date: the caller must parse it and say so
])
def test_score_dated_after_today_or_missing_is_refused_and_nothing_saved(engine, clinic, when, words):
    with session_scope(engine) as s:
        assessments.record_assessment(s, clinic.tina, clinic.a1, "GAD-7", TODAY(), total=8)
    before = _count(engine)
    day = TODAY() + timedelta(days=when) if isinstance(when, int) else when
    with pytest.raises(ValidationError) as exc, session_scope(engine) as s:
        assessments.record_assessment(s, clinic.tina, clinic.a1, "GAD-7", day, total=3)
    assert words in exc.value.errors["administered_on"]
    assert _count(engine) == before
