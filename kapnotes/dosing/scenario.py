"""Scenario files for ``python -m kapnotes suggest`` (DESIGN.md §3).

A scenario is JSON::

    {"as_of": "2026-03-01",
     "plan": {"dose_mg": 150, "interval_days": 7, "effective_from": "2026-02-01"},
     "doses": [{"taken_at": "2026-02-02T20:00:00Z", "dose_mg": 150, ...dose-log fields...}],
     "assessments": [{"instrument": "GAD-7", "date": "2026-02-27", "items": [2,2,1,2,1,1,2]}]}

An assessment gives ``items`` or ``total`` (both must agree). Values are checked with
the same ranges as the app (``kapnotes.vitals``, ``kapnotes.scales``); any problem
raises ``ScenarioError`` whose ``errors`` name the field (``doses[2].dose_mg``).
``name``, ``description`` and ``expected`` are allowed at the top level and ignored,
so a clinic can keep its test cases' expectations in the same file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timezone

from kapnotes import vitals
from kapnotes.dosing.rules import AssessmentFacts, DoseFacts, PlanFacts
from kapnotes.errors import ValidationError
from kapnotes.models import Administration, DoseContext, Formulation
from kapnotes.scales import score

TOP_KEYS = {"as_of", "plan", "doses", "assessments"}
IGNORED_TOP_KEYS = {"name", "description", "expected", "comment"}
PLAN_KEYS = {"dose_mg", "interval_days", "effective_from", "formulation"}
DOSE_KEYS = (
    "taken_at", "dose_mg", "formulation", "administration", "context", "anxiety_before", "anxiety_after",
    "dissociation", "nausea", "vomited", "bp_systolic_pre", "bp_diastolic_pre", "bp_systolic_post",
    "bp_diastolic_post", "heart_rate", "adverse_events", "notes",
)
ASSESSMENT_KEYS = {"instrument", "date", "items", "total"}


class ScenarioError(ValidationError):
    """A malformed scenario; ``errors`` maps the field's path to what is wrong."""


@dataclass(frozen=True)
class Scenario:
    as_of: date
    plan: PlanFacts
    doses: tuple[DoseFacts, ...]
    assessments: tuple[AssessmentFacts, ...]


def _date(value, path: str, errors: dict) -> date | None:
    if not isinstance(value, str):
        errors[path] = f"must be a date as text (YYYY-MM-DD), got {value!r}."
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        try:
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).date()
        except ValueError:
            errors[path] = f"{value!r} is not a valid date; use YYYY-MM-DD."
            return None


def _datetime(value, path: str, errors: dict) -> datetime | None:
    if not isinstance(value, str):
        errors[path] = f"must be an ISO 8601 date or date-time as text, got {value!r}."
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        errors[path] = f"{value!r} is not an ISO 8601 date or date-time (e.g. 2026-02-27T20:00:00Z)."
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _number(value, path: str, errors: dict, integer: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        errors[path] = f"must be a {'whole number' if integer else 'number'}, got {value!r}."
        return None
    return int(value) if integer else float(value)


def _unknown(obj: dict, allowed, path: str, errors: dict) -> None:
    for key in obj:
        if key not in allowed:
            errors[f"{path}.{key}" if path else key] = "is not a scenario field."


def _object(obj, path: str, allowed, errors: dict, what: str) -> bool:
    """Whether ``obj`` is a JSON object (else ``errors[path]`` says it must be ``what``); a key
    outside ``allowed`` is an error too."""
    if not isinstance(obj, dict):
        errors[path] = f"must be {what}."
        return False
    _unknown(obj, allowed, path, errors)
    return True


def _required(obj: dict, key: str, path: str, errors: dict, parser):
    """``obj[key]`` through ``parser(value, field_path, errors)``; None, and "is missing." under the
    field's path, when the key is absent or null."""
    field = f"{path}.{key}" if path else key
    if obj.get(key) is None:
        errors[field] = "is missing."
        return None
    return parser(obj[key], field, errors)


def _check_dose(value, path: str, errors: dict) -> None:
    errors.update(vitals.check_dose(value, path))


def _bool(value, path: str, errors: dict) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "yes", "no", "1", "0", ""}:
        return value.strip().lower() in {"true", "yes", "1"}
    errors[path] = f"must be true or false, got {value!r}."
    return False


