"""The protocol file: DESIGN.md §3 defaults, validation naming the bad key, name + hash, the clinic's choice."""

from __future__ import annotations

import hashlib
from fractions import Fraction

import pytest
from sqlmodel import select

from kapnotes.dosing import protocol, protocol_settings
from kapnotes.errors import PermissionDenied
from kapnotes.models import AuditEvent, ClinicSetting

DEFAULT_TEXT = protocol.DEFAULT_PATH.read_text(encoding="utf-8")


def test_default_protocol_holds_the_design_defaults():
    p = protocol.load_default()
    assert p.name == "KAPNotes default protocol, version 2"
    assert p.steps_mg == (50, 100, 150, 200, 250, 300)
    assert p.ceiling_mg == 300 and p.intervals_days == (3, 7, 14, 28)
    assert (p.recent_doses, p.hold_window_days, p.safety_interval_multiple, p.plan_window_days) == (3, 14, 2, 28)
    assert (p.hold_systolic, p.hold_diastolic, p.overuse_margin) == (180, 110, 2)
    assert set(p.serious_adverse_events) == {"fainting", "chest_pain", "breathing_difficulty", "seizure",
                                             "psychotic_symptoms", "self_harm", "emergency_visit", "fall"}
    assert (p.decrease_min_count, p.severe_nausea) == (2, 3)
    assert (p.decrease_systolic, p.decrease_diastolic) == (160, 100)
    assert (p.review_phq9_total, p.review_phq9_rise) == (20, 5)
    assert (p.too_soon_days, p.min_doses_at_current_dose, p.gad7_max_age_days, p.phq9_max_age_days) == (14, 2, 14, 28)
    assert (p.adherence_min_planned, p.adherence_min_fraction) == (2, Fraction(7, 10))
    assert (p.remission_below, p.remission_confirm_days, p.low_baseline_below) == (5, 14, 5)
    assert (p.response_improvement, p.partial_improvement) == (Fraction(1, 2), Fraction(1, 4))
    assert (p.gate_nausea, p.gate_dissociation, p.gate_systolic, p.gate_diastolic) == (2, 8, 150, 95)
    assert p.gate_any_adverse_event is True
    assert p.sha256 == hashlib.sha256(protocol.DEFAULT_PATH.read_bytes()).hexdigest()
    assert p.source == "default"


def test_safety_window_is_two_intervals_but_at_least_14_days():
    p = protocol.load_default()
    assert [p.safety_window_days(i) for i in (1, 3, 7, 8, 14, 28)] == [14, 14, 14, 16, 28, 56]


def test_every_key_of_the_default_file_is_required(tmp_path):
    """Dropping any one key is refused under that key's name: nothing falls back to a default."""
    keys = [(section, key) for section, table in protocol.SCHEMA.items() for key in table]
    assert len(keys) == 33
    lines = DEFAULT_TEXT.splitlines(keepends=True)
    section = None
    for section_name, key in keys:
        out, section, skipping = [], None, False
        for line in lines:
            stripped = line.strip()
            if skipping:  # the rest of a multi-line list
                skipping = "]" not in stripped
                continue
            if stripped.startswith("["):
                section = stripped.strip("[]")
            if section == section_name and stripped.split("=")[0].strip() == key:
                skipping = stripped.endswith("[")
                continue
            out.append(line)
        assert len(out) < len(lines), (section_name, key)
        path = tmp_path / "clinic.toml"
        path.write_text("".join(out), encoding="utf-8")
        with pytest.raises(protocol.ProtocolError) as exc:
            protocol.load(path)
        assert exc.value.errors == {f"{section_name}.{key}": "is missing."}


