"""Protocol (admin): the dose-adjustment protocol in force, its name and hash, and choosing the clinic's file.

The protocol holds rules, not clinical content, so administrators manage it. A file is
validated before it is used; every problem names its key. Suggestions record the name and
SHA-256 of the protocol that produced them.
"""

import streamlit as st

from kapnotes import protocol
from kapnotes.errors import KapError
from kapnotes.ui.session import db, require_user, show_error
from kapnotes.ui.suggestion_panel import md_escape

actor = require_user("admin")

st.title("Dose-adjustment protocol")
notice = st.session_state.pop("_protocol_notice", None)
if notice:
    st.success(notice)
with db() as session:
    configured = protocol.configured_path(session)
    try:
        current = protocol.in_force(session)
        problem = None
    except KapError as exc:
        current, problem = None, exc

if problem is not None:
    st.error(f"The configured protocol file {configured!r} cannot be used, so suggestions are paused:")
    show_error(problem)
else:
    with st.container(border=True):
        st.markdown(f"**In force:** {md_escape(current.name)}")
        st.markdown(f"**SHA-256:** `{current.sha256}`")
        st.caption("Source: the bundled default protocol" if current.source == "default"
                   else f"Source: {current.source}")
    pct = lambda fr: f"{round(float(fr) * 100)} %"  # noqa: E731
    c = current
    st.markdown(
        f"- **Doses:** steps {', '.join(f'{s:g}' for s in c.steps_mg)} mg; ceiling {c.ceiling_mg:g} mg; "
        f"intervals {', '.join(str(i) for i in c.intervals_days)} days\n"
        f"- **Windows:** recent doses = the last {c.recent_doses}; safety window = the larger of "
        f"{c.hold_window_days} days and {c.safety_interval_multiple} × the interval; plan window = up to "
        f"{c.plan_window_days} days since the plan took effect\n"
        f"- **1 Hold:** PHQ-9 item 9 > 0; in the safety window a pre- or post-dose BP ≥ "
        f"{c.hold_systolic}/{c.hold_diastolic} mmHg or a serious adverse event "
        f"({md_escape(', '.join(c.serious_adverse_events))}); more doses taken than planned + {c.overuse_margin} "
        f"in the plan window; a dose above the plan's dose in it\n"
        f"- **2 Decrease:** among the recent doses any vomiting, or ≥ {c.decrease_min_count} with nausea "
        f"{c.severe_nausea}, or ≥ {c.decrease_min_count} with a BP ≥ {c.decrease_systolic}/{c.decrease_diastolic} mmHg\n"
        f"- **3 Review:** latest PHQ-9 ≥ {c.review_phq9_total}, or ≥ {c.review_phq9_rise} above the earliest\n"
        f"- **4 Insufficient data:** under {c.too_soon_days} days on the plan, fewer than "
        f"{c.min_doses_at_current_dose} doses at the current dose, no GAD-7 within {c.gad7_max_age_days} days, or "
        f"no PHQ-9 within {c.phq9_max_age_days} days\n"
        f"- **5 Adherence:** below {pct(c.adherence_min_fraction)} of planned doses in the plan window "
        f"(at least {c.adherence_min_planned} planned)\n"
        f"- **6 Efficacy (GAD-7):** remission below {c.remission_below} twice "
        f"{c.remission_confirm_days} days apart; response ≥ {pct(c.response_improvement)}; partial ≥ "
        f"{pct(c.partial_improvement)}; low baseline below {c.low_baseline_below}\n"
        f"- **Increase gate:** no increase without a BP on a recent dose, or when a recent dose had nausea ≥ "
        f"{c.gate_nausea}, dissociation ≥ {c.gate_dissociation}, a BP ≥ {c.gate_systolic}/{c.gate_diastolic} mmHg"
        + (" or any adverse event" if c.gate_any_adverse_event else "")
    )
    with st.expander("The protocol file"):
        path = current.source if current.source != "default" else protocol.DEFAULT_PATH
        try:
            st.code(open(path, encoding="utf-8").read(), language="toml")
        except OSError:
            st.caption("The file can no longer be read.")

st.subheader("Use the clinic's own protocol file")
st.caption("Copy the default protocol, edit it, save it on the server and enter its full path. "
           f"Without a clinic file, the {protocol.ENV_VAR} environment setting or the default applies.")
path = st.text_input("Protocol file path (on the server)", value=configured or "", placeholder="/etc/kapnotes/protocol.toml")
c_check, c_use, c_default = st.columns(3)
if c_check.button("Validate", key="validate_protocol"):
    try:
        p = protocol.load(path.strip() or None)
        st.success(f"Valid: {p.name} (sha256 {p.sha256})")
    except KapError as exc:
        st.error("This file cannot be used:")
        show_error(exc)
if c_use.button("Use this protocol", type="primary", key="use_protocol"):
    try:
        with db() as session:
            p = protocol.set_clinic_protocol(session, actor, path)
        st.session_state["_protocol_notice"] = f"Now in force: {p.name} (sha256 {p.sha256})"
        st.rerun()
    except KapError as exc:
        st.error("Nothing was changed:")
        show_error(exc)
if c_default.button("Back to the default", key="default_protocol", disabled=not configured):
    with db() as session:
        p = protocol.set_clinic_protocol(session, actor, None)
    st.session_state["_protocol_notice"] = f"Now in force: {p.name} (sha256 {p.sha256})"
    st.rerun()
