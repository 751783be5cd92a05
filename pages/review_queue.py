"""The prescriber's review queue: pending suggestions and proposals across their patients.

Urgent first (the engine's holds, decreases and reviews, which arrive by themselves, and any
patient with a hold flag), then decreases, then the rest, oldest first. The whole queue is one
table; one item at a time is open below it (the most urgent, until another is chosen) with the
suggestion, its reasons and every check the rules made, the data (a compact GAD-7/PHQ-9 chart
and the last doses), and the therapist's note. Nothing is preselected: the prescriber picks a
decision and writes a rationale; when the change needs an override (more drug while a safety
rule fires, or a value off the protocol), the page says why before submit and asks for the
override and its own rationale. A stale item says what changed. The decision runs in a button
callback with the item id and version that were on screen: if another prescriber decided
first, this one gets a clear conflict message. Refusals are shown at their field.
"""

import altair as alt
import pandas as pd
import streamlit as st

from kapnotes import vocab
from kapnotes.config import get_settings
from kapnotes.dosing import suggestions
from kapnotes.errors import KapError, ValidationError
from kapnotes.models import HARD_MAX_DOSE_MG
from kapnotes.timeutil import fmt_local
from kapnotes.ui.chart_cache import altair_chart
from kapnotes.ui.database import db
from kapnotes.ui.feedback import show_outcome
from kapnotes.ui.guard import require_user
from kapnotes.ui.patient import select_patient
from kapnotes.ui.suggestion_panel import FLAG_LABELS, every, md_escape, proposal_text, suggestion_card

actor = require_user("prescriber")
tz = get_settings().tz
RESULT_KEY = "_queue_result"
ITEM_KEY = "queue_item"  # the open item's id; the most urgent when unset or no longer waiting
DECISION_LABELS = {"Approve": "approve", "Modify": "modify", "Reject": "reject"}


def _decide(adjustment_id: int, version: int) -> None:
    k = f"q{adjustment_id}"
    decision = DECISION_LABELS.get(st.session_state.get(f"{k}_decision") or "")  # None: nothing chosen
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
        st.session_state[RESULT_KEY] = ("error", KapError("See the messages at the fields below."),
                                        "For this item, your decision was not saved.")
    except KapError as exc:
        st.session_state[RESULT_KEY] = ("error", exc, "For this item, your decision was not saved.")


def _open_patient(patient_id: int) -> None:
    """Select the patient and open their dashboard (the id stays in the session, not the URL)."""
    select_patient(patient_id)
    st.session_state["_open_dashboard"] = True


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
    return pd.DataFrame([
        {"Taken": fmt_local(d.taken_at, tz), "Dose (mg)": d.dose_mg,
         "BP pre": f"{d.bp_systolic_pre}/{d.bp_diastolic_pre}" if d.bp_systolic_pre else "",
         "BP post": f"{d.bp_systolic_post}/{d.bp_diastolic_post}" if d.bp_systolic_post else "",
         "Nausea": d.nausea, "Vomited": "yes" if d.vomited else "",
         "Adverse events": vocab.adverse_events_text(d.adverse_events)}
        for d in doses
    ])


def _queue_table(items) -> pd.DataFrame:
    return pd.DataFrame([{
        "Item": n,
        "Urgency": i.urgency_label if i.urgent or i.urgency == 1 else "",
        "Patient": f"{i.patient_name} ({i.mrn})",
        "Proposed": proposal_text(i.adjustment),
        "Safety flags": ", ".join(FLAG_LABELS.get(f, f) for f in i.hold_flags),
        "Up to date": "no: the record changed" if i.stale else "yes",
        "Waiting since": fmt_local(i.waiting_since, tz),
        "Sent by": i.sent_by_text,
    } for n, i in enumerate(items, 1)])


def _item_label(item) -> str:
    urgency = f"{item.urgency_label} · " if item.urgent or item.urgency == 1 else ""
    return (f"{urgency}{item.patient_name} ({item.mrn}) · {proposal_text(item.adjustment)}"
            f" · waiting since {fmt_local(item.waiting_since, tz)}")


