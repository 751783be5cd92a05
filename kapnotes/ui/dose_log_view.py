"""The dose log page's three tabs: the log (filters, adherence, a page of rows), add, edit or void.

The log reads one page of rows in SQL (``PAGE_ROWS``), so its cost stays flat however long the
log. ``period_bounds`` and ``dose_table`` are pure and tested in ``tests/unit/test_dose_form.py``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st

from kapnotes import doses, vocab
from kapnotes.actor import Actor
from kapnotes.models import TreatmentPlan
from kapnotes.timeutil import fmt_local, utcnow
from kapnotes.ui.database import db
from kapnotes.ui.dose_form import dose_form, save_dose
from kapnotes.ui.export_buttons import dose_csv_button
from kapnotes.ui.feedback import attempt

PAGE_ROWS = 50  # the log's page: readable, and the query reads only these rows


def period_bounds(period, today: date) -> tuple[date, date]:
    """(from, to) of the date-range widget, whose value is a pair only once both ends are picked."""
    if isinstance(period, (tuple, list)) and len(period) == 2:
        return period[0], period[1]
    return (period[0] if isinstance(period, (tuple, list)) and period else today), today


def dose_table(frame: pd.DataFrame, tz: ZoneInfo) -> pd.DataFrame:
    """The log's rows in words: local times, worded codes, a status column."""
    return pd.DataFrame({
        "Taken at": frame["taken_at"].dt.tz_convert(tz).dt.tz_localize(None),
        "Dose (mg)": frame["dose_mg"],
        "Formulation": frame["formulation"].map(vocab.formulation_word),
        "Spat or swallowed": frame["administration"].map(lambda v: vocab.administration_word(v) if v else ""),
        "Context": frame["context"].map(vocab.context_word),
        "Anxiety before": frame["anxiety_before"], "Anxiety after": frame["anxiety_after"],
        "Dissociation": frame["dissociation"], "Nausea": frame["nausea"], "Vomited": frame["vomited"],
        "Sys before": frame["bp_systolic_pre"], "Dia before": frame["bp_diastolic_pre"],
        "Sys after": frame["bp_systolic_post"], "Dia after": frame["bp_diastolic_post"],
        "HR (bpm)": frame["heart_rate"],
        "Adverse events": frame["adverse_events"].map(lambda v: vocab.adverse_events_text(v) if v else ""),
        "Notes": frame["notes"], "Source": frame["source"].map(vocab.source_word),
        "Status": frame["voided_at"].map(lambda v: "voided" if pd.notna(v) else ""),
    })


def _filters(tz: ZoneInfo) -> doses.DoseFilter:
    today = utcnow().astimezone(tz).date()
    f = st.columns([2, 2, 1, 1])
    period = f[0].date_input("Dates", value=(today - timedelta(days=90), today), key="dl_period")
    contexts = f[1].multiselect("Context", doses.CONTEXTS, format_func=vocab.context_word, select_all=False,
                                key="dl_contexts")
    adverse_only = f[2].checkbox("Adverse events only", key="dl_adverse")
    include_voided = f[3].checkbox("Show voided", key="dl_voided")
    start, end = period_bounds(period, today)
    return doses.DoseFilter(date_from=start, date_to=end, contexts=tuple(contexts), adverse_only=adverse_only,
                            include_voided=include_voided)


def _adherence(adh_all: doses.Adherence | None, adh_28: doses.Adherence | None) -> None:
    a = st.columns(2)
    if adh_all is None:
        a[0].info("No active plan: adherence is not computed.")
        return
    for col, title, adh in ((a[0], "Adherence since this plan version", adh_all),
                            (a[1], "Adherence, last 28 days", adh_28)):
        col.metric(title, "—" if adh.ratio is None else f"{adh.ratio:.0%}", help=adh.describe())
        col.caption(adh.describe())


def _pager(page_no: int, last_page: int) -> None:
    p = st.columns([1, 1, 4])
    if p[0].button("Previous", key="dl_prev", disabled=page_no == 0, icon=":material/chevron_left:"):
        st.session_state["dl_page"] = page_no - 1
        st.rerun()
    if p[1].button("Next", key="dl_next", disabled=page_no >= last_page, icon=":material/chevron_right:"):
        st.session_state["dl_page"] = page_no + 1
        st.rerun()
    p[2].caption(f"Page {page_no + 1:,} of {last_page + 1:,}")


