"""The words the interface and the PDFs use for stored codes, defined once.

Codes (``chest_pain``, ``home_with_sitter``, ``odt``) are what the database stores; a clinician
never reads them. Every form, table and PDF turns a code into words through this module, so a
vocabulary has one home and a new code cannot appear raw in one place and worded in another.
Unknown codes fall back to the code with underscores as spaces (never a snake_case token).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

# --- adverse events ------------------------------------------------------------------------------

# The serious ones (DESIGN.md §3 hold rule, and the protocol's serious events) first.
SERIOUS_ADVERSE_EVENTS = (
    "fainting", "chest_pain", "breathing_difficulty", "seizure", "psychotic_symptoms", "self_harm",
    "emergency_visit", "fall",
)
# What a session note's multiselect offers (the note template's set; "fall" is recorded on the
# dose log and by the patient's check-in).
NOTE_ADVERSE_EVENT_TAGS = tuple(t for t in SERIOUS_ADVERSE_EVENTS if t != "fall") + (
    "nausea", "vomiting", "dizziness", "headache", "sedation", "anxiety", "hypertension", "other",
)
ADVERSE_EVENT_TAGS = SERIOUS_ADVERSE_EVENTS + tuple(t for t in NOTE_ADVERSE_EVENT_TAGS
                                                    if t not in SERIOUS_ADVERSE_EVENTS)
ADVERSE_EVENT_WORDS = {
    "fainting": "fainting",
    "chest_pain": "chest pain",
    "breathing_difficulty": "difficulty breathing",
    "seizure": "seizure",
    "psychotic_symptoms": "psychotic symptoms",
    "self_harm": "self-harm",
    "emergency_visit": "emergency visit",
    "fall": "fall",
    "nausea": "nausea",
    "vomiting": "vomiting",
    "dizziness": "dizziness",
    "headache": "headache",
    "sedation": "sedation",
    "anxiety": "anxiety",
    "hypertension": "high blood pressure",
    "other": "other",
}
# Side effects in the patient's own words (the check-in page) → the tags of the clinical record.
PATIENT_SIDE_EFFECTS: dict[str, str] = {
    "Felt sick to my stomach": "nausea",
    "Dizzy or unsteady": "dizziness",
    "Headache": "headache",
    "Very sleepy or hard to wake": "sedation",
    "Anxious or panicky": "anxiety",
    "High blood pressure reading": "hypertension",
    "Fell down": "fall",
    "Fainted or passed out": "fainting",
    "Chest pain": "chest_pain",
    "Trouble breathing": "breathing_difficulty",
    "Seizure": "seizure",
    "Saw or heard things that were not there": "psychotic_symptoms",
    "Hurt myself": "self_harm",
    "Went to the emergency room": "emergency_visit",
    "Something else": "other",
}


def _spaced(code: str) -> str:
    return str(code).replace("_", " ").strip()


def _word_of(words: dict[str, str], capitalize: bool = False) -> Callable[[str | None], str]:
    """The function giving a stored code's word from ``words``: "" for None, and for a code ``words``
    does not know, the code with underscores as spaces (capitalised with ``capitalize``)."""

    def word(code: str | None) -> str:
        if code is None:
            return ""
        if str(code) in words:
            return words[str(code)]
        return _spaced(code).capitalize() if capitalize else _spaced(code)

    return word


def adverse_event_word(tag: str) -> str:
    return ADVERSE_EVENT_WORDS.get(str(tag).strip(), _spaced(tag))


def adverse_event_tag(text: str) -> str:
    """A word or a typed tag back to its stored code ("chest pain" → ``chest_pain``)."""
    t = str(text).strip()
    for code, word in ADVERSE_EVENT_WORDS.items():
        if t.lower() in (word.lower(), code, _spaced(code)):
            return code
    return t


def adverse_events_text(tags: str | Iterable[str] | None, sep: str = ", ") -> str:
    """Stored tags (a ``;``-joined string or a list) as words: "chest pain, dizziness"."""
    if tags is None:
        return ""
    items = tags.split(";") if isinstance(tags, str) else list(tags)
    return sep.join(adverse_event_word(t) for t in items if str(t).strip())


# --- units ---------------------------------------------------------------------------------------

UNITS = {"dose": "mg", "blood_pressure": "mmHg", "heart_rate": "bpm", "minutes": "min", "days": "days"}


# --- dose words -----------------------------------------------------------------------------------

FORMULATION_WORDS = {"odt": "ODT", "sublingual": "Sublingual", "troche": "Troche", "other": "Other"}
ADMINISTRATION_WORDS = {"spit": "Spit", "swallow": "Swallowed"}
CONTEXT_WORDS = {"home": "At home", "home_with_sitter": "At home with a sitter", "in_session": "In session"}
# How a source reads wherever a clinician sees it (dose log, PDFs): never the bare code.
DOSE_SOURCE_WORDS = {
    "manual": "entered by staff",
    "import": "imported",
    "session": "session note",
    "patient": "patient-reported",
}


# Short forms for narrow table columns (the PDFs' dose tables).
FORMULATION_SHORT = {"odt": "ODT", "sublingual": "SL tab", "troche": "Troche", "other": "Other"}
CONTEXT_SHORT = {"home": "Home", "home_with_sitter": "Home + sitter", "in_session": "In session"}
MODALITY_WORDS = {"in_person": "In person", "telehealth": "Telehealth"}


formulation_word = _word_of(FORMULATION_WORDS)
administration_word = _word_of(ADMINISTRATION_WORDS)
context_word = _word_of(CONTEXT_WORDS)
source_word = _word_of(DOSE_SOURCE_WORDS)


# --- notes, plans, decisions -----------------------------------------------------------------------

NOTE_TYPE_WORDS = {
    "preparation": "Preparation session",
    "dosing": "KAP dosing session",
    "integration": "Integration session",
    "check_in": "Check-in",
}
NOTE_STATUS_WORDS = {"draft": "Draft", "signed": "Signed"}
PLAN_STATUS_WORDS = {"active": "Active", "held": "Held", "ended": "Ended"}
PATIENT_STATUS_WORDS = {"active": "Active", "paused": "Paused", "discharged": "Discharged"}
# A decision's verb (what the prescriber does) and its past tense (what the record says).
DECISION_VERBS = {"approve": "Approve", "modify": "Modify", "reject": "Reject"}
DECISION_PAST = {"approve": "approved", "modify": "modified", "reject": "rejected"}
DECISION_WORDS = {"approved": "Approved", "modified": "Modified", "rejected": "Rejected"}
ADJUSTMENT_STATUS_WORDS = {
    "open": "not sent",
    "pending": "waiting for the prescriber",
    "approved": "approved",
    "modified": "modified",
    "rejected": "rejected",
    "superseded": "superseded",
    "withdrawn": "withdrawn",
}
URGENCY_WORDS = {True: "Urgent", False: "Routine"}
# The review queue's ranks (0 a hold, 1 a decrease, 2 the rest) as its Urgency column reads them.
URGENCY_KIND_WORDS = ("HOLD", "Decrease", "")
# Who sent an engine suggestion that reached the queue by itself.
AUTO_SENT = "sent automatically by the rules engine"


note_type_word = _word_of(NOTE_TYPE_WORDS, capitalize=True)
plan_status_word = _word_of(PLAN_STATUS_WORDS, capitalize=True)


def decision_past(verb: str) -> str:
    """``modify`` → "modified" (never "modifyed"); a past tense passes through."""
    v = str(verb)
    return DECISION_PAST.get(v, v if v in DECISION_WORDS else _spaced(v))


def urgency_word(urgent: bool) -> str:
    return URGENCY_WORDS[bool(urgent)]


def urgency_label(urgent: bool, rank: int) -> str:
    """"Urgent · HOLD", "Urgent", "Decrease", "Routine": the queue's urgency in one phrase."""
    kind = URGENCY_KIND_WORDS[rank]
    if urgent:
        return f"{URGENCY_WORDS[True]} · {kind}" if kind else URGENCY_WORDS[True]
    return kind or URGENCY_WORDS[False]