@pytest.mark.parametrize(
    "old, new, key, words",
    [
        ("ceiling_mg = 300 ", "ceiling_mg = 3000 ", "doses.ceiling_mg", "at most 500 (the hard maximum)"),
        ("ceiling_mg = 300 ", "ceiling_mg = 501 ", "doses.ceiling_mg", "at most 500"),
        ("steps_mg = [50, 100, 150, 200, 250, 300]", "steps_mg = [50, 100, 600]", "doses.steps_mg", "at most 500"),
        ("steps_mg = [50, 100, 150, 200, 250, 300]", "steps_mg = [50, 150, 100]", "doses.steps_mg", "ascending"),
        ("intervals_days = [3, 7, 14, 28]", "intervals_days = [3, 'x']", "doses.intervals_days", "item 2"),
        ("safety_min_days = 14 ", "safety_min_days = -1 ", "windows.safety_min_days", "whole number"),
        ("overuse_margin = 2", "overuse_margin = 'two'", "hold.overuse_margin", "whole number"),
        ("phq9_max_age_days = 28", "phq9_max_age_days = 0", "data.phq9_max_age_days", "whole number"),
        ("any_adverse_event = true", "any_adverse_event = 1", "gate.any_adverse_event", "true or false"),
        ("dissociation_at_or_above = 8", "dissociation_at_or_above = 11", "gate.dissociation_at_or_above",
         "from 1 to 10"),
        ("any_adverse_event = true", "any_adverse_event = true\nfainting = true",
         "gate.fainting", "not a protocol key"),
        ("min_taken_fraction = 0.70", "min_taken_fraction = 70", "adherence.min_taken_fraction", "between 0 and 1"),
        ("partial_improvement = 0.25", "partial_improvement = 0.60", "efficacy.partial_improvement", "below"),
        ("severe_nausea = 3", "severe_nausae = 3", "decrease.severe_nausae", "not a protocol key"),
        ("severe_nausea = 3", "", "decrease.severe_nausea", "missing"),
        ('name = "KAPNotes default protocol, version 2"', "", "name", "missing"),
        ("[review]", "", "review", "section is missing"),
        ("[data]", "[dataa]", "dataa", "not a protocol key"),
        ("ceiling_mg = 300 ", "ceiling_mg = 40 ", "doses.ceiling_mg", "lowest step"),
        # cross-checks: gate BP <= decrease BP <= hold BP; gate nausea <= severe nausea; min_count <= recent doses
        ("systolic_at_or_above = 160", "systolic_at_or_above = 185", "decrease.systolic_at_or_above",
         "hold.systolic_at_or_above"),
        ("diastolic_at_or_above = 95", "diastolic_at_or_above = 101", "gate.diastolic_at_or_above",
         "decrease.diastolic_at_or_above"),
        ("systolic_at_or_above = 150", "systolic_at_or_above = 161", "gate.systolic_at_or_above",
         "decrease.systolic_at_or_above"),
        ("nausea_at_or_above = 2", "nausea_at_or_above = 3", None, None),
        ("severe_nausea = 3", "severe_nausea = 1", "gate.nausea_at_or_above", "decrease.severe_nausea"),
        ("recent_doses = 3 ", "recent_doses = 1 ", "decrease.min_count", "windows.recent_doses"),
    ],
)
def test_invalid_protocol_names_the_bad_key(tmp_path, old, new, key, words):
    assert old in DEFAULT_TEXT
    path = tmp_path / "clinic.toml"
    path.write_text(DEFAULT_TEXT.replace(old, new, 1), encoding="utf-8")
    if key is None:  # an allowed edit: loads
        protocol.load(path)
        return
    with pytest.raises(protocol.ProtocolError) as exc:
        protocol.load(path)
    assert key in exc.value.errors, exc.value.errors
    assert words in exc.value.errors[key]


def test_not_toml_and_missing_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = \n", encoding="utf-8")
    with pytest.raises(protocol.ProtocolError) as exc:
        protocol.load(path)
    assert "not valid TOML" in exc.value.errors["file"]
    with pytest.raises(protocol.ProtocolError) as exc:
        protocol.load(tmp_path / "missing.toml")
    assert "cannot read" in exc.value.errors["file"]


def test_clinic_file_hash_changes_with_content(tmp_path):
    path = tmp_path / "clinic.toml"
    path.write_text(DEFAULT_TEXT.replace("ceiling_mg = 300 ", "ceiling_mg = 250 "), encoding="utf-8")
    p = protocol.load(path)
    assert p.ceiling_mg == 250 and p.source == str(path)
    assert p.sha256 != protocol.load_default().sha256
    path.write_text(DEFAULT_TEXT.replace("ceiling_mg = 300 ", "ceiling_mg = 200 "), encoding="utf-8")
    assert protocol.load(path).ceiling_mg == 200  # reloaded, not served stale from the cache


def test_environment_and_clinic_setting_choose_the_protocol(session, clinic, tmp_path, monkeypatch):
    env_file = tmp_path / "env.toml"
    env_file.write_text(DEFAULT_TEXT.replace("ceiling_mg = 300 ", "ceiling_mg = 250 "), encoding="utf-8")
    admin_file = tmp_path / "admin.toml"
    admin_file.write_text(DEFAULT_TEXT.replace("ceiling_mg = 300 ", "ceiling_mg = 200 "), encoding="utf-8")
    monkeypatch.delenv(protocol.ENV_VAR, raising=False)
    assert protocol_settings.in_force(session).source == "default"
    monkeypatch.setenv(protocol.ENV_VAR, str(env_file))
    assert protocol_settings.in_force(session).ceiling_mg == 250
    p = protocol_settings.set_clinic_protocol(session, clinic.ada, admin_file.read_text(encoding="utf-8"))
    assert p.ceiling_mg == 200 and protocol_settings.in_force(session).ceiling_mg == 200
    assert protocol_settings.in_force(session).source == protocol.CLINIC_SOURCE
    ev = session.exec(select(AuditEvent).where(AuditEvent.action == "protocol.set")).one()
    assert ev.actor_id == clinic.ada.id and p.sha256[:16] in ev.detail
    protocol_settings.set_clinic_protocol(session, clinic.ada, "")
    assert protocol_settings.in_force(session).ceiling_mg == 250  # back to the deployment's choice


def test_setting_an_invalid_protocol_text_writes_nothing_and_only_admins_may(session, clinic, tmp_path):
    bad = DEFAULT_TEXT.replace("ceiling_mg = 300 ", "ceiling_mg = 'lots' ")
    with pytest.raises(protocol.ProtocolError) as exc:
        protocol_settings.set_clinic_protocol(session, clinic.ada, bad)
    assert "doses.ceiling_mg" in exc.value.errors
    assert session.get(ClinicSetting, protocol.SETTING_KEY) is None
    with pytest.raises(protocol.ProtocolError):  # a server path is not a protocol (the page never reads files)
        protocol_settings.set_clinic_protocol(session, clinic.ada, str(protocol.DEFAULT_PATH))
    assert session.get(ClinicSetting, protocol.SETTING_KEY) is None
    with pytest.raises(PermissionDenied):
        protocol_settings.set_clinic_protocol(session, clinic.paul, DEFAULT_TEXT)
