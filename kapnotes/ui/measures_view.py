"""The measures page's saving and its series: a score recorded (refusals at the date or as the
scale words them), the chart and table of every score, and voiding one entered by mistake."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import streamlit as st

from kapnotes import assessments, charts
from kapnotes.actor import Actor
from kapnotes.errors import ValidationError
from kapnotes.textsafe import md_escape
from kapnotes.ui.chart_cache import altair_chart
from kapnotes.ui.database import db
from kapnotes.ui.feedback import attempt

TABLE_COLUMNS = {"administered_on": "Date", "instrument": "Scale", "total": "Total", "band": "Band",
                 "item9": "Item 9", "loinc_total": "LOINC (total)", "status": "Status", "entered as": "Entered as"}


def record_score(actor: Actor, pid: int, instrument: str, day: date, items: list[int] | None, total: int | None,
                 item9: int | None) -> None:
    """Save the score; on success the form starts blank (dated today) and the page says what was saved."""
    with attempt() as done:
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
            return
    if not done:
        return
    st.toast(f"Saved: {saved[0]} total {saved[1]} ({saved[2]})", icon=":material/check:")
    st.session_state["ms_saved"] = (f"Saved {saved[0]}: total **{saved[1]}**, band **{saved[2]}**.", bool(saved[3]))
    for key in [k for k in st.session_state if str(k).startswith(("ms_date_", f"ms_{instrument}_",
                                                                  "ms_phq9_item9_only"))]:
        del st.session_state[key]  # the next score starts blank, dated today
    st.rerun()


def scores_over_time(actor: Actor, pid: int, tz: ZoneInfo) -> None:
    st.subheader("Scores over time")
    with db() as session:
        frame = assessments.series(session, actor, pid, include_voided=True)
    live = frame[frame["voided_at"].isna()]
    if live.empty:
        st.info("No GAD-7 or PHQ-9 recorded yet — enter one above.")
        return
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
                 column_config={**TABLE_COLUMNS, "id": st.column_config.NumberColumn("Entry", format="%d")})
    voidable = {int(r.id): f"{r.administered_on:%Y-%m-%d} · {r.instrument} · total {r.total}"
                for r in live.sort_values("administered_on", ascending=False).itertuples()}
    with st.expander("Void a score entered by mistake"):
        with st.form("void_measure"):
            chosen = st.selectbox("Score", list(voidable), format_func=lambda i: voidable[i])
            reason = st.text_input("Reason", key="ms_void_reason")
            if st.form_submit_button("Void score"):
                with attempt():
                    with db() as session:
                        assessments.void_assessment(session, actor, chosen, reason)
                    st.toast("Score voided", icon=":material/block:")
                    st.rerun()