def _plan(obj, as_of: date | None, errors: dict) -> PlanFacts | None:
    if not _object(obj, "plan", PLAN_KEYS, errors, "an object with dose_mg, interval_days and effective_from"):
        return None
    out = {}
    for key in ("dose_mg", "interval_days", "effective_from"):
        if key not in obj or obj[key] is None:
            errors[f"plan.{key}"] = "is missing."
    if obj.get("dose_mg") is not None:
        errors.update(vitals.check_dose(obj["dose_mg"], "plan.dose_mg"))
        if "plan.dose_mg" not in errors:
            out["dose_mg"] = float(obj["dose_mg"])
    if obj.get("interval_days") is not None:
        v = _number(obj["interval_days"], "plan.interval_days", errors, integer=True)
        if v is not None and not 1 <= v <= 90:
            errors["plan.interval_days"] = f"must be 1–90 days, got {obj['interval_days']!r}."
        elif v is not None:
            out["interval_days"] = v
    if obj.get("effective_from") is not None:
        d = _date(obj["effective_from"], "plan.effective_from", errors)
        if d is not None and as_of is not None and d > as_of:
            errors["plan.effective_from"] = f"{d.isoformat()} is after as_of ({as_of.isoformat()})."
        elif d is not None:
            out["effective_from"] = d
    if set(out) != {"dose_mg", "interval_days", "effective_from"}:
        return None
    return PlanFacts(**out)


def _dose_codes_and_ratings(obj: dict, path: str, errors: dict) -> None:
    """Formulation, administration and context among their codes; ratings and heart rate in range."""
    for key, allowed in (("formulation", Formulation), ("administration", Administration), ("context", DoseContext)):
        value = obj.get(key)  # a list or an object is refused by name too (it cannot be looked up)
        if value is not None and (not isinstance(value, str) or value not in {a.value for a in allowed}):
            errors[f"{path}.{key}"] = f"must be one of {', '.join(a.value for a in allowed)}, got {obj[key]!r}."
    for key, (low, high), label in (
        ("anxiety_before", vitals.RATING_0_10, "Anxiety before"),
        ("anxiety_after", vitals.RATING_0_10, "Anxiety after"),
        ("dissociation", vitals.RATING_0_10, "Dissociation"),
        ("nausea", vitals.NAUSEA_RANGE, "Nausea"),
        ("heart_rate", vitals.HEART_RATE_RANGE, "Heart rate"),
    ):
        if obj.get(key) is not None:
            if _number(obj[key], f"{path}.{key}", errors, integer=True) is not None:
                errors.update(vitals.check_range(obj[key], low, high, f"{path}.{key}", label))


def _dose_bp(obj: dict, path: str, errors: dict) -> None:
    """The pre- and post-dose blood pressures, each pair checked as the dose log checks it."""
    for when in ("pre", "post"):
        s_key, d_key = f"bp_systolic_{when}", f"bp_diastolic_{when}"
        s, d = obj.get(s_key), obj.get(d_key)
        ok = True
        for key, v in ((s_key, s), (d_key, d)):
            if v is not None and _number(v, f"{path}.{key}", errors, integer=True) is None:
                ok = False
        if ok:
            # check_bp names its fields "<prefix>_systolic"/"<prefix>_diastolic": map them to the scenario's
            for key, msg in vitals.check_bp(s, d, prefix="bp",
                                            label=f"{when.capitalize()}-dose blood pressure").items():
                errors[f"{path}.{key}_{when}"] = msg


def _dose_tags(obj: dict, path: str, errors: dict) -> tuple[str, ...]:
    """Adverse-event tags (a ';'-separated text or a list); notes must be text."""
    tags: tuple[str, ...] = ()
    ae = obj.get("adverse_events")
    if isinstance(ae, str):
        tags = tuple(t.strip() for t in ae.split(";") if t.strip())
    elif isinstance(ae, list) and all(isinstance(t, str) for t in ae):
        tags = tuple(t.strip() for t in ae if t.strip())
    elif ae is not None:
        errors[f"{path}.adverse_events"] = "must be a ';'-separated text or a list of tags."
    if obj.get("notes") is not None and not isinstance(obj["notes"], str):
        errors[f"{path}.notes"] = "must be text."
    return tags


