"""Measures: GAD-7 and PHQ-9 item by item (the real wording) or as a total; the series; void."""

from datetime import date

import streamlit as st

from kapnotes import assessments, charts, scales
from kapnotes.config import get_settings
from kapnotes.errors import KapError, ValidationError
from kapnotes.textsafe import md_escape
from kapnotes.timeutil import utcnow
from kapnotes.ui.chart_cache import altair_chart
from kapnotes.ui.database import db
from kapnotes.ui.feedback import show_error
from kapnotes.ui.guard import require_user
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
        try:
            with db() as session:
                row = assessments.record_assessment(session, actor, pid, instrument, day, items=items,
                                                    total=None if items else int(total), item9=item9)
                saved = (row.instrument, row.total, row.band, row.item9)
        except ValidationError as exc:
            if "administered_on" in exc.errors:
                st.session_state["ms_errors"] = {"administered_on": exc.errors["administered_on"]}
                st.rerun()
            for message in exc.errors.values():  # the scale's messages name their item or total
                st.error(md_escape(message), icon=":material/error:")
        except KapError as exc:
            show_error(exc)
        else:
            st.toast(f"Saved: {saved[0]} total {saved[1]} ({saved[2]})", icon=":material/check:")
            st.session_state["ms_saved"] = (f"Saved {saved[0]}: total **{saved[1]}**, band **{saved[2]}**.",
                                            bool(saved[3]))
            for key in [k for k in st.session_state if str(k).startswith(("ms_date_", f"ms_{instrument}_",
                                                                          "ms_phq9_item9_only"))]:
                del st.session_state[key]  # the next score starts blank, dated today
            st.rerun()

st.subheader("Scores over time")
with db() as session:
    frame = assessments.series(session, actor, pid, include_voided=True)
live = frame[frame["voided_at"].isna()]
if live.empty:
    st.info("No GAD-7 or PHQ-9 recorded yet — enter one above.")
else:
    gad = live[live["instrument"] == "GAD-7"]
    baseline = int(gad["total"].iloc[0]) if len(gad) else None
    altair_chart(charts.scores_chart, live, None, tz, baseline, width="stretch")
    view = frame.sort_values(["administered_on", "id"], ascending=False).copy()
    view["administered_on"] = view["administered_on"].dt.date
    view["status"] = view["voided_at"].map(lambda v: "voided" if v is not None and v == v else "")
    view["entered as"] = view["items"].map(lambda v: "items" if v else "total")
    st.dataframe(view[["administered_on", "instrument", "total", "band", "item9", "entered as", "loinc_total",
                       "status", "id"]],
                 hide_index=True, width="stretch",
                 column_config={"administered_on": "Date", "instrument": "Scale", "total": "Total", "band": "Band",
                                "item9": "Item 9", "loinc_total": "LOINC (total)", "status": "Status",
                                "entered as": "Entered as",
                                "id": st.column_config.NumberColumn("Entry", format="%d")})
    voidable = {int(r.id): f"{r.administered_on:%Y-%m-%d} · {r.instrument} · total {r.total}"
                for r in live.sort_values("administered_on", ascending=False).itertuples()}
    with st.expander("Void a score entered by mistake"):
        with st.form("void_measure"):
            chosen = st.selectbox("Score", list(voidable), format_func=lambda i: voidable[i])
            reason = st.text_input("Reason", key="ms_void_reason")
            if st.form_submit_button("Void score"):
                try:
                    with db() as session:
                        assessments.void_assessment(session, actor, chosen, reason)
                    st.toast("Score voided", icon=":material/block:")
                    st.rerun()
                except KapError as exc:
                    show_error(exc)
