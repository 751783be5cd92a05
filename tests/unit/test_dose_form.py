"""The dose log's UI logic without a browser: form start values, messages in the label's words,
reading the form, the date-range widget, the log table in words."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pandas as pd

from kapnotes import doses
from kapnotes.ui.dose_form import NUMBERS, choice_defaults, field_message, form_defaults, read_input
from kapnotes.ui.dose_log_view import dose_table, period_bounds

NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 3, 1, 17, 42, 31, tzinfo=timezone.utc)
PLAN = SimpleNamespace(dose_mg=150, formulation="troche", administration="spit")


def test_new_dose_starts_now_with_the_plans_dose_and_empty_numbers():
    values = form_defaults("add", None, PLAN, NOW, NY)
    assert values["add_date"] == date(2026, 3, 1)
    assert values["add_time"] == time(12, 42)  # the clinic's clock, to the minute
    assert values["add_dose"] == 150.0
    assert all(values[f"add_{name}"] is None for name, _label in NUMBERS)
    assert form_defaults("add", None, None, NOW, NY)["add_dose"] is None
    assert choice_defaults(None, PLAN) == ("troche", "spit", "home")
    assert choice_defaults(None, None) == ("odt", None, "home")


def test_edit_starts_from_the_entry():
    entry = doses.DoseInput(taken_at=datetime(2026, 2, 1, 1, 5, tzinfo=timezone.utc), dose_mg=125,
                            formulation="odt", administration=None, context="in_session", heart_rate=71)
    values = form_defaults("e1", entry, PLAN, NOW, NY)
    assert (values["e1_date"], values["e1_time"], values["e1_dose"]) == (date(2026, 1, 31), time(20, 5), 125.0)
    assert values["e1_heart_rate"] == 71 and values["e1_nausea"] is None
    assert choice_defaults(entry, PLAN) == ("odt", None, "in_session")


def test_messages_take_the_labels_words():
    assert field_message("dose_mg", "Enter the dose in mg.") == "Dose (mg): enter the dose in mg."
    assert field_message("taken_at", "A time.") == "Date and time taken: A time."  # "A" is a word, kept
    assert field_message("_", "Someone else changed it.") == "Someone else changed it."
    assert field_message("bp_systolic_pre", "Blood pressure …") == "Blood pressure …"  # names its field already


def test_an_unreadable_date_or_time_is_refused_not_replaced():
    data, here = read_input(None, time(9, 0), NY, dose_mg=100.0, formulation="odt")
    assert data.taken_at is None and set(here) == {"taken_date"}
    data, here = read_input(date(2026, 3, 1), time(9, 0), NY, dose_mg=100.0, formulation="odt")
    assert data.taken_at == datetime(2026, 3, 1, 9, 0, tzinfo=NY) and here == {}


def test_period_until_both_ends_are_picked():
    today = date(2026, 3, 1)
    assert period_bounds((date(2026, 1, 1), date(2026, 2, 1)), today) == (date(2026, 1, 1), date(2026, 2, 1))
    assert period_bounds((date(2026, 1, 1),), today) == (date(2026, 1, 1), today)
    assert period_bounds((), today) == (today, today)


def test_the_log_table_is_in_words_and_local_time():
    frame = pd.DataFrame([{
        "taken_at": pd.Timestamp("2026-03-01 17:30", tz="UTC"), "dose_mg": 150.0, "formulation": "odt",
        "administration": None, "context": "home_with_sitter", "anxiety_before": 5, "anxiety_after": 2,
        "dissociation": 4, "nausea": 0, "vomited": False, "bp_systolic_pre": 120, "bp_diastolic_pre": 80,
        "bp_systolic_post": 130, "bp_diastolic_post": 85, "heart_rate": 70, "adverse_events": "chest_pain;fall",
        "notes": None, "source": "import", "voided_at": pd.Timestamp("2026-03-02", tz="UTC")}])
    row = dose_table(frame, NY).iloc[0]
    assert row["Taken at"] == pd.Timestamp("2026-03-01 12:30")
    assert row["Spat or swallowed"] == "" and row["Context"] == "At home with a sitter"
    assert row["Adverse events"] == "chest pain, fall" and row["Status"] == "voided"
