"""Dose adjustments as one namespace: engine suggestions, therapist proposals, the prescriber's
review (DESIGN §3, "the loop around the rules").

The code lives in small modules (see ``kapnotes.dosing``); this module gathers their public
names so callers keep writing ``suggestions.decide(...)``, and ``kapnotes.events`` names it as
the listener (``handle``) that re-runs the engine when a patient's facts change.
"""

from __future__ import annotations

from kapnotes.dosing.adjustments import (
    DECIDED_STATES,
    DECISIONS,
    INFORMATIONAL_ACTIONS,
    OPEN_STATES,
    PLAN_CHANGING_ACTIONS,
    SENDABLE_ACTIONS,
    URGENT_ACTIONS,
    get_adjustment,
    latest_decision,
    latest_suggestion,
    patient_adjustments,
    user_names,
)
from kapnotes.dosing.decisions import DecisionRequirements, decide, decision_requirements, set_plan_status
from kapnotes.dosing.facts import (
    PLAN_WINDOW_DAYS,
    RECENT_DOSES,
    current_plans,
    current_safety_codes,
    engine_inputs,
    evaluate,
    facts_key,
    facts_keys,
    safety_window_days,
)
from kapnotes.dosing.loop import handle, run_for_patient
from kapnotes.dosing.proposals import propose, send_to_prescriber, take_to_review, withdraw
from kapnotes.dosing.queue import QueueItem, ScorePoint, pending_count, queue_data, recent_data, review_queue
from kapnotes.dosing.staleness import is_stale, stale_reason
from kapnotes.safety import hold_flags
from kapnotes.timeutil import utcnow  # the services' clock (the demo seed replays history through it)
from kapnotes.vocab import AUTO_SENT, CHECK_STATUS_LABELS, RULE_LABELS, rule_label  # their home is kapnotes.vocab

__all__ = [
    "AUTO_SENT", "CHECK_STATUS_LABELS", "DECIDED_STATES", "DECISIONS", "INFORMATIONAL_ACTIONS", "OPEN_STATES",
    "PLAN_CHANGING_ACTIONS", "PLAN_WINDOW_DAYS", "RECENT_DOSES", "RULE_LABELS", "SENDABLE_ACTIONS",
    "URGENT_ACTIONS", "DecisionRequirements", "QueueItem", "ScorePoint", "current_plans", "current_safety_codes",
    "decide", "decision_requirements", "engine_inputs", "evaluate", "facts_key", "facts_keys", "get_adjustment",
    "handle", "hold_flags", "is_stale", "latest_decision", "latest_suggestion", "patient_adjustments",
    "pending_count", "propose", "queue_data", "recent_data", "review_queue", "rule_label", "run_for_patient",
    "safety_window_days", "send_to_prescriber", "set_plan_status", "stale_reason", "take_to_review", "user_names",
    "utcnow", "withdraw",
]