def log_tab(actor: Actor, pid: int, tz: ZoneInfo) -> None:
    flt = _filters(tz)
    if st.session_state.get("dl_filter") != flt:  # other filters: back to the newest page
        st.session_state["dl_filter"], st.session_state["dl_page"] = flt, 0
    page_no = st.session_state.get("dl_page", 0)
    with db() as session:
        total = doses.count_doses(session, actor, pid, flt, tz)
        last_page = max(0, (total - 1) // PAGE_ROWS)
        page_no = min(max(0, page_no), last_page)
        frame = doses.list_doses(session, actor, pid, replace(flt, limit=PAGE_ROWS, offset=page_no * PAGE_ROWS), tz)
        adh_all, adh_28 = doses.adherences(session, actor, pid, (None, 28))
    _adherence(adh_all, adh_28)
    dose_csv_button(actor, pid, flt.date_from, flt.date_to, key="dl_csv")
    if frame.empty:
        st.info("No doses logged yet — add one or import a CSV." if not (flt.contexts or flt.adverse_only)
                else "No doses match these filters.")
        return
    view = dose_table(frame, tz)
    first, last = page_no * PAGE_ROWS + 1, page_no * PAGE_ROWS + len(view)
    st.caption(f"{total:,} dose{'s' if total != 1 else ''} shown · rows {first:,}–{last:,} of {total:,} · newest first "
               f"· times in {tz.key}")
    st.dataframe(view, hide_index=True, width="stretch", height=min(36 + 35 * len(view), 36 + 35 * 20),
                 column_config={"Taken at": st.column_config.DatetimeColumn("Taken at", format="YYYY-MM-DD HH:mm"),
                                "Dose (mg)": st.column_config.NumberColumn("Dose (mg)", format="%g")})
    if total > PAGE_ROWS:
        _pager(page_no, last_page)


def add_tab(actor: Actor, pid: int, tz: ZoneInfo, plan: TreatmentPlan | None) -> None:
    if plan is not None:
        st.caption(f"Defaults from the active plan: {plan.dose_mg:g} mg {vocab.formulation_word(plan.formulation)}.")
    notice = st.session_state.pop("dose_saved_notice", None)
    if notice:
        st.success(notice)
    with st.form("add_dose_form", clear_on_submit=False):
        result = dose_form("add", None, plan, utcnow(), tz)

    def save(data: doses.DoseInput, confirmed: bool) -> None:
        with db() as session:
            entry = doses.add_dose(session, actor, pid, data, confirm_unusual_dose=confirmed)
            when = fmt_local(entry.taken_at, tz)
        st.session_state["dose_saved_notice"] = f"Dose saved: {data.dose_mg:g} mg taken {when}."
        st.toast(f"Dose saved ({when})", icon=":material/check:")

    save_dose("add", result, save)


def _edit_entry(actor: Actor, entry, tz: ZoneInfo, plan: TreatmentPlan | None) -> None:
    prefix = f"edit{entry.id}v{entry.version}"
    with st.form(f"edit_dose_{entry.id}_{entry.version}"):
        result = dose_form(prefix, doses.DoseInput.from_entry(entry), plan, utcnow(), tz)

    def save(data: doses.DoseInput, confirmed: bool) -> None:
        with db() as session:
            doses.edit_dose(session, actor, entry.id, data, expected_version=entry.version,
                            confirm_unusual_dose=confirmed)
        st.toast("Changes saved", icon=":material/check:")

    save_dose(prefix, result, save)
    with st.form(f"void_dose_{entry.id}"):
        reason = st.text_input("Reason for voiding", key=f"void_reason_{entry.id}",
                               help="The entry stays in the record, marked void.")
        if st.form_submit_button("Void this entry"):
            with attempt():
                with db() as session:
                    doses.void_dose(session, actor, entry.id, reason, expected_version=entry.version)
                st.toast("Entry voided", icon=":material/block:")
                st.rerun()


def edit_tab(actor: Actor, pid: int, tz: ZoneInfo, plan: TreatmentPlan | None) -> None:
    with db() as session:
        recent = doses.list_doses(session, actor, pid, doses.DoseFilter(limit=200), tz)
    if recent.empty:
        st.info("No doses logged yet — add one or import a CSV.")
        return
    labels = {int(r.id): f"{r.taken_at.tz_convert(tz):%Y-%m-%d %H:%M} · {r.dose_mg:g} mg · "
                         f"{vocab.source_word(r.source)}"
              for r in recent.itertuples()}
    chosen = st.selectbox("Entry", list(labels), format_func=lambda i: labels.get(i, str(i)), key="de_entry")
    with db() as session:
        entry = doses.get_dose(session, actor, chosen)
        locked = doses.is_locked(session, entry)
    if locked:
        st.warning("This entry is part of a signed session note: it can no longer be edited or voided. "
                   "Correct it with an addendum to that note.")
    else:
        _edit_entry(actor, entry, tz, plan)
