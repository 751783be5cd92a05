"""The review queue page's pieces: the queue table, the open item (what, why, the data) and
the decision form with its callback, so ``pages/review_queue.py`` only lays them out.

The decision runs in a button callback with the item id and version that were on screen; its
outcome is left under ``RESULT_KEY`` for ``show_outcome`` and a refusal's field messages
under ``q<id>_errors`` to be shown at their fields.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from kapnotes import vocab
from kapnotes.actor import Actor
from kapnotes.config import get_settings
from kapnotes.dosing import suggestions
from kapnotes.dosing.queue import QueueItem
from kapnotes.errors import KapError, ValidationError
from kapnotes.models import HARD_MAX_DOSE_MG
from kapnotes.timeutil import fmt_local
from kapnotes.ui.chart_cache import altair_chart
from kapnotes.ui.database import db
from kapnotes.ui.patient import select_patient
from kapnotes.ui.suggestion_panel import FLAG_LABELS, every, md_escape, proposal_text, suggestion_card

RESULT_KEY = "_queue_result"
ITEM_KEY = "queue_item"  # the open item's id; the most urgent when unset or no longer waiting
OPEN_DASHBOARD_KEY = "_open_dashboard"
NOT_SAVED = "For this item, your decision was not saved."
FORM_FIELDS = ("decision", "dose_mg", "interval_days", "rationale", "override_rationale")


def decide(actor: Actor, adjustment_id: int, version: int) -> None:
    """Button callback: record the decision on screen for this item, remember the outcome."""
    k = f"q{adjustment_id}"
    decision = vocab.decision_choice(st.session_state.get(f"{k}_decision"))  # None: nothing chosen
    kwargs = {}
    if decision == "modify":
        kwargs = {"dose_mg": st.session_state.get(f"{k}_dose"), "interval_days": st.session_state.get(f"{k}_interval")}
    try:
        with db() as session:
            suggestions.decide(session, actor, adjustment_id, decision, st.session_state.get(f"{k}_rationale", ""),
                               expected_version=version, override=bool(st.session_state.get(f"{k}_override")),
                               override_rationale=st.session_state.get(f"{k}_override_rationale", ""), **kwargs)
        st.session_state[RESULT_KEY] = ("ok", f"Decision recorded: {vocab.decision_past(decision)}.")
    except ValidationError as exc:
        st.session_state[f"{k}_errors"] = dict(exc.errors)  # shown at their fields
        st.session_state[RESULT_KEY] = ("error", KapError("See the messages at the fields below."), NOT_SAVED)
    except KapError as exc:
        st.session_state[RESULT_KEY] = ("error", exc, NOT_SAVED)


def open_patient(patient_id: int) -> None:
    """Select the patient and open their dashboard (the id stays in the session, not the URL)."""
    select_patient(patient_id)
    st.session_state[OPEN_DASHBOARD_KEY] = True


def load(actor: Actor):
    """The queue, the open item (the most urgent unless another is chosen), its data and staleness."""
    with db() as session:
        items = suggestions.review_queue(session, actor)
        by_id = {i.adjustment.id: i for i in items}
        if st.session_state.get(ITEM_KEY) not in by_id and items:
            st.session_state[ITEM_KEY] = items[0].adjustment.id  # the most urgent, also after a decision
        item = by_id.get(st.session_state.get(ITEM_KEY))
        details = suggestions.queue_data(session, actor, [item.patient_id]) if item else {}
        stale = suggestions.stale_reason(session, item.adjustment, item.plan) if item else None
    return items, by_id, item, details, stale


def _urgency_shown(item: QueueItem) -> str:
    return item.urgency_label if item.urgent or item.urgency == 1 else ""


def queue_table(items) -> pd.DataFrame:
    tz = get_settings().tz
    return pd.DataFrame([{
        "Item": n,
        "Urgency": _urgency_shown(i),
        "Patient": f"{i.patient_name} ({i.mrn})",
        "Proposed": proposal_text(i.adjustment),
        "Safety flags": ", ".join(FLAG_LABELS.get(f, f) for f in i.hold_flags),
        "Up to date": "no: the record changed" if i.stale else "yes",
        "Waiting since": fmt_local(i.waiting_since, tz),
        "Sent by": i.sent_by_text,
    } for n, i in enumerate(items, 1)])


def item_label(item: QueueItem) -> str:
    urgency = f"{_urgency_shown(item)} · " if _urgency_shown(item) else ""
    return (f"{urgency}{item.patient_name} ({item.mrn}) · {proposal_text(item.adjustment)}"
            f" · waiting since {fmt_local(item.waiting_since, get_settings().tz)}")


def queue_caption(items) -> str:
    urgent = sum(1 for i in items if i.urgent)
    return (f"{len(items)} item{'s' if len(items) != 1 else ''} waiting"
            + (f" · {urgent} urgent" if urgent else "") + ". Urgent first (holds, decreases and reviews from the "
            "rules, and any hold flag), then decreases, then the rest, oldest first. One item is open for your "
            "decision at a time.")


def item_heading(item: QueueItem) -> str:
    """The open item's first line: urgency, kind, the patient, and any hold flags in red."""
    head = f"**{md_escape(item.patient_name)}** · {md_escape(item.mrn)}"
    if item.urgency == 0:
        flags = ", ".join(FLAG_LABELS.get(f, f) for f in item.hold_flags) or "hold suggested"
        head = f":red[**{vocab.URGENCY_KIND_WORDS[0]}**] · {head} · :red[**⚠ {md_escape(flags)}**]"
    elif item.urgency == 1:
        head = f":orange[**{vocab.URGENCY_KIND_WORDS[1]}**] · {head}"
    if item.urgent:
        head = f":red[**{vocab.urgency_word(True)}**] · {head}"
    return head


