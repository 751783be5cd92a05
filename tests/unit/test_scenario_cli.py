"""``python -m kapnotes suggest --scenario FILE.json [--protocol FILE.toml]`` (DESIGN.md §3)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kapnotes.cli import main
from kapnotes.dosing import protocol, rules

ROOT = Path(__file__).resolve().parents[2]

SCENARIO = {
    "as_of": "2026-03-01",
    "plan": {"dose_mg": 150, "interval_days": 7, "effective_from": "2026-02-01"},
    "doses": [
        {"taken_at": "2026-02-08T20:00:00Z", "dose_mg": 150, "formulation": "odt", "administration": "spit",
         "context": "home", "anxiety_before": 7, "anxiety_after": 3, "dissociation": 4, "nausea": 1,
         "vomited": False, "bp_systolic_pre": 128, "bp_diastolic_pre": 82, "bp_systolic_post": 141,
         "bp_diastolic_post": 88, "heart_rate": 76, "adverse_events": "dizziness", "notes": "fine"},
        {"taken_at": "2026-02-15T20:00:00Z", "dose_mg": 150},
        {"taken_at": "2026-02-22T20:00:00Z", "dose_mg": 150},
        {"taken_at": "2026-03-01T09:30:00-05:00", "dose_mg": 150, "bp_systolic_pre": 124, "bp_diastolic_pre": 80,
         "nausea": 0, "dissociation": 5},
    ],
    "assessments": [
        {"instrument": "GAD-7", "date": "2026-02-01", "total": 15},
        {"instrument": "GAD-7", "date": "2026-03-01", "items": [2, 2, 2, 2, 2, 2, 1]},
        {"instrument": "PHQ-9", "date": "2026-02-27", "items": [1, 1, 1, 1, 1, 1, 1, 1, 0], "total": 8},
    ],
}


def write(tmp_path, doc, name="scenario.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc, encoding="utf-8")
    return str(path)


@pytest.mark.slow
def test_cli_prints_the_documented_json(tmp_path):
    """The real command in a subprocess: no database needed, JSON on stdout, protocol on stderr."""
    path = write(tmp_path, SCENARIO)
    env = {"PATH": "/usr/bin:/bin", "KAPNOTES_DATABASE_URL": f"sqlite:///{tmp_path}/never-created.db"}
    proc = subprocess.run([sys.executable, "-m", "kapnotes", "suggest", "--scenario", path], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert list(out) == ["action", "dose_mg", "interval_days", "flags", "reasons", "checks"]
    assert {k: out[k] for k in ("action", "dose_mg", "interval_days", "flags", "reasons")} == {
        "action": "increase", "dose_mg": 200, "interval_days": 7, "flags": ["non_response"],
        "reasons": [{"code": "non_response",
                     "text": "GAD-7 15 on 2026-02-01 \u2192 13 on 2026-03-01 (\u221213 %), below the 25 % threshold: "
                             "increase from 150 mg to 200 mg."}],
    }
    assert [c["rule"] for c in out["checks"]] == list(rules.CHECK_CODES)
    statuses = {c["rule"]: c["status"] for c in out["checks"]}
    assert statuses == {code: "passed" for code in rules.CHECK_CODES}
    assert all(c["text"].endswith(".") for c in out["checks"])
    assert protocol.load_default().sha256 in proc.stderr
    assert not (tmp_path / "never-created.db").exists()


def test_protocol_option_changes_the_rules(tmp_path, capsys):
    clinic = tmp_path / "clinic.toml"
    clinic.write_text(protocol.DEFAULT_PATH.read_text().replace("partial_improvement = 0.25",
                                                                "partial_improvement = 0.10"))
    assert main(["suggest", "--scenario", write(tmp_path, SCENARIO), "--protocol", str(clinic)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["action"], out["flags"]) == ("continue", ["partial_response"])


def test_protocol_from_environment(tmp_path, capsys, monkeypatch):
    clinic = tmp_path / "clinic.toml"
    clinic.write_text(protocol.DEFAULT_PATH.read_text().replace("ceiling_mg = 300 ", "ceiling_mg = 150 "))
    monkeypatch.setenv("KAPNOTES_PROTOCOL", str(clinic))
    assert main(["suggest", "--scenario", write(tmp_path, SCENARIO)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["action"], out["dose_mg"], out["flags"]) == ("review", 150, ["non_response", "at_ceiling"])


def _with(path_value, **changes):
    doc = json.loads(json.dumps(SCENARIO))
    for dotted, value in changes.items():
        target = doc
        parts = dotted.split("__")
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is _DELETE:
            del target[parts[-1]]
        else:
            target[int(parts[-1]) if parts[-1].isdigit() else parts[-1]] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(
    "changes, field",
    [
        (dict(as_of=_DELETE), "as_of"),
        (dict(as_of="01/03/2026"), "as_of"),
        (dict(plan__dose_mg="150mg"), "plan.dose_mg"),
        (dict(plan__dose_mg=0), "plan.dose_mg"),
        (dict(plan__interval_days=7.5), "plan.interval_days"),
        (dict(plan__effective_from="2026-04-01"), "plan.effective_from"),
        (dict(plan=_DELETE), "plan"),
        (dict(doses__1__taken_at="last tuesday"), "doses[1].taken_at"),
        (dict(doses__1__dose_mg=1200), "doses[1].dose_mg"),
        (dict(doses__1__dose_mg=_DELETE), "doses[1].dose_mg"),
        (dict(doses__0__nausea=4), "doses[0].nausea"),
        (dict(doses__0__bp_systolic_post=80), "doses[0].bp_systolic_post"),
        (dict(doses__0__bp_diastolic_pre=_DELETE), "doses[0].bp_diastolic_pre"),
        (dict(doses__0__formulation="gummy"), "doses[0].formulation"),
        (dict(doses__0__vomited="maybe"), "doses[0].vomited"),
        (dict(doses__0__dose="150"), "doses[0].dose"),
        (dict(doses="none"), "doses"),
        (dict(assessments__0__instrument="BDI"), "assessments[0].instrument"),
        (dict(assessments__1__items=[2, 2, 2]), "assessments[1].items"),
        (dict(assessments__1__total=3), "assessments[1].total"),
        (dict(assessments__0__total=22), "assessments[0].total"),
        (dict(assessments__0__date=_DELETE), "assessments[0].date"),
        (dict(asof="2026-03-01"), "asof"),
    ],
)
def test_malformed_scenario_exits_2_naming_the_field(tmp_path, capsys, changes, field):
    path = write(tmp_path, _with(None, **changes))
    assert main(["suggest", "--scenario", path]) == 2
    err = capsys.readouterr()
    assert err.out == ""
    assert f"error: {field}:" in err.err, err.err


def test_not_json_or_missing_file_exits_2(tmp_path, capsys):
    assert main(["suggest", "--scenario", write(tmp_path, "{not json")]) == 2
    assert "error: scenario: is not valid JSON" in capsys.readouterr().err
    assert main(["suggest", "--scenario", str(tmp_path / "nope.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["suggest", "--scenario", write(tmp_path, "[1, 2]")]) == 2


def test_bad_protocol_file_exits_2_naming_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(protocol.DEFAULT_PATH.read_text().replace("plan_window_days = 28",
                                                              "plan_window_days = 'four weeks'"))
    assert main(["suggest", "--scenario", write(tmp_path, SCENARIO), "--protocol", str(bad)]) == 2
    assert "error: protocol windows.plan_window_days:" in capsys.readouterr().err


def test_expectations_may_live_in_the_scenario(tmp_path, capsys):
    doc = dict(SCENARIO, name="non-responder at 150 mg", expected={"action": "increase"})
    assert main(["suggest", "--scenario", write(tmp_path, doc)]) == 0
    assert json.loads(capsys.readouterr().out)["action"] == "increase"


# --- the scenario files of issue 13 (tests/data/scenarios): each carries its "expected" block ---------

SCENARIOS = sorted((ROOT / "tests" / "data" / "scenarios").glob("*.json"))


def check_expected(out: dict, expected: dict) -> None:
    """Compare the engine's output with a scenario's "expected" block (action and flags exactly; the rest if given)."""
    assert out["action"] == expected["action"], out["reasons"]
    assert out["flags"] == expected["flags"], out["reasons"]
    for key in ("dose_mg", "interval_days"):
        if key in expected:
            assert out[key] == expected[key]
    statuses = {c["rule"]: c["status"] for c in out["checks"]}
    assert list(statuses) == list(rules.CHECK_CODES)
    for rule, status in expected.get("checks", {}).items():
        assert statuses[rule] == status, (rule, out["checks"])
    reasons = {r["code"]: r["text"] for r in out["reasons"]}
    for code, words in expected.get("reason_contains", {}).items():
        assert words in reasons[code]


def test_the_issue_13_cases_are_all_there():
    names = {p.stem for p in SCENARIOS}
    assert {"hold_bp_192_118_chest_pain", "hold_phq9_item9", "decrease_pre_dose_bp_168_104", "no_bp_no_phq9_ever",
            "hold_overuse_19_doses_in_28_days", "hold_fainting_16_days_ago_14_day_plan",
            "too_soon_5_days_after_plan_change", "hold_fall_nausea_3_dissociation_10", "review_phq9_9_to_21",
            "hold_900mg_dose_on_150mg_plan", "increase_clean_non_responder"} <= names
    # only the clean non-responder increases
    assert [p.stem for p in SCENARIOS if json.loads(p.read_text())["expected"]["action"] == "increase"] == [
        "increase_clean_non_responder"]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_file_gives_its_expected_suggestion(path, capsys, monkeypatch):
    monkeypatch.delenv("KAPNOTES_PROTOCOL", raising=False)
    assert main(["suggest", "--scenario", str(path)]) == 0
    check_expected(json.loads(capsys.readouterr().out), json.loads(path.read_text())["expected"])


@pytest.mark.slow
def test_a_scenario_file_through_the_real_command(tmp_path):
    """One subprocess: the hold for BP 192/118 with chest pain, as a clinic would run it."""
    path = ROOT / "tests" / "data" / "scenarios" / "hold_bp_192_118_chest_pain.json"
    env = {"PATH": "/usr/bin:/bin", "KAPNOTES_DATABASE_URL": f"sqlite:///{tmp_path}/never-created.db"}
    proc = subprocess.run([sys.executable, "-m", "kapnotes", "suggest", "--scenario", str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    check_expected(out, json.loads(path.read_text())["expected"])
    assert "192/118 pre-dose on 2026-03-01" in out["reasons"][0]["text"]


def test_scenario_dissociation_reaches_the_increase_gate(tmp_path, capsys):
    doc = _with(None, doses__3__dissociation=9)
    assert main(["suggest", "--scenario", write(tmp_path, doc)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["action"], out["flags"]) == ("continue", ["non_response", "tolerability"])
    assert "dissociation 9 of 10 on 2026-03-01" in out["reasons"][1]["text"]
