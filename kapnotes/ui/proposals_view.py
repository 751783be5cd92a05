"""The Proposals page's pieces: its button callbacks (each runs one service in its own unit of
work with the item id and version that were on screen) and the blocks it lays out.

Outcomes are left under ``RESULT_KEY`` for ``show_outcome``, so a change made meanwhile by
someone else is shown as a conflict, never overwritten.
"""

from __future__ import annotations

import streamlit as st

from kapnotes import vocab
from kapnotes.actor import Actor
from kapnotes.config import get_settings
from kapnotes.dosing import plans, suggestions
from kapnotes.errors import KapError
from kapnotes.models import HARD_MAX_DOSE_MG, DoseAdjustment
from kapnotes.timeutil import fmt_local
from kapnotes.ui.database import db
from kapnotes.ui.suggestion_panel import decision_block, proposal_text, suggestion_card

RESULT_KEY = "_proposals_result"
PROPOSAL_KEYS = ("prop_dose", "prop_interval", "prop_reason")
PLAN_STATUS_CHOICES = {"Hold": "held", "End": "ended", "Resume": "active"}


def _run(actor: Actor, fn, success: str, *args, **kwargs) -> None:
    """Call a service in its own unit of work; remember the outcome for display."""
    try:
        with db() as session:
            fn(session, actor, *args, **kwargs)
        st.session_state[RESULT_KEY] = ("ok", success)
    except KapError as exc:
        st.session_state[RESULT_KEY] = ("error", exc)


def send(actor: Actor, adjustment_id: int, version: int) -> None:
    _run(actor, suggestions.send_to_prescriber, "Suggestion sent to the prescriber.", adjustment_id, version,
         st.session_state.get("send_note", ""))


def take(actor: Actor, adjustment_id: int, version: int) -> None:
    _run(actor, suggestions.take_to_review, "Suggestion put in your review queue.", adjustment_id, version)


def propose(actor: Actor, patient_id: int) -> None:
    _run(actor, suggestions.propose, "Proposal sent to the prescriber.", patient_id,
         dose_mg=st.session_state.get("prop_dose"), interval_days=st.session_state.get("prop_interval"),
         reason=st.session_state.get("prop_reason", ""))
    if st.session_state[RESULT_KEY][0] == "ok":
        for key in PROPOSAL_KEYS:
            st.session_state.pop(key, None)


def withdraw(actor: Actor, adjustment_id: int, version: int) -> None:
    _run(actor, suggestions.withdraw, "Withdrawn.", adjustment_id, version)


def rerun_engine(actor: Actor, patient_id: int) -> None:
    _run(actor, suggestions.run_for_patient, "Suggestion brought up to date.", patient_id)


def plan_status(actor: Actor, patient_id: int) -> None:
    status = PLAN_STATUS_CHOICES[st.session_state.get("plan_status_choice", "Hold")]
    _run(actor, suggestions.set_plan_status, f"Plan set to {status}.", patient_id, status,
         st.session_state.get("plan_status_rationale", ""))


def load(session, actor: Actor, pid: int):
    """The plan, the latest suggestion (and whether it is stale), the sent items, who is who."""
    plan = plans.current_plan(session, pid)
    latest = suggestions.latest_suggestion(session, actor, pid)
    latest_stale = suggestions.stale_reason(session, latest, plan) if latest else None
    history = suggestions.patient_adjustments(session, actor, pid)
    keys_now = suggestions.facts_key(session, pid, plan) if plan is not None else None
    stale_history = {a.id: suggestions.stale_reason(session, a, plan, keys_now) for a in history
                     if suggestions.is_stale(a, plan, keys_now)}
    names = suggestions.user_names(session, [x for a in history + ([latest] if latest else [])
                                             for x in (a.sent_by_id, a.decided_by_id, a.created_by_id)])
    return plan, latest, latest_stale, history, stale_history, names


def latest_block(actor: Actor, latest: DoseAdjustment, names: dict, stale: str | None) -> None:
    """The latest engine suggestion, and what this user can do with it."""
    with st.container(border=True):
        suggestion_card(latest, names, stale)
        sendable = latest.status == "open" and latest.action in suggestions.SENDABLE_ACTIONS and not stale
        if sendable and actor.role == "therapist":
            st.text_input("Note for the prescriber (optional)", key="send_note")
            st.button("Send to prescriber", type="primary", on_click=send, args=(actor, latest.id, latest.version),
                      key="send_suggestion")
        elif sendable and actor.role == "prescriber":
            st.button("Take to review", type="primary", on_click=take, args=(actor, latest.id, latest.version),
                      key="take_suggestion", help="Put this suggestion in your review queue to decide on it.")
        elif latest.status == "open" and latest.action in suggestions.INFORMATIONAL_ACTIONS:
            st.caption("For information: nothing would change, so there is nothing to send.")
        elif latest.status == "pending" and latest.sent_by_id is None:
            st.caption(f"In the prescriber's review queue: {vocab.AUTO_SENT}.")


def propose_form(actor: Actor, pid: int) -> None:
    with st.form("propose_form"):
        c1, c2 = st.columns(2)
        c1.number_input("New dose (mg)", min_value=0.0, max_value=float(HARD_MAX_DOSE_MG), step=25.0, value=None,
                        key="prop_dose",
                        help="Leave empty to keep the current dose.")
        c2.number_input("New interval (days)", min_value=1, max_value=90, step=1, value=None, key="prop_interval",
                        help="Leave empty to keep the current interval.")
        st.text_area("Reason *", key="prop_reason", help="What you observed that supports the change.")
        st.form_submit_button("Send proposal to prescriber", type="primary", on_click=propose, args=(actor, pid))


def plan_status_form(actor: Actor, pid: int, plan) -> None:
    with st.form("plan_status_form"):
        choices = ["Hold", "End"] if plan.status == "active" else ["Resume", "End"]
        st.radio("Change", choices, key="plan_status_choice", horizontal=True)
        st.text_area("Rationale *", key="plan_status_rationale")
        st.form_submit_button("Save plan change", type="primary", on_click=plan_status, args=(actor, pid))


def history_item(actor: Actor, adj: DoseAdjustment, names: dict, stale: str | None) -> None:
    """A sent item: decided ones with their decision, the rest as a card (the sender may withdraw)."""
    with st.container(border=True):
        if adj.status in ("approved", "modified", "rejected"):
            st.markdown(f"**{proposal_text(adj)}** ({'suggestion' if adj.kind == 'suggestion' else 'proposal'}"
                        f", sent {fmt_local(adj.sent_at or adj.created_at, get_settings().tz)})")
            decision_block(adj, names)
        else:
            suggestion_card(adj, names, stale)
            if actor.role == "therapist" and adj.status == "pending" and adj.sent_by_id == actor.id:
                st.button("Withdraw", key=f"withdraw_{adj.id}", on_click=withdraw,
                          args=(actor, adj.id, adj.version))