def _field_error(errors: dict, field: str) -> None:
    if field in errors:
        st.error(md_escape(errors[field]))


st.title("Review queue")
show_outcome(RESULT_KEY)

with db() as session:
    items = suggestions.review_queue(session, actor)
    by_id = {i.adjustment.id: i for i in items}
    if st.session_state.get(ITEM_KEY) not in by_id and items:
        st.session_state[ITEM_KEY] = items[0].adjustment.id  # the most urgent, also after a decision
    item = by_id.get(st.session_state.get(ITEM_KEY))
    details = suggestions.queue_data(session, actor, [item.patient_id]) if item else {}
    stale = suggestions.stale_reason(session, item.adjustment, item.plan) if item else None

if not items:
    st.info("Nothing waiting for review. Urgent suggestions arrive here by themselves; therapists send the rest "
            "from a patient's page.")
    st.stop()

urgent = sum(1 for i in items if i.urgent)
st.caption(f"{len(items)} item{'s' if len(items) != 1 else ''} waiting"
           + (f" · {urgent} urgent" if urgent else "") + ". Urgent first (holds, decreases and reviews from the "
           "rules, and any hold flag), then decreases, then the rest, oldest first. One item is open for your "
           "decision at a time.")
st.dataframe(_queue_table(items), hide_index=True, width="stretch", height=min(38 + 35 * len(items), 300))
st.selectbox("Item to review", list(by_id), format_func=lambda i: _item_label(by_id[i]), key=ITEM_KEY)

adj = item.adjustment
k = f"q{adj.id}"
errors = st.session_state.pop(f"{k}_errors", {})
# one container for the open item: what is proposed, why, the data, and the decision, together
with st.container(border=True, key=f"{k}_item"):
    head = f"**{md_escape(item.patient_name)}** · {md_escape(item.mrn)}"
    if item.urgency == 0:
        flags = ", ".join(FLAG_LABELS.get(f, f) for f in item.hold_flags) or "hold suggested"
        head = f":red[**HOLD**] · {head} · :red[**⚠ {md_escape(flags)}**]"
    elif item.urgency == 1:
        head = f":orange[**Decrease**] · {head}"
    if item.urgent:
        head = f":red[**Urgent**] · {head}"
    st.markdown(head)
    plan = item.plan
    if plan is not None:
        st.caption(f"Current plan v{plan.version_number} ({plan.status}): {plan.dose_mg:g} mg "
                   f"{every(plan.interval_days)} · waiting since {fmt_local(item.waiting_since, tz)}"
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

    st.markdown("**Your decision**")
    choice = st.radio("Decision (required)", list(DECISION_LABELS), index=None, key=f"{k}_decision",
                      horizontal=True)
    _field_error(errors, "decision")
    decision = DECISION_LABELS.get(choice or "")
    dose = interval = None
    if decision == "modify":
        c1, c2 = st.columns(2)
        dose = c1.number_input("Dose (mg)", min_value=0.0, max_value=float(HARD_MAX_DOSE_MG), step=25.0,
                               value=float(adj.proposed_dose_mg or (plan.dose_mg if plan else 0.0)), key=f"{k}_dose")
        interval = c2.number_input("Interval (days)", min_value=1, max_value=90, step=1,
                                   value=int(adj.proposed_interval_days or (plan.interval_days if plan else 7)),
                                   key=f"{k}_interval")
        _field_error(errors, "dose_mg")
        _field_error(errors, "interval_days")
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
    for field in set(errors) - {"decision", "dose_mg", "interval_days", "rationale", "override_rationale"}:
        _field_error(errors, field)
    st.button("Record decision", type="primary", on_click=_decide, args=(adj.id, adj.version), key=f"{k}_submit")
st.button("Open patient", key=f"{k}_open", on_click=_open_patient, args=(item.patient_id,),
          help="Open this patient's dashboard.")
if st.session_state.pop("_open_dashboard", False):
    from streamlit.errors import StreamlitAPIException

    try:
        st.switch_page("pages/dashboard.py")
    except StreamlitAPIException:  # the page run on its own (AppTest): the selection is what is tested
        pass
