"""The patient dashboard's sections, drawn from ``kapnotes.dashboard.load``'s figures.

Split by what a clinician reads before a session, top to bottom: the action row, the figures
at a glance, GAD-7/PHQ-9 with the dose steps, per-dose effects and BP, adherence and the last
session, the plan with its history. ``pages/dashboard.py`` calls ``show()`` and then adds the
sections other features own.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitAPIException

from kapnotes import charts, dashboard, patients, vocab
from kapnotes.actor import Actor
from kapnotes.config import get_settings
from kapnotes.dashboard import DashboardData
from kapnotes.models import Patient, TreatmentPlan
from kapnotes.textsafe import md_escape
from kapnotes.timeutil import fmt_local
from kapnotes.ui.chart_cache import altair_chart
from kapnotes.ui.database import db
from kapnotes.ui.patient import require_patient_banner

# (page, label, icon, query params, roles or None for every clinician): every task for this
# patient one click away (the patient travels in the session state, never in the URL)
ACTIONS = [
    ("pages/note_editor.py", "New note", ":material/edit_note:", None, ("therapist",)),
    ("pages/dose_log.py", "Add a dose", ":material/add_circle:", {"dose_tab": "Add a dose"}, None),
    ("pages/measures.py", "Enter GAD-7 / PHQ-9", ":material/checklist:", None, None),
    ("pages/proposals.py", "Propose a change", ":material/tune:", None, None),
    ("pages/exports.py", "Export", ":material/download:", None, None),
]


def show(actor: Actor) -> int:
    """The banner (or a stop with what to do next) and every dashboard section; returns the patient id."""
    tz = get_settings().tz
    with db() as session:
        pid = require_patient_banner(session, actor, "dashboard")
        data = dashboard.load(session, actor, pid)
        patient = session.get(Patient, pid)  # loaded by the banner's access check: no extra query
        team = patients.care_team(session, patient.care_team_id)
    action_row(actor)
    at_a_glance(data, tz)
    scores(data, tz)
    effects(data, tz)
    adherence_and_last_session(data)
    treatment_plan(data, tz)
    st.caption("Care team: " + ", ".join(f"{md_escape(name)} ({role})" for name, role in team))
    return pid


def action_row(actor: Actor) -> None:
    shown = [a for a in ACTIONS if a[4] is None or actor.role in a[4]]
    for slot, (target, label, icon, query, _roles) in zip(st.columns(len(shown)), shown):
        try:
            slot.page_link(target, label=label, icon=icon, query_params=query)
        except StreamlitAPIException:  # a page run on its own (tests) has no navigation to link into
            slot.button(label, icon=icon, key=f"action_{label}", disabled=True)


def at_a_glance(data: DashboardData, tz: ZoneInfo) -> None:
    plan, adh = data.plan, data.adherence_28
    m = st.columns(5)
    if plan is None:
        m[0].metric("Plan", "none")
    else:
        m[0].metric("Plan", f"{plan.dose_mg:g} mg",
                    help=f"{vocab.formulation_word(plan.formulation)} {vocab.every(plan.interval_days)}",
                    delta=None if plan.status == "active" else plan.status.upper(), delta_color="inverse")
    m[1].metric("Doses logged", data.dose_count)
    m[2].metric("Adherence (28 days)", "—" if adh is None or adh.ratio is None else f"{adh.ratio:.0%}",
                help=None if adh is None else adh.describe())
    if data.gad7_current is not None:
        m[3].metric("GAD-7", data.gad7_current, delta=data.gad7_current - data.gad7_baseline, delta_color="inverse",
                    help=f"Baseline {data.gad7_baseline}; {data.response_status or 'status unknown'}")
    else:
        m[3].metric("GAD-7", "—")
    m[4].metric("PHQ-9", "—" if data.phq9_current is None else data.phq9_current)
    last = data.last_dose_at
    st.caption(
        f"Dose log: {data.dose_count} dose{'s' if data.dose_count != 1 else ''} logged"
        + (f" · last {fmt_local(last, tz)}" if last else "")
        + f" · adverse events or vomiting in the last 30 days: {data.adverse_recent(30)}"
    )


def _section(title: str, missing: str | None) -> bool:
    """A section's heading; ``missing`` (what to do when there is nothing to draw yet) shown instead."""
    st.subheader(title)
    if missing:
        st.info(missing)
    return not missing