def _dose(obj, i: int, errors: dict) -> DoseFacts | None:
    path = f"doses[{i}]"
    if not _object(obj, path, DOSE_KEYS, errors, "an object of dose-log fields"):
        return None
    before = len(errors)
    taken_at = _required(obj, "taken_at", path, errors, _datetime)
    _required(obj, "dose_mg", path, errors, _check_dose)
    _dose_codes_and_ratings(obj, path, errors)
    _dose_bp(obj, path, errors)
    vomited = _bool(obj.get("vomited", False), f"{path}.vomited", errors)
    tags = _dose_tags(obj, path, errors)
    if len(errors) > before:
        return None
    return DoseFacts(
        taken_at=taken_at, dose_mg=float(obj["dose_mg"]), vomited=vomited, nausea=obj.get("nausea"),
        dissociation=obj.get("dissociation"),
        bp_systolic_pre=obj.get("bp_systolic_pre"), bp_diastolic_pre=obj.get("bp_diastolic_pre"),
        bp_systolic_post=obj.get("bp_systolic_post"), bp_diastolic_post=obj.get("bp_diastolic_post"),
        adverse_events=tags,
    )


def _assessment(obj, i: int, errors: dict) -> AssessmentFacts | None:
    path = f"assessments[{i}]"
    if not _object(obj, path, ASSESSMENT_KEYS, errors, "an object with instrument, date and items or total"):
        return None
    before = len(errors)
    instrument = obj.get("instrument")
    if instrument not in ("GAD-7", "PHQ-9"):
        errors[f"{path}.instrument"] = f"must be GAD-7 or PHQ-9, got {instrument!r}."
    day = _required(obj, "date", path, errors, _date)
    items, total = obj.get("items"), obj.get("total")
    if items is not None and not isinstance(items, list):
        errors[f"{path}.items"] = f"must be a list of item answers (0–3), got {items!r}."
    if len(errors) > before:
        return None
    try:
        s = score(instrument, items=items, total=total)
    except ValidationError as exc:
        for key, msg in exc.errors.items():
            errors[f"{path}.{key if key != '_' else 'items'}"] = msg
        return None
    return AssessmentFacts(instrument, day, s.total, tuple(s.items) if s.items is not None else None)


def parse(doc) -> Scenario:
    errors: dict[str, str] = {}
    if not isinstance(doc, dict):
        raise ScenarioError({"scenario": "must be a JSON object with as_of, plan, doses and assessments."})
    _unknown(doc, TOP_KEYS | IGNORED_TOP_KEYS, "", errors)
    as_of = _required(doc, "as_of", "", errors, _date)
    if "plan" not in doc:
        errors["plan"] = "is missing."
        plan = None
    else:
        plan = _plan(doc["plan"], as_of, errors)
    doses, assessments = [], []
    for key, parser, out in (("doses", _dose, doses), ("assessments", _assessment, assessments)):
        value = doc.get(key, [])
        if not isinstance(value, list):
            errors[key] = f"must be a list, got {type(value).__name__}."
            continue
        for i, item in enumerate(value):
            parsed = parser(item, i, errors)
            if parsed is not None:
                out.append(parsed)
    if errors:
        raise ScenarioError(errors)
    return Scenario(as_of, plan, tuple(doses), tuple(assessments))


def loads(text: str) -> Scenario:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError({"scenario": f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."}) \
            from None
    return parse(doc)


def load(path) -> Scenario:
    try:
        with open(path, encoding="utf-8-sig") as fh:
            text = fh.read()
    except OSError as exc:
        raise ScenarioError({"scenario": f"cannot read {str(path)!r} ({exc.strerror or exc})."}) from None
    except UnicodeDecodeError:
        raise ScenarioError({"scenario": f"{str(path)!r} is not UTF-8 text."}) from None
    return loads(text)
