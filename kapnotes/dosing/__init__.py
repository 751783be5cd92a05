"""Dosing: the protocol, the pure rules engine, and the loop of suggestions, proposals and
decisions around it (DESIGN §3).

The pieces, from the bottom up (each imports only pieces above it, as modules, never a name
re-exported here, so importing any one of them first works):

- ``protocol``: the clinic's TOML protocol, parsed and validated (pure);
  ``protocol_settings``: which protocol is in force (clinic text, deployment file, default)
  and an administrator saving one (database, audited).
- The engine, pure (no database, no clock): ``rules.suggest`` is the entry point;
  ``rule_facts`` its inputs, outputs and codes; ``rule_window`` one evaluation's windows;
  ``safety_rules`` (rules 1–3), ``data_rules`` (4–5), ``efficacy_rules`` (the gate and 6).
  ``scenario`` reads a scenario file for the ``suggest`` command.
- ``plans``: treatment plans, append-only versions.
- ``facts``: a patient's record as the engine's facts, and the facts key that dates an item;
  ``staleness``: whether an item still matches the record, and what changed.
- ``adjustments``: an item's states, reading and saving one; ``loop``: re-running the engine
  when a patient's facts change (supersede, urgent items straight to the queue);
  ``proposals``: a therapist sending, proposing, withdrawing; ``queue``: the prescriber's
  review queue; ``decisions``: approve, modify or reject, with overrides.
- ``suggestions``: the services above under one name (and the events listener).

The safety flags that follow a patient everywhere are ``kapnotes.safety``.
"""

from kapnotes.dosing.adjustments import get_adjustment, latest_decision, latest_suggestion, patient_adjustments
from kapnotes.dosing.decisions import DecisionRequirements, decide, decision_requirements, set_plan_status
from kapnotes.dosing.facts import engine_inputs, evaluate, facts_key
from kapnotes.dosing.loop import run_for_patient
from kapnotes.dosing.plans import PlanInput, active_plan, current_plan, new_plan_version, plan_history
from kapnotes.dosing.proposals import propose, send_to_prescriber, take_to_review, withdraw
from kapnotes.dosing.protocol import Protocol, ProtocolError, load_default, parse_text
from kapnotes.dosing.protocol_settings import in_force, set_clinic_protocol
from kapnotes.dosing.queue import QueueItem, pending_count, queue_data, review_queue
from kapnotes.dosing.rules import AssessmentFacts, DoseFacts, PlanFacts, Suggestion, suggest
from kapnotes.dosing.staleness import is_stale, stale_reason

__all__ = [
    "AssessmentFacts", "DecisionRequirements", "DoseFacts", "PlanFacts", "PlanInput", "Protocol", "ProtocolError",
    "QueueItem", "Suggestion", "active_plan", "current_plan", "decide", "decision_requirements", "engine_inputs",
    "evaluate", "facts_key", "get_adjustment", "in_force", "is_stale", "latest_decision", "latest_suggestion",
    "load_default", "new_plan_version", "parse_text", "patient_adjustments", "pending_count", "plan_history",
    "propose", "queue_data", "review_queue", "run_for_patient", "send_to_prescriber", "set_clinic_protocol",
    "set_plan_status", "stale_reason", "suggest", "take_to_review", "withdraw",
]
