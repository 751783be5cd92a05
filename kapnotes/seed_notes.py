"""Demo note content for the seeder, keyed by the note templates' field names."""

from __future__ import annotations

import random

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
    return {
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
        "dose_mg": dose.dose_mg,
        "formulation": dose.formulation,
        "time_taken": dose.taken_at.strftime("%H:%M"),
        "minutes_in_mouth": 10,
        "administration": "spit",
        "dissociation": dose.dissociation,
        "themes": rng.choice(THEMES),
        "adverse_events": dose.adverse_events or "None",
        "bp_systolic_post": dose.bp_systolic_post,
        "bp_diastolic_post": dose.bp_diastolic_post,
        "discharge_status": "Alert and oriented; picked up by partner; no driving until tomorrow.",
    }


def demo_integration_fields(rng: random.Random) -> dict:
    return {
        "client_account": "Described the experience as gentle and meaningful.",
        "themes_insights": rng.choice(THEMES),
        "homework": rng.choice(HOMEWORK),
        "risk_check": "Denies thoughts of self-harm.",
        "plan": "Continue current plan; next dosing session as scheduled.",
    }
