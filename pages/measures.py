"""Measures: GAD-7 and PHQ-9 item by item (the real wording) or as a total; the series; void."""

from datetime import date

import streamlit as st

from kapnotes import scales
from kapnotes.config import get_settings
from kapnotes.textsafe import md_escape
from kapnotes.timeutil import utcnow
from kapnotes.ui.database import db
from kapnotes.ui.guard import require_user
from kapnotes.ui.measures_view import record_score, scores_over_time
from kapnotes.ui.patient import require_patient_banner

actor = require_user("therapist", "prescriber")
tz = get_settings().tz

with db() as session:
    pid = require_patient_banner(session, actor, "measures")

st.title("Measures")
today = utcnow().astimezone(tz).date()

c = st.columns([1, 1, 1])
instrument = c[0].radio("Questionnaire", list(scales.SCALES), horizontal=True, key="ms_instrument")
mode = c[1].radio("Enter", ["Item by item", "Total only"], horizontal=True, key="ms_mode",
                  help="Use 'Total only' when the patient reported just the total score.")
scale = scales.get_scale(instrument)
answer_labels = [f"{v} — {label}" for v, label in enumerate(scales.ANSWERS)]

saved_notice = st.session_state.pop("ms_saved", None)
if saved_notice:
    st.success(saved_notice[0])
    if saved_notice[1]:
        st.error("PHQ-9 item 9 is above 0: the safety flag is raised for this patient. Follow up on "
                 "thoughts of self-harm before any dosing.", icon=":material/warning:")

date_key = f"ms_date_{instrument}"
if date_key not in st.session_state:  # today as the start value, once: an emptied or unreadable date stays empty
    st.session_state[date_key] = today
errors: dict[str, str] = st.session_state.get("ms_errors") or {}
# Not cleared on submit: a refused score keeps its answers. Wide date bounds: a date the browser
# would refuse could otherwise come back as the previous value; the service says why instead.
with st.form(f"measure_{instrument}_{mode}", clear_on_submit=False):
    day = st.date_input("Date answered", value=None, min_value=date(1000, 1, 1), max_value=date(9999, 12, 31),
                        key=date_key, format="YYYY-MM-DD")
    if "administered_on" in errors:
        st.error(md_escape(f"Date answered: {errors['administered_on']}"), icon=":material/error:")
    items = None
    total = None
    item9 = None
    if mode == "Item by item":
        st.markdown(f"*{scales.STEM}*")
        items = []
        for i, question in enumerate(scale.items, start=1):
            answer = st.radio(f"{i}. {question}", range(4), index=None, horizontal=True,
                              format_func=lambda v: answer_labels[v], key=f"ms_{instrument}_item{i}")
            items.append(answer)
    else:
        total = st.number_input(f"{instrument} total (0–{scale.max_total})", min_value=0, max_value=scale.max_total,
                                value=None, step=1, key=f"ms_{instrument}_total")
        if instrument == "PHQ-9":
            item9 = st.radio(f"9. {scales.PHQ9.items[8]}", range(4), index=None, horizontal=True,
                             format_func=lambda v: answer_labels[v], key="ms_phq9_item9_only",
                             help="Always ask item 9: it decides the safety flag.")
    submitted = st.form_submit_button("Save score", type="primary")

if submitted:
    missing = [str(i) for i, v in enumerate(items or [], start=1) if v is None]
    st.session_state.pop("ms_errors", None)
    if day is None:
        st.session_state["ms_errors"] = {"administered_on": "enter a valid date (YYYY-MM-DD). Nothing was saved."}
        st.rerun()
    elif mode == "Item by item" and missing:
        st.error(f"Answer every item before saving (missing: {', '.join(missing)}).")
    elif mode == "Total only" and total is None:
        st.error(f"Enter the {instrument} total.")
    else:
        record_score(actor, pid, instrument, day, items, total, item9)

scores_over_time(actor, pid, tz)
