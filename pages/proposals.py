"""Suggestions and proposals for the selected patient.

Therapist: the latest engine suggestion (send an increase or space-out to the prescriber;
holds, decreases and reviews reach the prescriber by themselves), a proposal of their own
(new dose and/or interval with a reason), and the decisions on their items. Prescriber: the
same, with "Take to review" for an open increase or space-out, plus holding, ending or
resuming the plan. An item whose record changed since it was made says so. Decisions on items are made in the
review queue. Actions run in button callbacks with the item id and version that were on
screen, so a change made meanwhile by someone else is a conflict, never overwritten.
"""

import streamlit as st

from kapnotes.config import get_settings
from kapnotes.dosing import plans, suggestions
from kapnotes.errors import KapError
from kapnotes.models import HARD_MAX_DOSE_MG
from kapnotes.timeutil import fmt_local
from kapnotes.ui.database import db
from kapnotes.ui.feedback import show_outcome
from kapnotes.ui.guard import require_user
from kapnotes.ui.patient import require_patient_banner
from kapnotes.ui.suggestion_panel import decision_block, every, proposal_text, suggestion_card

actor = require_user("therapist", "prescriber")
tz = get_settings().tz
RESULT_KEY = "_proposals_result"


def _run(fn, success: str, *args, **kwargs) -> None:
    """Button callback: call a service in its own unit of work; remember the outcome for display."""
    try:
        with db() as session:
            fn(session, actor, *args, **kwargs)
        st.session_state[RESULT_KEY] = ("ok", success)
    except KapError as exc:
        st.session_state[RESULT_KEY] = ("error", exc)


def _send(adjustment_id: int, version: int) -> None:
    _run(suggestions.send_to_prescriber, "Suggestion sent to the prescriber.", adjustment_id, version,
         st.session_state.get("send_note", ""))


def _take(adjustment_id: int, version: int) -> None:
    _run(suggestions.take_to_review, "Suggestion put in your review queue.", adjustment_id, version)


def _propose(patient_id: int) -> None:
    _run(suggestions.propose, "Proposal sent to the prescriber.", patient_id,
         dose_mg=st.session_state.get("prop_dose"), interval_days=st.session_state.get("prop_interval"),
         reason=st.session_state.get("prop_reason", ""))
    if st.session_state[RESULT_KEY][0] == "ok":
        for key in ("prop_dose", "prop_interval", "prop_reason"):
            st.session_state.pop(key, None)


def _withdraw(adjustment_id: int, version: int) -> None:
    _run(suggestions.withdraw, "Withdrawn.", adjustment_id, version)


def _rerun_engine(patient_id: int) -> None:
    _run(suggestions.run_for_patient, "Suggestion brought up to date.", patient_id)


def _plan_status(patient_id: int) -> None:
    status = {"Hold": "held", "End": "ended", "Resume": "active"}[st.session_state.get("plan_status_choice", "Hold")]
    _run(suggestions.set_plan_status, f"Plan set to {status}.", patient_id, status,
         st.session_state.get("plan_status_rationale", ""))


st.title("Suggestions and proposals")
with db() as session:
    pid = require_patient_banner(session, actor, "proposals")
    plan = plans.current_plan(session, pid)
    latest = suggestions.latest_suggestion(session, actor, pid)
    latest_stale = suggestions.stale_reason(session, latest, plan) if latest else None
    history = suggestions.patient_adjustments(session, actor, pid)
    keys_now = suggestions.facts_key(session, pid, plan) if plan is not None else None
    stale_history = {a.id: suggestions.stale_reason(session, a, plan, keys_now) for a in history
                     if suggestions.is_stale(a, plan, keys_now)}
    names = suggestions.user_names(session, [x for a in history + ([latest] if latest else [])
                                             for x in (a.sent_by_id, a.decided_by_id, a.created_by_id)])

show_outcome(RESULT_KEY)

if plan is None:
    st.info("No treatment plan yet. The prescriber sets the first plan.")
else:
    st.markdown(f"**Current plan** (version {plan.version_number}, {plan.status}): {plan.dose_mg:g} mg "
                f"{plan.formulation.upper()} {every(plan.interval_days)}")

st.subheader("Latest engine suggestion")
if latest is None:
    st.info("No suggestion yet: the rules run when doses or scores are recorded for an active plan.")
else:
    with st.container(border=True):
        suggestion_card(latest, names, latest_stale)
        sendable = latest.status == "open" and latest.action in suggestions.SENDABLE_ACTIONS and not latest_stale
        if sendable and actor.role == "therapist":
            st.text_input("Note for the prescriber (optional)", key="send_note")
            st.button("Send to prescriber", type="primary", on_click=_send, args=(latest.id, latest.version),
                      key="send_suggestion")
        elif sendable and actor.role == "prescriber":
            st.button("Take to review", type="primary", on_click=_take, args=(latest.id, latest.version),
                      key="take_suggestion", help="Put this suggestion in your review queue to decide on it.")
        elif latest.status == "open" and latest.action in suggestions.INFORMATIONAL_ACTIONS:
            st.caption("For information: nothing would change, so there is nothing to send.")
        elif latest.status == "pending" and latest.sent_by_id is None:
            st.caption("In the prescriber's review queue: sent automatically by the rules engine.")
st.button("Re-run the rules now", on_click=_rerun_engine, args=(pid,), key="rerun_engine",
          help="The rules also run by themselves whenever a dose, score or signed note changes.")

if actor.role == "therapist":
    st.subheader("Propose a change")
    with st.form("propose_form"):
        c1, c2 = st.columns(2)
        c1.number_input("New dose (mg)", min_value=0.0, max_value=float(HARD_MAX_DOSE_MG), step=25.0, value=None,
                        key="prop_dose",
                        help="Leave empty to keep the current dose.")
        c2.number_input("New interval (days)", min_value=1, max_value=90, step=1, value=None, key="prop_interval",
                        help="Leave empty to keep the current interval.")
        st.text_area("Reason *", key="prop_reason", help="What you observed that supports the change.")
        st.form_submit_button("Send proposal to prescriber", type="primary", on_click=_propose, args=(pid,))

if actor.role == "prescriber" and plan is not None and plan.status != "ended":
    st.subheader("Hold, end or resume the plan")
    with st.form("plan_status_form"):
        choices = ["Hold", "End"] if plan.status == "active" else ["Resume", "End"]
        st.radio("Change", choices, key="plan_status_choice", horizontal=True)
        st.text_area("Rationale *", key="plan_status_rationale")
        st.form_submit_button("Save plan change", type="primary", on_click=_plan_status, args=(pid,))
    st.caption("Decide on suggestions and proposals in the Review queue.")

st.subheader("Sent items and decisions")
if not history:
    st.info("Nothing sent to the prescriber yet.")
for adj in history:
    with st.container(border=True):
        if adj.status in ("approved", "modified", "rejected"):
            st.markdown(f"**{proposal_text(adj)}** ({'suggestion' if adj.kind == 'suggestion' else 'proposal'}"
                        f", sent {fmt_local(adj.sent_at or adj.created_at, tz)})")
            decision_block(adj, names)
        else:
            suggestion_card(adj, names, stale_history.get(adj.id))
            if actor.role == "therapist" and adj.status == "pending" and adj.sent_by_id == actor.id:
                st.button("Withdraw", key=f"withdraw_{adj.id}", on_click=_withdraw, args=(adj.id, adj.version))
