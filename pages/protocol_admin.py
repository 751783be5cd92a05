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
    st.markdown(
        f"- **Doses:** steps {', '.join(f'{s:g}' for s in current.steps_mg)} mg; ceiling {current.ceiling_mg:g} mg; "
        f"intervals {', '.join(str(i) for i in current.intervals_days)} days\n"
        f"- **1 Hold:** PHQ-9 item 9 > 0; or within {current.hold_window_days} days BP ≥ "
        f"{current.hold_systolic}/{current.hold_diastolic} mmHg or a serious adverse event "
        f"({md_escape(', '.join(current.serious_adverse_events))})\n"
        f"- **2 Decrease:** among the last {current.decrease_last_doses} doses any vomiting, or ≥ "
        f"{current.decrease_min_count} with nausea {current.severe_nausea}, or ≥ {current.decrease_min_count} with "
        f"post-dose BP ≥ {current.decrease_systolic}/{current.decrease_diastolic} mmHg\n"
        f"- **3 Insufficient data:** fewer than {current.min_doses_at_current_dose} doses at the current dose, or no "
        f"GAD-7 within {current.gad7_max_age_days} days\n"
        f"- **4 Adherence:** below {pct(current.adherence_min_fraction)} of planned doses over "
        f"{current.adherence_window_days} days (at least {current.adherence_min_planned} planned)\n"
        f"- **5 Efficacy (GAD-7):** remission below {current.remission_below} twice "
        f"{current.remission_confirm_days} days apart; response ≥ {pct(current.response_improvement)}; partial ≥ "
        f"{pct(current.partial_improvement)}; low baseline below {current.low_baseline_below}"
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
