"""Demo note content for the seeder, keyed by the note templates' field names.

Every dict here passes ``kapnotes.notes.templates.validate_fields`` and has all required
fields (tested), so seeded notes look like notes written through the form.
"""

from __future__ import annotations

import random

from kapnotes.config import get_settings
from kapnotes.models import DoseEntry

INTENTIONS = (
    "Meet the worry with curiosity instead of bracing against it.",
    "Notice where fear lives in my body and let it soften.",
    "Reconnect with a sense of safety.",
    "Let go of the need to control what happens next.",
)
HOMEWORK = (
    "Ten minutes of slow breathing each morning; note moments of calm.",
    "Journal for 15 minutes the day after dosing.",
    "Walk outside daily and practise the grounding exercise.",
    "Write a letter to the younger self who first felt this fear.",
)
THEMES = (
    "Grief for a parent, felt as warmth rather than pain.",
    "A sense of spaciousness around long-held work anxiety.",
    "Memories of childhood moves; feeling unrooted, then held.",
    "Body felt heavy, then light; tearful relief.",
)


def demo_dosing_fields(rng: random.Random, number: int, dose: DoseEntry) -> dict:
    tags = [t for t in (dose.adverse_events or "").split(";") if t]
    fields = {
        "session_number": number,
        "present": "Therapist and client",
        "consent_confirmed": True,
        "intention": rng.choice(INTENTIONS),
        "fasting_confirmed": True,
        "interacting_medications": "None reported",
        "consent_to_touch": rng.choice([True, False]),
        "bp_systolic_pre": dose.bp_systolic_pre,
        "bp_diastolic_pre": dose.bp_diastolic_pre,
        "heart_rate_pre": dose.heart_rate,
        "dose_mg": float(dose.dose_mg),
        "formulation": dose.formulation,
        "time_taken": dose.taken_at.astimezone(get_settings().tz).strftime("%H:%M"),
        "minutes_in_mouth": 10,
        "administration": dose.administration or "spit",
        "dissociation": dose.dissociation,
        "nausea": dose.nausea,
        "themes": rng.choice(THEMES),
        "adverse_events": tags,
        "bp_systolic_post": dose.bp_systolic_post,
        "bp_diastolic_post": dose.bp_diastolic_post,
        "vitals_ok_at_discharge": True,
        "discharge_status": "Alert and oriented; picked up by partner; no driving until tomorrow.",
    }
    return {k: v for k, v in fields.items() if v not in (None, [], False, "")}


def demo_integration_fields(rng: random.Random) -> dict:
    return {
        "client_account": "Described the experience as gentle and meaningful.",
        "emotions_body": "Warmth in the chest; shoulders looser.",
        "themes_insights": rng.choice(THEMES),
        "homework": rng.choice(HOMEWORK),
        "risk_check": "Denies thoughts of self-harm.",
        "plan": "Continue current plan; next dosing session as scheduled.",
    }
