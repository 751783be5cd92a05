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
The pieces are in ``kapnotes.ui.review_view``.
"""

import streamlit as st
from streamlit.errors import StreamlitAPIException

from kapnotes.ui import review_view as view
from kapnotes.ui.feedback import show_outcome
from kapnotes.ui.guard import require_user

actor = require_user("prescriber")

st.title("Review queue")
show_outcome(view.RESULT_KEY)
items, by_id, item, details, stale = view.load(actor)

if not items:
    st.info("Nothing waiting for review. Urgent suggestions arrive here by themselves; therapists send the rest "
            "from a patient's page.")
    st.stop()

st.caption(view.queue_caption(items))
st.dataframe(view.queue_table(items), hide_index=True, width="stretch", height=min(38 + 35 * len(items), 300))
st.selectbox("Item to review", list(by_id), format_func=lambda i: view.item_label(by_id[i]), key=view.ITEM_KEY)

k = f"q{item.adjustment.id}"
errors = st.session_state.pop(f"{k}_errors", {})
# one container for the open item: what is proposed, why, the data, and the decision, together
with st.container(border=True, key=f"{k}_item"):
    st.markdown(view.item_heading(item))
    view.item_body(item, details, stale)
    view.decision_form(actor, item, errors)
st.button("Open patient", key=f"{k}_open", on_click=view.open_patient, args=(item.patient_id,),
          help="Open this patient's dashboard.")
if st.session_state.pop(view.OPEN_DASHBOARD_KEY, False):
    try:
        st.switch_page("pages/dashboard.py")
    except StreamlitAPIException:  # the page run on its own (AppTest): the selection is what is tested
        pass
