"""Dose suggestions on screen: the dashboard panel and the cards the review pages share.

``render(session, actor, patient_id)`` is the dashboard section: the latest engine
suggestion with its reasons and the protocol that produced it, and the latest
prescriber decision. User-written text (therapist notes, rationales) is always shown
literally (``st.text`` or escaped Markdown), never interpreted as Markdown.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlmodel import Session
from streamlit.errors import StreamlitPageNotFoundError

from kapnotes import vocab
from kapnotes.actor import Actor
from kapnotes.config import get_settings
from kapnotes.dosing import suggestions
from kapnotes.dosing.rules import HOLD_FLAGS
from kapnotes.models import DoseAdjustment
from kapnotes.textsafe import md_escape  # the one escaping path (issue 20)
from kapnotes.timeutil import fmt_local

ACTION_LABELS = vocab.ACTION_WORDS
STATUS_LABELS = vocab.ADJUSTMENT_STATUS_WORDS
FLAG_LABELS = {
    **vocab.RULE_LABELS,
    "suicidality": "PHQ-9 item 9 > 0",
    "hypertension_severe": "BP ≥ hold threshold",
    "serious_adverse_event": "serious adverse event",
    "vomiting": "vomiting",
    "severe_nausea": "severe nausea",
    "hypertension": "high post-dose BP",
    "lowest_step": "at the lowest step",
    "above_ceiling": "above the ceiling",
    "too_few_doses": "too few doses",
    "stale_assessment": "no recent GAD-7",
    "adherence": "low adherence",
    "remission": "remission",
    "response": "response",
    "partial_response": "partial response",
    "non_response": "non-response",
    "at_ceiling": "at the ceiling",
    "low_baseline": "low baseline",
}
def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action.replace("_", " ").capitalize())


every = vocab.every  # "every day", "every 7 days"


KEEP_ACTIONS = ("hold", "review", "insufficient_data", "continue")


def proposal_text(adj: DoseAdjustment) -> str:
    """"Increase: 200 mg every 7 days"; actions that change nothing read "Continue: keep 150 mg every 7 days"."""
    if adj.proposed_dose_mg is None and not adj.proposed_interval_days:
        return action_label(adj.action)
    dose = f"{adj.proposed_dose_mg:g} mg" if adj.proposed_dose_mg is not None else "current dose"
    interval = every(adj.proposed_interval_days) if adj.proposed_interval_days else ""
    keep = "keep " if adj.action in KEEP_ACTIONS else ""
    return f"{action_label(adj.action)}: {keep}{dose} {interval}".strip()


def flags_markdown(flags) -> str:
    parts = []
    for f in flags or []:
        label = FLAG_LABELS.get(f, f)
        parts.append(f":red[**⚠ {label}**]" if f in HOLD_FLAGS else f"`{label}`")
    return " ".join(parts)


def reasons(adj: DoseAdjustment) -> None:
    for r in adj.reasons or []:
        st.markdown(f"- {md_escape(r.get('text', ''))}")


def checks_table(adj: DoseAdjustment) -> None:
    """Every rule the engine checked, in words: what fired, what passed, what it could not know."""
    if not adj.checks:
        return
    rows = [{"Rule": vocab.rule_label(c.get("rule", "")).capitalize(),
             "Result": vocab.CHECK_STATUS_LABELS.get(c.get("status", ""), "not known"),
             "What the rules found": c.get("text", "")} for c in adj.checks]
    with st.expander("Every check the rules made", expanded=any(c.get("status") == "fired" for c in adj.checks)):
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def stale_banner(reason: str | None) -> None:
    if reason:
        st.warning(f"**Out of date.** {md_escape(reason)} It cannot be approved as it stands: modify it with "
                   "explicit values or reject it.", icon=":material/update:")


def suggestion_card(adj: DoseAdjustment, names: dict[int, str] | None = None, stale: str | None = None) -> None:
    """One suggestion or proposal: what, why, from which protocol, its state, and every check."""
    tz = get_settings().tz
    names = names or {}
    kind = "Engine suggestion" if adj.kind == "suggestion" else "Therapist's proposal"
    urgent = f":red[**{vocab.urgency_word(True)}**] · " if adj.urgent and adj.status in ("open", "pending") else ""
    st.markdown(f"{urgent}**{kind}: {md_escape(proposal_text(adj))}** · "
                f"{STATUS_LABELS.get(adj.status, adj.status)}")
    stale_banner(stale)
    if adj.flags:
        st.markdown(flags_markdown(adj.flags))
    reasons(adj)
    checks_table(adj)
    if adj.therapist_note:
        who = names.get(adj.sent_by_id or adj.created_by_id, "Therapist")
        st.caption(f"Note from {who}:")
        st.text(adj.therapist_note)
    meta = [f"made {fmt_local(adj.created_at, tz)}"]
    if adj.protocol_name:
        meta.append(f"protocol “{adj.protocol_name}”"
                    + (f" (sha256 {adj.protocol_hash[:12]})" if adj.protocol_hash else ""))
    if adj.sent_at:
        if adj.sent_by_id is None and adj.kind == "suggestion":
            meta.append(f"{vocab.AUTO_SENT} {fmt_local(adj.sent_at, tz)}")
        else:
            meta.append(f"sent {fmt_local(adj.sent_at, tz)}"
                        + (f" by {names[adj.sent_by_id]}" if adj.sent_by_id in names else ""))
    st.caption(" · ".join(meta))


def decision_block(adj: DoseAdjustment, names: dict[int, str]) -> None:
    tz = get_settings().tz
    who = names.get(adj.decided_by_id, "the prescriber")
    verb = STATUS_LABELS.get(adj.status, adj.status)
    line = f"**{verb.capitalize()}** by {md_escape(who)} on {fmt_local(adj.decided_at, tz)}"
    if adj.decided_dose_mg is not None and adj.status != "rejected":
        line += f" → {adj.decided_dose_mg:g} mg {every(adj.decided_interval_days)}"
    if adj.resulting_plan_id:
        line += " (new plan version)"
    st.markdown(line + f" · {'suggestion' if adj.kind == 'suggestion' else 'proposal'}")
    if adj.decision_rationale:
        st.text(adj.decision_rationale)
    if adj.override_rules:
        st.markdown(":orange[**Override of the safety check**] ("
                    + md_escape(", ".join(vocab.rule_label(c) for c in adj.override_rules)) + "):")
        st.text(adj.override_rationale or "")


def render(session: Session, actor: Actor, patient_id: int) -> None:
    """Dashboard section: the latest suggestion, its reasons, and the latest decision."""
    st.subheader("Dose suggestion")
    latest = suggestions.latest_suggestion(session, actor, patient_id)
    decision = suggestions.latest_decision(session, actor, patient_id)
    names = suggestions.user_names(session, [x for a in (latest, decision) if a is not None
                                             for x in (a.decided_by_id, a.sent_by_id, a.created_by_id)])
    if latest is None:
        st.info("No suggestion yet: the rules run when doses or scores are recorded for an active plan.")
    else:
        with st.container(border=True):
            suggestion_card(latest, names, suggestions.stale_reason(session, latest))
    st.markdown("**Latest decision**")
    if decision is None:
        st.caption("No prescriber decision yet.")
    else:
        decision_block(decision, names)
    try:
        st.page_link("pages/proposals.py", label="Suggestions and proposals", icon=":material/rule:")
    except StreamlitPageNotFoundError:  # a page run on its own (tests) has no navigation to link into
        st.caption("Send a suggestion or propose a change on the Suggestions and proposals page.")
