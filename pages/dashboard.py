"""Patient dashboard: the page a clinician opens before a session.

Active plan and its history, GAD-7/PHQ-9 with the dose steps, per-dose effects and BP,
adherence, the last session's plan and homework; the red-flag banner comes first.
"""

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitAPIException

from kapnotes import charts, dashboard, patients, vocab
from kapnotes.config import get_settings
from kapnotes.models import Patient
from kapnotes.textsafe import md_escape
from kapnotes.timeutil import fmt_local
from kapnotes.ui.chart_cache import altair_chart
from kapnotes.ui.database import db
from kapnotes.ui.guard import require_user
from kapnotes.ui.patient import require_patient_banner

actor = require_user("therapist", "prescriber")
tz = get_settings().tz

with db() as session:
    pid = require_patient_banner(session, actor, "dashboard")
    data = dashboard.load(session, actor, pid)
    patient = session.get(Patient, pid)  # loaded by the banner's access check: no extra query
    team = patients.care_team(session, patient.care_team_id)

# --- the action row: every task for this patient one click away (the patient travels in the
# session state, never in the URL) ---------------------------------------------------------
ACTIONS = [
    ("pages/note_editor.py", "New note", ":material/edit_note:", None, ("therapist",)),
    ("pages/dose_log.py", "Add a dose", ":material/add_circle:", {"dose_tab": "Add a dose"}, None),
    ("pages/measures.py", "Enter GAD-7 / PHQ-9", ":material/checklist:", None, None),
    ("pages/proposals.py", "Propose a change", ":material/tune:", None, None),
    ("pages/exports.py", "Export", ":material/download:", None, None),
]
shown = [a for a in ACTIONS if a[4] is None or actor.role in a[4]]
links = st.columns(len(shown))
for slot, (target, label, icon, query, _roles) in zip(links, shown):
    try:
        slot.page_link(target, label=label, icon=icon, query_params=query)
    except StreamlitAPIException:  # a page run on its own (tests) has no navigation to link into
        slot.button(label, icon=icon, key=f"action_{label}", disabled=True)

# --- at a glance -------------------------------------------------------------------------------
plan = data.plan
m = st.columns(5)
if plan is None:
    m[0].metric("Plan", "none")
else:
    m[0].metric("Plan", f"{plan.dose_mg:g} mg",
                help=f"{vocab.formulation_word(plan.formulation)} {vocab.every(plan.interval_days)}",
                delta=None if plan.status == "active" else plan.status.upper(), delta_color="inverse")
m[1].metric("Doses logged", data.dose_count)
adh = data.adherence_28
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

# --- scores with dose steps ------------------------------------------------------------------------
st.subheader("GAD-7 and PHQ-9")
if data.scores.empty:
    st.info("No GAD-7 or PHQ-9 recorded yet — enter one on the Measures page.")
else:
    steps = data.steps()
    if len(steps):  # the step line runs to "now": to the minute, so a rerun reuses the built chart
        steps["date"] = steps["date"].dt.floor("min")
    altair_chart(charts.scores_chart, data.scores, steps, tz, data.gad7_baseline, width="stretch")
    if data.gad7_baseline is not None:
        st.caption(f"GAD-7 baseline {data.gad7_baseline}, latest {data.gad7_current}: "
                   f"{data.response_status or 'no status'}. Response = 50 % below baseline; remission = below 5.")

# --- per-dose effects --------------------------------------------------------------------------------
st.subheader("Per-dose effects")
if data.doses.empty:
    st.info("No doses logged yet — add one or import a CSV.")
else:
    trends = data.trends()
    weekly = len(trends) < data.dose_count
    tab_fx, tab_bp = st.tabs(["Anxiety, dissociation, nausea", "Blood pressure"])
    with tab_fx:
        altair_chart(charts.effects_chart, trends, tz, weekly, width="stretch")
    with tab_bp:
        altair_chart(charts.bp_chart, trends, tz, weekly, width="stretch")

# --- adherence, last session ------------------------------------------------------------------------
left, right = st.columns(2)
with left:
    st.subheader("Adherence")
    if data.adherence_plan is None:
        st.info("No active plan, so no planned doses to compare with.")
    else:
        st.write(f"Since this plan version took effect: {data.adherence_plan.describe()}.")
        if adh is not None:
            st.write(f"Last 28 days: {adh.describe()}.")
with right:
    st.subheader("Last session")
    if data.last_session is None:
        st.info("No signed integration note yet — its plan and homework will show here.")
    else:
        st.caption(f"Signed integration note of {data.last_session.session_date.isoformat()}")
        st.markdown("**Plan**")
        st.text(data.last_session.plan or "—")
        st.markdown("**Homework**")
        st.text(data.last_session.homework or "—")

# --- plan and history --------------------------------------------------------------------------------
st.subheader("Treatment plan")
if plan is None:
    st.info("No treatment plan yet. The prescriber sets the first plan.")
else:
    st.markdown(
        f"**{plan.dose_mg:g} mg** {vocab.formulation_word(plan.formulation)} **{vocab.every(plan.interval_days)}** "
        f"· {plan.minutes_in_mouth} min in mouth, then "
        f"{'spat out' if plan.administration == 'spit' else 'swallowed' if plan.administration else '—'}"
        f" · status **{vocab.plan_status_word(plan.status).lower()}**"
    )
    st.caption(f"Version {plan.version_number} · effective {fmt_local(plan.effective_from, tz, False)}")
    st.text(f"Fasting: {plan.fasting_instructions}")
    if plan.instructions:
        st.text(f"Instructions: {plan.instructions}")
    with st.expander(f"Plan history ({len(data.history)} version{'s' if len(data.history) != 1 else ''})"):
        st.dataframe(
            pd.DataFrame([{"Version": p.version_number, "Effective": fmt_local(p.effective_from, tz, False),
                           "Dose (mg)": f"{p.dose_mg:g}", "Interval": vocab.every(p.interval_days),
                           "Formulation": vocab.formulation_word(p.formulation),
                           "Status": vocab.plan_status_word(p.status), "Why": p.rationale or ""}
                          for p in data.history]),
            hide_index=True, width="stretch")
st.caption("Care team: " + ", ".join(f"{md_escape(name)} ({role})" for name, role in team))

# --- sections from other features (each one import + one call) ---
from kapnotes.ui import suggestion_panel  # noqa: E402

with db() as session: suggestion_panel.render(session, actor, pid)  # noqa: E701
from kapnotes.ui.export_buttons import dashboard_section  # noqa: E402

dashboard_section(actor, pid)
from kapnotes.ui import checkin_panel  # noqa: E402

checkin_panel.render(actor, pid)
