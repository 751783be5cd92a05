"""The sidebar notices app.py shows on every page, so nobody has to go looking (issue 13 §5).

A prescriber sees how many urgent items wait in the review queue (a link to it); a
therapist sees the decisions on items they sent or proposed since they last marked them
seen, with the list and a "Mark as seen" button. One COUNT query per rerun when there is
nothing to show; the list is read only when there is something in it.
"""

from __future__ import annotations

import streamlit as st
from streamlit.errors import StreamlitAPIException

from kapnotes import notify, vocab
from kapnotes.actor import Actor
from kapnotes.config import get_settings
from kapnotes.models import Role
from kapnotes.textsafe import md_escape
from kapnotes.timeutil import fmt_local
from kapnotes.ui.database import db
from kapnotes.ui.feedback import remember_outcome, show_error
from kapnotes.ui.suggestion_panel import action_label, every

REVIEW_QUEUE_PAGE = "pages/review_queue.py"
DECISION_WORDS = vocab.DECISION_WORDS
SEEN_OUTCOME_KEY = "_decisions_seen_outcome"


def sidebar(actor: Actor) -> None:
    """What this user should know about without opening a page."""
    if actor.role == Role.prescriber.value:
        _prescriber(actor)
    elif actor.role == Role.therapist.value:
        _therapist(actor)


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def queue_label(counts: notify.QueueCounts) -> str | None:
    """"2 urgent items waiting (5 in the queue)"; None when nothing waits."""
    if counts.urgent:
        label = _plural(counts.urgent, "urgent item waiting", "urgent items waiting")
        return label + (f" ({counts.waiting} in the queue)" if counts.waiting > counts.urgent else "")
    if counts.waiting:
        return _plural(counts.waiting, "item waiting for review", "items waiting for review")
    return None


def _prescriber(actor: Actor) -> None:
    with db() as session:
        counts = notify.urgent_counts(session, actor)
    label = queue_label(counts)
    if label is None:
        return
    icon = ":material/priority_high:" if counts.urgent else ":material/fact_check:"
    with st.sidebar:
        try:
            st.page_link(REVIEW_QUEUE_PAGE, label=label, icon=icon)
        except StreamlitAPIException:  # a page run on its own (tests) has no navigation to link into
            st.markdown(f"{icon} {'**' + label + '**' if counts.urgent else label}")


def change_text(d: notify.Decision) -> str:
    """What the decision does to the plan, in words (no codes)."""
    before = f"{d.plan_dose_mg:g} mg {every(d.plan_interval_days)}" if d.plan_dose_mg is not None else None
    if d.proposed_dose_mg is not None or d.proposed_interval_days:
        dose = f"{d.proposed_dose_mg:g} mg" if d.proposed_dose_mg is not None else "the current dose"
        asked = (f"{action_label(d.action)}: {dose} "
                 f"{every(d.proposed_interval_days) if d.proposed_interval_days else ''}")
    else:
        asked = action_label(d.action)
    asked = asked.strip()
    if d.status == "rejected":
        return f"{asked} — not made" + (f"; the plan stays {before}" if before else "")
    if d.action == "hold" and d.status == "approved":
        return "Plan held" + (f" (was {before})" if before else "")
    if d.decided_dose_mg is not None:
        after = f"{d.decided_dose_mg:g} mg {every(d.decided_interval_days)}"
        return f"{before} → {after}" if before and before != after else f"Plan: {after}"
    return f"{asked} — no change to the plan"


def _therapist(actor: Actor) -> None:
    with db() as session:
        count = notify.decisions_count(session, actor)
    outcome = st.session_state.pop(SEEN_OUTCOME_KEY, None)
    if outcome is not None:
        with st.sidebar:
            if outcome[0] == "ok":
                st.caption(outcome[1])
            else:
                show_error(outcome[1])
    if count == 0:
        return
    with db() as session:
        decisions = notify.decisions_since_last_visit(session, actor)
    tz = get_settings().tz
    title = _plural(count, "decision", "decisions") + " on your proposals since your last visit"
    with st.sidebar.expander(title, icon=":material/notifications:"):
        for d in decisions:
            st.markdown(
                f"**{DECISION_WORDS.get(d.status, d.status.capitalize())}** · "
                f"{md_escape(d.patient_name)} ({md_escape(d.mrn)})  \n"
                f"{md_escape(change_text(d))}  \n"
                f"by {md_escape(d.decided_by)}, {fmt_local(d.decided_at, tz)}"
            )
            if d.rationale:
                st.markdown(f"> {md_escape(d.rationale)}")
        if count > len(decisions):
            st.caption(f"Showing the {len(decisions)} newest of {count}.")
        newest = max(d.decided_at for d in decisions) if decisions else None
        st.button("Mark as seen", key="decisions_mark_seen", on_click=_mark_seen, args=(actor, newest))


def _mark_seen(actor: Actor, newest) -> None:
    """A callback, so it runs before the next script run, whichever page it renders."""
    with remember_outcome(SEEN_OUTCOME_KEY, "Decisions marked as seen."), db() as session:
        notify.mark_decisions_seen(session, actor, newest)