def decision_choice(label: str | None) -> str | None:
    """A decision radio's label back to its verb ("Approve" -> "approve"); None when nothing is chosen."""
    return next((code for code, word in DECISION_VERBS.items() if word == label), None)


# What the engine or a therapist suggests.
ACTION_WORDS = {
    "hold": "Hold",
    "decrease": "Decrease",
    "review": "Prescriber review",
    "insufficient_data": "Insufficient data",
    "continue": "Continue",
    "space_out": "Space out",
    "increase": "Increase",
    "shorten_interval": "Shorten interval",
    "change": "Change dose and interval",
}
ADJUSTMENT_KIND_WORDS = {"suggestion": "Suggestion", "proposal": "Proposal"}


action_word = _word_of(ACTION_WORDS, capitalize=True)


# --- rules and flags -------------------------------------------------------------------------------

# Labels in words for every rule the engine checks and every override condition: nothing a
# clinician reads shows a code.
RULE_LABELS = {
    "suicidality": "PHQ-9 item 9 above 0",
    "hypertension_severe": "blood pressure at or above the hold threshold",
    "serious_adverse_event": "serious adverse event",
    "overuse": "more doses than planned",
    "dose_above_plan": "a dose above the plan's dose",
    "vomiting": "vomiting",
    "severe_nausea": "severe nausea",
    "hypertension": "high blood pressure on recent doses",
    "depression_worsening": "depression worsening (PHQ-9)",
    "too_soon": "too soon after the plan changed",
    "too_few_doses": "too few doses of the current dose",
    "stale_assessment": "no recent GAD-7",
    "stale_phq9": "no recent PHQ-9",
    "adherence": "adherence",
    "no_recent_vitals": "no blood pressure on recent doses",
    "tolerability": "tolerability of recent doses",
    "off_steps": "dose off the protocol's steps",
    "off_intervals": "interval off the protocol's intervals",
    "above_ceiling": "dose above the protocol's ceiling",
}
CHECK_STATUS_LABELS = {"fired": "fired", "passed": "passed", "not_evaluable": "not known"}


