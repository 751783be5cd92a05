"""The patient banner quotes the thresholds and windows of the protocol in force: a clinic that
changed them reads its own numbers, never the defaults (the suggestion's reasons already do)."""

from __future__ import annotations

from kapnotes.db import session_scope
from kapnotes.dosing import protocol_settings
from kapnotes.dosing.protocol import DEFAULT_PATH
from tests.helpers.apptest import run_page
from tests.helpers.records import add_dose
from tests.helpers.uitext import rendered_text


def _clinic_protocol(engine, clinic) -> None:
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    for old, new in (("systolic_at_or_above = 180", "systolic_at_or_above = 170"),
                     ("diastolic_at_or_above = 110", "diastolic_at_or_above = 100"),
                     ("safety_min_days = 14", "safety_min_days = 21"),
                     ("plan_window_days = 28", "plan_window_days = 35")):
        assert old in text, old
        text = text.replace(old, new, 1)
    with session_scope(engine) as s:
        protocol_settings.set_clinic_protocol(s, clinic.ada, text)


def test_the_banner_quotes_the_clinics_own_blood_pressure_threshold_and_window(engine, clinic):
    _clinic_protocol(engine, clinic)
    with session_scope(engine) as s:  # above the clinic's 170/100, below the default 180/110
        add_dose(s, clinic, clinic.a1, 2, bp_systolic_pre=172, bp_diastolic_pre=96)
    text = rendered_text(run_page("dashboard", "tina", "A-001"))
    assert "blood pressure at or above 170/100 in the safety window: the last 21 days" in text
    assert "180/110" not in text and "14 days" not in text


def test_the_banner_says_the_defaults_when_the_clinic_kept_them(engine, clinic):
    with session_scope(engine) as s:
        add_dose(s, clinic, clinic.a1, 2, bp_systolic_pre=185, bp_diastolic_pre=96)
    text = rendered_text(run_page("dashboard", "tina", "A-001"))
    assert "blood pressure at or above 180/110 in the safety window: the last 14 days" in text