def scores(data: DashboardData, tz: ZoneInfo) -> None:
    missing = "No GAD-7 or PHQ-9 recorded yet — enter one on the Measures page." if data.scores.empty else None
    if not _section("GAD-7 and PHQ-9", missing):
        return
    steps = data.steps()
    if len(steps):  # the step line runs to "now": to the minute, so a rerun reuses the built chart
        steps["date"] = steps["date"].dt.floor("min")
    altair_chart(charts.scores_chart, data.scores, steps, tz, data.gad7_baseline, width="stretch")
    if data.gad7_baseline is not None:
        st.caption(f"GAD-7 baseline {data.gad7_baseline}, latest {data.gad7_current}: "
                   f"{data.response_status or 'no status'}. Response = 50 % below baseline; remission = below 5.")


def effects(data: DashboardData, tz: ZoneInfo) -> None:
    missing = "No doses logged yet — add one or import a CSV." if data.doses.empty else None
    if not _section("Per-dose effects", missing):
        return
    trends = data.trends()
    weekly = len(trends) < data.dose_count
    tab_fx, tab_bp = st.tabs(["Anxiety, dissociation, nausea", "Blood pressure"])
    with tab_fx:
        altair_chart(charts.effects_chart, trends, tz, weekly, width="stretch")
    with tab_bp:
        altair_chart(charts.bp_chart, trends, tz, weekly, width="stretch")


def adherence_and_last_session(data: DashboardData) -> None:
    left, right = st.columns(2)
    with left:
        _adherence(data)
    with right:
        _last_session(data)


def _adherence(data: DashboardData) -> None:
    if not _section("Adherence", "No active plan, so no planned doses to compare with."
                    if data.adherence_plan is None else None):
        return
    st.write(f"Since this plan version took effect: {data.adherence_plan.describe()}.")
    if data.adherence_28 is not None:
        st.write(f"Last 28 days: {data.adherence_28.describe()}.")


def _last_session(data: DashboardData) -> None:
    last = data.last_session
    if not _section("Last session", "No signed integration note yet — its plan and homework will show here."
                    if last is None else None):
        return
    st.caption(f"Signed integration note of {last.session_date.isoformat()}")
    st.markdown("**Plan**")
    st.text(last.plan or "—")
    st.markdown("**Homework**")
    st.text(last.homework or "—")


def _taken(plan: TreatmentPlan) -> str:
    return "spat out" if plan.administration == "spit" else "swallowed" if plan.administration else "—"


def treatment_plan(data: DashboardData, tz: ZoneInfo) -> None:
    plan = data.plan
    missing = "No treatment plan yet. The prescriber sets the first plan." if plan is None else None
    if not _section("Treatment plan", missing):
        return
    st.markdown(
        f"**{plan.dose_mg:g} mg** {vocab.formulation_word(plan.formulation)} **{vocab.every(plan.interval_days)}** "
        f"· {plan.minutes_in_mouth} min in mouth, then {_taken(plan)}"
        f" · status **{vocab.plan_status_word(plan.status).lower()}**"
    )
    st.caption(f"Version {plan.version_number} · effective {fmt_local(plan.effective_from, tz, False)}")
    st.text(f"Fasting: {plan.fasting_instructions}")
    if plan.instructions:
        st.text(f"Instructions: {plan.instructions}")
    versions = len(data.history)
    with st.expander(f"Plan history ({versions} version{'s' if versions != 1 else ''})"):
        st.dataframe(pd.DataFrame([_history_row(p, tz) for p in data.history]), hide_index=True, width="stretch")


def _history_row(p: TreatmentPlan, tz: ZoneInfo) -> dict:
    return {"Version": p.version_number, "Effective": fmt_local(p.effective_from, tz, False),
            "Dose (mg)": f"{p.dose_mg:g}", "Interval": vocab.every(p.interval_days),
            "Formulation": vocab.formulation_word(p.formulation),
            "Status": vocab.plan_status_word(p.status), "Why": p.rationale or ""}
