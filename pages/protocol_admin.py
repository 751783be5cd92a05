"""Protocol (admin): the dose-adjustment protocol in force, its name and hash, and editing the clinic's own.

The protocol holds rules, not clinical content, so administrators manage it. It is edited as
text or taken from an uploaded file and kept in the database, never read from a server path
(issue 20: the page must not tell anyone which server files exist). Text is validated
before it is used; every problem names its key. Suggestions record the name and SHA-256 of
the protocol that produced them.
"""

import streamlit as st

from kapnotes import vocab
from kapnotes.dosing import protocol_settings
from kapnotes.errors import KapError
from kapnotes.textsafe import md_escape
from kapnotes.ui import protocol_view
from kapnotes.ui.database import db
from kapnotes.ui.feedback import show_error
from kapnotes.ui.guard import require_user

actor = require_user("admin")

st.title("Dose-adjustment protocol")
notice = st.session_state.pop(protocol_view.NOTICE_KEY, None)
if notice:
    st.success(notice)
with db() as session:
    clinic_text = protocol_settings.clinic_text(session)
    try:
        current = protocol_settings.in_force(session)
        problem = None
    except KapError as exc:
        current, problem = None, exc

if problem is not None:
    st.error("The configured protocol cannot be used, so suggestions are paused:")
    show_error(problem)
else:
    with st.container(border=True):
        st.markdown(f"**In force:** {md_escape(current.name)}")
        st.markdown(f"**SHA-256:** `{current.sha256}`")
        st.caption({"default": "Source: the bundled default protocol",
                    protocol_settings.CLINIC_SOURCE: "Source: the clinic's protocol, saved on this page"}
                   .get(current.source, "Source: the file set by the deployment (KAPNOTES_PROTOCOL)"))
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
        f"({md_escape(', '.join(vocab.adverse_event_word(t) for t in c.serious_adverse_events))}); "
        f"more doses taken than planned + {c.overuse_margin} "
        f"in the plan window; a dose above the plan's dose in it\n"
        f"- **2 Decrease:** among the recent doses any vomiting, or ≥ {c.decrease_min_count} with nausea "
        f"{c.severe_nausea}, or ≥ {c.decrease_min_count} with a BP ≥ "
        f"{c.decrease_systolic}/{c.decrease_diastolic} mmHg\n"
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

st.subheader("The clinic's protocol")
st.caption("Edit the protocol below, or upload a protocol file (TOML) from your computer, then validate "
           f"and save it. Without a clinic protocol, the {protocol_settings.ENV_VAR} setting or the default applies.")
with db() as session:
    try:
        starting = protocol_settings.text_in_force(session)
    except OSError:
        starting = protocol_settings.DEFAULT_PATH.read_text(encoding="utf-8")
uploaded = st.file_uploader("Or upload a protocol file", type=["toml", "txt"], key="protocol_upload")
if uploaded is not None:
    try:
        starting = uploaded.getvalue().decode("utf-8")
    except UnicodeDecodeError:
        st.error("The uploaded file is not UTF-8 text.")
text = st.text_area("Protocol (TOML)", value=starting, height=400,
                    key=f"protocol_text_{uploaded.file_id if uploaded is not None else 'current'}")
c_check, c_use, c_default = st.columns(3)
if c_check.button("Validate", key="validate_protocol"):
    protocol_view.validate(text)
if c_use.button("Use this protocol", type="primary", key="use_protocol"):
    protocol_view.save(actor, text)
if c_default.button("Back to the default", key="default_protocol", disabled=clinic_text is None):
    protocol_view.save(actor, None)
