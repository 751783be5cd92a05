"""Plausible ranges for doses and vital signs, shared by notes, the dose log and the CSV import.

One definition so a value accepted in one place is never refused in another.
"""

from __future__ import annotations

from kapnotes.errors import ValidationError

DOSE_MG_MAX = 1000  # above 0 and at most this
SYSTOLIC_RANGE = (60, 260)
DIASTOLIC_RANGE = (30, 160)
HEART_RATE_RANGE = (30, 220)
RATING_0_10 = (0, 10)
NAUSEA_RANGE = (0, 3)


def check_dose(value, field: str = "dose_mg") -> dict[str, str]:
    if value is None:
        return {field: "Enter the dose in mg."}
    try:
        v = float(value)
    except (TypeError, ValueError):
        return {field: f"Dose must be a number of mg, got {value!r}."}
    if not (0 < v <= DOSE_MG_MAX):
        return {field: f"Dose must be above 0 and at most {DOSE_MG_MAX} mg, got {value!r}."}
    return {}


def check_range(value, low: int, high: int, field: str, label: str) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
        return {field: f"{label} must be {low}–{high}, got {value!r}."}
    return {}


def check_bp(systolic, diastolic, prefix: str = "bp", label: str = "Blood pressure") -> dict[str, str]:
    """Both or neither; systolic 60–260, diastolic 30–160, systolic above diastolic."""
    s_field, d_field = f"{prefix}_systolic", f"{prefix}_diastolic"
    if systolic is None and diastolic is None:
        return {}
    if systolic is None or diastolic is None:
        return {s_field if systolic is None else d_field: f"{label}: give both systolic and diastolic."}
    errors = check_range(systolic, *SYSTOLIC_RANGE, s_field, f"{label}: systolic (mmHg)")
    errors |= check_range(diastolic, *DIASTOLIC_RANGE, d_field, f"{label}: diastolic (mmHg)")
    if not errors and systolic <= diastolic:
        errors[s_field] = f"{label}: systolic ({systolic}) must be above diastolic ({diastolic})."
    return errors


def raise_if(errors: dict[str, str]) -> None:
    if errors:
        raise ValidationError(errors)
