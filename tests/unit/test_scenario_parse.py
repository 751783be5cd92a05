"""A scenario file's dose codes: a value that is a list or an object is refused by name, like any
other wrong code, instead of crashing the parser (it was a TypeError: unhashable)."""

from __future__ import annotations

import pytest

from kapnotes.dosing import scenario

PLAN = {"dose_mg": 100, "interval_days": 7, "effective_from": "2026-01-01"}


@pytest.mark.parametrize("key", ["formulation", "administration", "context"])
@pytest.mark.parametrize("value", [["odt"], {"code": "odt"}, 3])
def test_a_code_that_is_not_text_is_refused_by_name(key, value):
    doc = {"as_of": "2026-01-10", "plan": PLAN,
           "doses": [{"taken_at": "2026-01-05T09:00:00+00:00", "dose_mg": 100, key: value}]}
    with pytest.raises(scenario.ScenarioError) as refused:
        scenario.parse(doc)
    assert list(refused.value.errors) == [f"doses[0].{key}"]
    assert refused.value.errors[f"doses[0].{key}"].startswith("must be one of ")


def test_a_known_code_is_accepted():
    doc = {"as_of": "2026-01-10", "plan": PLAN,
           "doses": [{"taken_at": "2026-01-05T09:00:00+00:00", "dose_mg": 100, "formulation": "odt"}]}
    assert len(scenario.parse(doc).doses) == 1