def rule_label(code: str) -> str:
    return RULE_LABELS.get(code, _spaced(code))


# --- intervals -------------------------------------------------------------------------------------


def every(days: int | None) -> str:
    """"every day", "every 7 days" (never "every 1 days")."""
    if days is None:
        return ""
    return "every day" if int(days) == 1 else f"every {int(days)} days"


def days_text(n: int) -> str:
    return "1 day" if int(n) == 1 else f"{int(n)} days"


# --- form fields, as a message about one names it ----------------------------------------------------

FIELD_WORDS: dict[str, str] = {
    "taken_at": "Time taken", "dose_mg": "Dose (mg)", "interval_days": "Interval (days)",
    "formulation": "Formulation", "administration": "Spit or swallow", "context": "Where",
    "anxiety_before": "Anxiety before (0–10)", "anxiety_after": "Anxiety after (0–10)",
    "dissociation": "Dissociation (0–10)", "nausea": "Nausea", "heart_rate": "Heart rate (bpm)",
    "bp_systolic_pre": "Blood pressure before the dose, systolic (mmHg)",
    "bp_diastolic_pre": "Blood pressure before the dose, diastolic (mmHg)",
    "bp_systolic_post": "Blood pressure after the dose, systolic (mmHg)",
    "bp_diastolic_post": "Blood pressure after the dose, diastolic (mmHg)",
    "adverse_events": "Adverse events", "notes": "Notes", "reason": "Reason", "rationale": "Rationale",
    "override_rationale": "Override rationale", "decision": "Decision", "status": "Plan status",
    "session_date": "Session date", "start_time": "Start time", "end_time": "End time",
    "administered_on": "Date", "plan": "Plan",
}


def field_word(field: str) -> str:
    """A form field's label for a message ("dose_mg" -> "Dose (mg)"; a proposal's "proposal_dose_mg"
    too), never the internal name."""
    for prefix in ("", "proposal_", "prop_", "add_", "edit_"):
        if field.startswith(prefix) and field[len(prefix):] in FIELD_WORDS:
            return FIELD_WORDS[field[len(prefix):]]
    return field.replace("_", " ").capitalize()
