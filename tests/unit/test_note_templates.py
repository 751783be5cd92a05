"""The note templates: defined once as data, validated by a Pydantic model built from them."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from kapnotes import vitals
from kapnotes.errors import ValidationError
from kapnotes.models import NoteType
from kapnotes.notes.templates import (
    KINDS,
    SYSTEM_KEYS,
    TEMPLATES,
    display_value,
    missing_required,
    model_for,
    template,
    validate_fields,
)


def test_one_template_per_note_type_with_valid_specs():
    assert set(TEMPLATES) == {t.value for t in NoteType}
    for note_type, tpl in TEMPLATES.items():
        assert tpl.note_type == note_type and template(note_type) is tpl
        names = [f.name for f in tpl.fields]
        assert len(names) == len(set(names)), f"duplicate field in {note_type}"
        assert not set(names) & set(SYSTEM_KEYS)
        for f in tpl.fields:
            assert f.kind in KINDS and f.label
            assert (f.kind in ("select", "multiselect")) == bool(f.options)
        assert any(f.required for f in tpl.fields)
        assert issubclass(model_for(note_type), BaseModel)
        assert set(model_for(note_type).model_fields) == set(names)


def test_contract_field_names():
    dosing = set(template("dosing").names)
    assert {"bp_systolic_pre", "bp_diastolic_pre", "heart_rate_pre", "dose_mg", "formulation", "time_taken",
            "minutes_in_mouth", "administration", "booster_mg", "dissociation", "adverse_events",
            "bp_systolic_post", "bp_diastolic_post", "heart_rate_post"} <= dosing
    integ = template("integration")
    assert integ.field("proposal_dose_mg").kind == "float" and integ.field("proposal_dose_mg").unit == "mg"
    assert integ.field("proposal_interval_days").kind == "int" and integ.field("proposal_interval_days").unit == "days"
    assert integ.field("proposal_reason").kind == "textarea"
    assert not any(integ.field(n).required for n in ("proposal_dose_mg", "proposal_interval_days", "proposal_reason"))
    assert template("dosing").field("administration").options == ("spit", "swallow")


def test_bp_ranges_come_from_vitals():
    dosing = template("dosing")
    assert (dosing.field("bp_systolic_pre").min, dosing.field("bp_systolic_pre").max) == vitals.SYSTOLIC_RANGE
    assert (dosing.field("bp_diastolic_post").min, dosing.field("bp_diastolic_post").max) == vitals.DIASTOLIC_RANGE


def test_validate_normalises_widget_values():
    from datetime import date, time

    out = validate_fields("dosing", {"dose_mg": 150, "time_taken": time(9, 5), "bp_systolic_pre": 120.0,
                                     "adverse_events": ("nausea",), "consent_confirmed": False, "present": ""})
    assert out == {"dose_mg": 150.0, "time_taken": "09:05", "bp_systolic_pre": 120, "adverse_events": ["nausea"]}
    assert validate_fields("integration", {"next_dosing_date": date(2026, 1, 2)}) == {"next_dosing_date": "2026-01-02"}


@pytest.mark.parametrize("note_type, raw, field, words", [
    ("dosing", {"bp_systolic_pre": 300}, "bp_systolic_pre", "between 60 and 260 mmHg"),
    ("dosing", {"heart_rate_pre": 10}, "heart_rate_pre", "between 30 and 220"),
    ("dosing", {"dissociation": 11}, "dissociation", "between 0 and 10"),
    ("dosing", {"session_number": 1.5}, "session_number", "whole number"),
    ("dosing", {"dose_mg": "lots"}, "dose_mg", "must be a number (in mg)"),
    ("dosing", {"time_taken": "7pm"}, "time_taken", "HH:MM"),
    ("dosing", {"administration": "chew"}, "administration", "spit, swallow"),
    ("dosing", {"adverse_events": ["hiccups"]}, "adverse_events", "one of"),
    ("integration", {"next_dosing_date": "soon"}, "next_dosing_date", "YYYY-MM-DD"),
    ("check_in", {"mood": "ok"}, "mood", "not a field"),
])
def test_validate_refuses_with_a_message_naming_the_field(note_type, raw, field, words):
    with pytest.raises(ValidationError) as exc:
        validate_fields(note_type, raw)
    assert field in exc.value.errors and words in exc.value.errors[field]


def test_missing_required_and_display():
    missing = missing_required("check_in", {"data": "  ", "assessment": "ok"})
    assert set(missing) == {"data", "plan"}
    assert "tick to confirm" in missing_required("dosing", {})["consent_confirmed"]
    dosing = template("dosing")
    assert display_value(dosing.field("dose_mg"), 150.0) == "150 mg"
    assert display_value(dosing.field("consent_confirmed"), None) == "No"
    assert display_value(dosing.field("adverse_events"), ["chest_pain"]) == "chest pain"
    assert display_value(dosing.field("themes"), None) == "—"


def test_unknown_note_type():
    with pytest.raises(ValidationError):
        template("soap")


def test_seed_demo_fields_fit_the_templates():
    import random
    from datetime import datetime, timezone

    from kapnotes.models import DoseEntry
    from kapnotes.seed_notes import demo_dosing_fields, demo_integration_fields

    rng = random.Random(1)
    dose = DoseEntry(patient_id=1, taken_at=datetime(2026, 3, 1, 22, 5, tzinfo=timezone.utc), dose_mg=150,
                     formulation="odt", administration="spit", dissociation=4, nausea=1, bp_systolic_pre=120,
                     bp_diastolic_pre=80, bp_systolic_post=130, bp_diastolic_post=85, heart_rate=70,
                     adverse_events="dizziness", entered_by_id=1)
    for note_type, fields in (("dosing", demo_dosing_fields(rng, 1, dose)),
                              ("integration", demo_integration_fields(rng))):
        assert validate_fields(note_type, fields) == fields
        assert missing_required(note_type, fields) == {}