def _score_frame(series) -> pd.DataFrame:
    return pd.DataFrame([{"date": a.administered_on.isoformat(), "score": a.total, "scale": a.instrument}
                         for a in series])


def _chart(df: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(df, height=160)
        .mark_line(point=True)
        .encode(x=alt.X("date:T", title=None), y=alt.Y("score:Q", title="Total"),
                color=alt.Color("scale:N", title=None), tooltip=["date:T", "scale:N", "score:Q"])
    )


def _dose_table(doses) -> pd.DataFrame:
    tz = get_settings().tz
    return pd.DataFrame([
        {"Taken": fmt_local(d.taken_at, tz), "Dose (mg)": d.dose_mg,
         "BP pre": f"{d.bp_systolic_pre}/{d.bp_diastolic_pre}" if d.bp_systolic_pre else "",
         "BP post": f"{d.bp_systolic_post}/{d.bp_diastolic_post}" if d.bp_systolic_post else "",
         "Nausea": d.nausea, "Vomited": "yes" if d.vomited else "",
         "Adverse events": vocab.adverse_events_text(d.adverse_events)}
        for d in doses
    ])


def item_body(item: QueueItem, details, stale: str | None) -> None:
    """The current plan, the suggestion card, and the data beside it (scores chart, last doses)."""
    adj, plan = item.adjustment, item.plan
    if plan is not None:
        st.caption(f"Current plan v{plan.version_number} ({plan.status}): {plan.dose_mg:g} mg "
                   f"{every(plan.interval_days)} · waiting since {fmt_local(item.waiting_since, get_settings().tz)}"
                   + f" · {item.sent_by_text if not item.sent_by else 'sent by ' + item.sent_by}")
    suggestion_card(adj, {adj.sent_by_id: item.sent_by} if adj.sent_by_id else {}, stale)
    last_doses, series = details[item.patient_id]
    c_chart, c_doses = st.columns([2, 3])
    with c_chart:
        scores = _score_frame(series)
        if scores.empty:
            st.caption("No GAD-7 or PHQ-9 recorded.")
        else:
            altair_chart(_chart, scores, width="stretch")
    with c_doses:
        if last_doses:
            st.dataframe(_dose_table(last_doses), hide_index=True, width="stretch")
        else:
            st.caption("No doses logged.")


def _field_error(errors: dict, field: str) -> None:
    if field in errors:
        st.error(md_escape(errors[field]))


def _modify_fields(k: str, item: QueueItem, errors: dict):
    adj, plan = item.adjustment, item.plan
    c1, c2 = st.columns(2)
    dose = c1.number_input("Dose (mg)", min_value=0.0, max_value=float(HARD_MAX_DOSE_MG), step=25.0,
                           value=float(adj.proposed_dose_mg or (plan.dose_mg if plan else 0.0)), key=f"{k}_dose")
    interval = c2.number_input("Interval (days)", min_value=1, max_value=90, step=1,
                               value=int(adj.proposed_interval_days or (plan.interval_days if plan else 7)),
                               key=f"{k}_interval")
    _field_error(errors, "dose_mg")
    _field_error(errors, "interval_days")
    return dose, interval


def decision_form(actor: Actor, item: QueueItem, errors: dict) -> None:
    """Nothing preselected: a decision, a rationale, and (when the change needs one) the override
    with its own rationale, said before submit; refusals at their fields."""
    adj = item.adjustment
    k = f"q{adj.id}"
    st.markdown("**Your decision**")
    choice = st.radio("Decision (required)", list(vocab.DECISION_VERBS.values()), index=None, key=f"{k}_decision",
                      horizontal=True)
    _field_error(errors, "decision")
    decision = vocab.decision_choice(choice)
    dose = interval = None
    if decision == "modify":
        dose, interval = _modify_fields(k, item, errors)
    st.text_area("Rationale (required for every decision)", key=f"{k}_rationale")
    _field_error(errors, "rationale")
    with db() as session:
        need = suggestions.decision_requirements(session, actor, adj.id, decision, dose, interval)
    if need.override_needed or "override_rationale" in errors:
        if need.override_needed:
            st.warning(md_escape(need.message()), icon=":material/warning:")
        st.checkbox("Override the safety check", key=f"{k}_override")
        st.text_area("Override rationale (required for an override)", key=f"{k}_override_rationale")
        _field_error(errors, "override_rationale")
    for field in set(errors) - set(FORM_FIELDS):
        _field_error(errors, field)
    st.button("Record decision", type="primary", on_click=decide, args=(actor, adj.id, adj.version),
              key=f"{k}_submit")
