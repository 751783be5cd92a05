"""The Audit log page's pieces: the filters, the hash-chain status, and one page of events.

Walking the whole chain takes seconds in a large clinic: it runs when asked, and every check
is itself an audit event, so the page shows the last result without re-walking.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from kapnotes import audit
from kapnotes.actor import Actor
from kapnotes.config import get_settings
from kapnotes.models import AuditEvent
from kapnotes.timeutil import fmt_local
from kapnotes.ui.database import db

PAGE = 50  # events a page
PAGE_KEY, FILTER_KEY = "audit_page", "audit_filter"


def filters() -> audit.AuditFilter:
    """The filter widgets; a changed filter starts again at the newest page."""
    with db() as session:
        actions = audit.distinct_actions(session)
    c1, c2, c3 = st.columns(3)
    username = c1.text_input("User (username)")
    mrn = c2.text_input("Patient MRN", help="Leave empty for every patient.")
    action = c3.selectbox("Action", ["(any)"] + actions)
    d1, d2 = st.columns(2)
    date_from = d1.date_input("From", value=None)
    date_to = d2.date_input("To", value=None)
    flt = audit.AuditFilter(
        username=username.strip().lower() or None,
        mrn=mrn.strip() or None,
        action=None if action == "(any)" else action,
        date_from=date_from,
        date_to=date_to,
    )
    if st.session_state.get(FILTER_KEY) != repr(flt):
        st.session_state[FILTER_KEY], st.session_state[PAGE_KEY] = repr(flt), 0
    return flt


def page_number() -> int:
    return st.session_state.get(PAGE_KEY, 0)


def chain_status(actor: Actor, last_check: audit.Verification | None) -> None:
    """The last verification's result, and a button that walks the chain now."""
    tz = get_settings().tz
    chain_col, button_col = st.columns([4, 1], vertical_alignment="center")
    if button_col.button("Verify chain now", icon=":material/verified:"):
        with st.spinner("Checking every event's hash and link…"), db() as session:
            report = audit.verify_and_record(session, actor)
        if report.ok:
            chain_col.success(f"Hash chain intact ({report.count} events).", icon=":material/verified:")
        else:
            chain_col.error(f"Hash chain BROKEN at event {report.first_bad_id}: {report.problem}.",
                            icon=":material/error:")
    elif last_check is None:
        chain_col.warning("The hash chain has not been verified from this page yet. "
                          "Verify it now, or run `python -m kapnotes verify-audit`.")
    elif last_check.ok:
        chain_col.info(f"Last verified {fmt_local(last_check.at, tz)} by {last_check.username}: "
                       f"{last_check.detail}.", icon=":material/verified:")
    else:
        chain_col.error(f"Last check {fmt_local(last_check.at, tz)} by {last_check.username}: hash chain "
                        f"{last_check.detail}. Verify again after investigating.", icon=":material/error:")


def _turn(delta: int) -> None:
    st.session_state[PAGE_KEY] = max(0, st.session_state.get(PAGE_KEY, 0) + delta)


def event_page(actor: Actor, events: list[AuditEvent], page_no: int) -> None:
    """One page of events (``events`` holds one more when an older page exists), newest first."""
    tz = get_settings().tz
    more = len(events) > PAGE
    events = events[:PAGE]
    if not events:
        st.info("No events match these filters.")
        return
    st.dataframe(
        pd.DataFrame([
            {"When": fmt_local(e.at, tz), "User": e.actor_username, "Action": e.action,
             "Record": e.record_type.replace("_", " "), "Detail": audit.shown_detail(actor, e)}
            for e in events
        ]),
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(events), 600),
    )
    p1, p2, p3 = st.columns([1, 2, 1], vertical_alignment="center")
    p1.button("Previous", key="audit_prev", on_click=_turn, args=(-1,), disabled=page_no == 0,
              icon=":material/chevron_left:")
    p2.caption(f"Newest first · events {page_no * PAGE + 1}–{page_no * PAGE + len(events)}"
               + ("" if actor.role == "auditor" else " · clinical details are shown as … (an auditor account "
                                                     "reads them in full)"))
    p3.button("Next", key="audit_next", on_click=_turn, args=(1,), disabled=not more,
              icon=":material/chevron_right:")
