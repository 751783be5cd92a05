"""Suggestions and proposals for the selected patient.

Therapist: the latest engine suggestion (send an increase or space-out to the prescriber;
holds, decreases and reviews reach the prescriber by themselves), a proposal of their own
(new dose and/or interval with a reason), and the decisions on their items. Prescriber: the
same, with "Take to review" for an open increase or space-out, plus holding, ending or
resuming the plan. An item whose record changed since it was made says so. Decisions on items are made in the
review queue. Actions run in button callbacks with the item id and version that were on
screen, so a change made meanwhile by someone else is a conflict, never overwritten.
The pieces are in ``kapnotes.ui.proposals_view``.
"""

import streamlit as st

from kapnotes.ui import proposals_view as view
from kapnotes.ui.database import db
from kapnotes.ui.feedback import show_outcome
from kapnotes.ui.guard import require_user
from kapnotes.ui.patient import require_patient_banner
from kapnotes.ui.suggestion_panel import every

actor = require_user("therapist", "prescriber")

st.title("Suggestions and proposals")
with db() as session:
    pid = require_patient_banner(session, actor, "proposals")
    plan, latest, latest_stale, history, stale_history, names = view.load(session, actor, pid)

show_outcome(view.RESULT_KEY)

if plan is None:
    st.info("No treatment plan yet. The prescriber sets the first plan.")
else:
    st.markdown(f"**Current plan** (version {plan.version_number}, {plan.status}): {plan.dose_mg:g} mg "
                f"{plan.formulation.upper()} {every(plan.interval_days)}")

st.subheader("Latest engine suggestion")
if latest is None:
    st.info("No suggestion yet: the rules run when doses or scores are recorded for an active plan.")
else:
    view.latest_block(actor, latest, names, latest_stale)
st.button("Re-run the rules now", on_click=view.rerun_engine, args=(actor, pid), key="rerun_engine",
          help="The rules also run by themselves whenever a dose, score or signed note changes.")

if actor.role == "therapist":
    st.subheader("Propose a change")
    view.propose_form(actor, pid)

if actor.role == "prescriber" and plan is not None and plan.status != "ended":
    st.subheader("Hold, end or resume the plan")
    view.plan_status_form(actor, pid, plan)
    st.caption("Decide on suggestions and proposals in the Review queue.")

st.subheader("Sent items and decisions")
if not history:
    st.info("Nothing sent to the prescriber yet.")
for adj in history:
    view.history_item(actor, adj, names, stale_history.get(adj.id))
