"""Patient dashboard: the page a clinician opens before a session."""

import streamlit as st

from kapnotes import patients
from kapnotes.timeutil import fmt_local
from kapnotes.config import get_settings
from kapnotes.ui.patient import require_patient_banner
from kapnotes.ui.session import db, require_user

actor = require_user("therapist", "prescriber")
tz = get_settings().tz

with db() as session:
    pid = require_patient_banner(session, actor, "dashboard")
    ov = patients.overview(session, actor, pid)

col_plan, col_scores = st.columns(2)
with col_plan:
    st.subheader("Treatment plan")
    plan = ov.plan
    if plan is None:
        st.info("No treatment plan yet. The prescriber sets the first plan.")
    else:
        st.markdown(
            f"**{plan.dose_mg:g} mg** {plan.formulation.upper()} every **{plan.interval_days} days** "
            f"· {plan.minutes_in_mouth} min in mouth, then {plan.administration}"
        )
        st.caption(f"Version {plan.version_number} · {plan.status} · effective {fmt_local(plan.effective_from, tz, False)}")
        st.caption(f"Fasting: {plan.fasting_instructions}")
with col_scores:
    st.subheader("Latest scores")
    if not ov.latest:
        st.info("No GAD-7 or PHQ-9 recorded yet.")
    for instrument, a in ov.latest.items():
        st.metric(f"{instrument} ({a.administered_on.isoformat()})", f"{a.total}", help=f"Band: {a.band}")
        st.caption(f"{instrument}: {a.band}")
st.subheader("Care team")
st.write(", ".join(f"{name} ({role})" for name, role in ov.team))

# --- sections from other features (each one import + one call) ---
