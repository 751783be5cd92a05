"""Session notes: the patient's timeline (filter by type and status), full-text search over the
signed notes of one's own patients, and the note viewer with its addenda.

Prescribers see signed notes read-only; drafts stay with their author.
"""

import streamlit as st

from kapnotes import notes
from kapnotes.config import get_settings
from kapnotes.models import NoteStatus, Role
from kapnotes.notes.templates import TEMPLATES
from kapnotes.ui.database import db
from kapnotes.ui.feedback import attempt
from kapnotes.ui.guard import require_user
from kapnotes.ui.note_view import goto, render_note
from kapnotes.ui.patient import require_patient_banner, select_patient
from kapnotes.ui.row_table import table_rows

VIEW_KEY = "view_note_id"
EDIT_KEY = "edit_note_id"
NOTICE_KEY = "note_notice"
PAGE_SIZE = 25

actor = require_user("therapist", "prescriber")
tz = get_settings().tz
is_therapist = actor.role == Role.therapist.value

with db() as session:
    pid = require_patient_banner(session, actor, "notes")


def _view(note_id: int, patient_id: int | None = None) -> None:
    if patient_id is not None:
        select_patient(patient_id)
    st.session_state[VIEW_KEY] = note_id


def _back() -> None:
    st.session_state.pop(VIEW_KEY, None)


def note_actions(note) -> None:
    """Buttons other features add to a signed note in the viewer (e.g. its PDF)."""
    # --- note actions from other features ---
    from kapnotes.ui.export_buttons import note_pdf_button; note_pdf_button(actor, note.id)  # noqa: E702, I001
    return None


def viewer(note_id: int) -> None:
    st.button("← Back to all notes", key="back_to_timeline", on_click=_back)
    if not render_note(actor, note_id, tz, pid, notice=st.session_state.pop(NOTICE_KEY, None),
                       actions=note_actions):
        _back()
        st.button("Show all notes", key="show_all_notes")


def search_panel() -> None:
    with st.expander("Search signed notes of all your patients", icon=":material/search:"):
        query = st.text_input("Search words", key="note_search",
                              help="Finds signed notes containing all the words, in any field or the free text.")
        if query.strip():
            hits = []
            with attempt(), db() as s:
                hits = notes.search(s, actor, query)
            if not hits:
                st.info("No signed notes match.")
            for h in hits:
                c = st.columns([2, 2, 2, 5, 1], vertical_alignment="center")
                c[0].text(h.mrn)
                c[1].text(h.session_date.isoformat())
                c[2].text(TEMPLATES[h.note_type].title)
                c[3].text(h.snippet)
                c[4].button("Open", key=f"hit_{h.note_id}", on_click=_view, args=(h.note_id, h.patient_id))


def timeline(patient_id: int) -> None:
    st.title("Session notes")
    if is_therapist:
        if st.button("New note", key="new_note", type="primary", icon=":material/edit_note:"):
            st.session_state.pop(EDIT_KEY, None)
            goto("pages/note_editor.py")
    else:
        st.caption("Signed notes of your patients, read-only. Drafts stay with their author.")
    search_panel()
    f1, f2 = st.columns(2)
    types = f1.multiselect("Note type", list(TEMPLATES), format_func=lambda t: TEMPLATES[t].title, key="filter_types")
    status_options = [NoteStatus.signed.value, NoteStatus.draft.value] if is_therapist else [NoteStatus.signed.value]
    statuses = f2.multiselect("Status", status_options, key="filter_status")
    with db() as s:
        rows = notes.timeline(s, actor, patient_id, note_types=types or None, statuses=statuses or None)
    if not rows:
        if types or statuses:
            st.info("No notes match these filters.")
        else:
            st.info("No notes yet." + (" Start one with **New note**." if is_therapist else ""))
        return
    shown = st.session_state.get("timeline_shown", PAGE_SIZE)
    st.caption(f"{len(rows)} note{'s' if len(rows) != 1 else ''}, newest first.")
    for r, c in table_rows([2, 3, 2, 3, 2, 1], ["Date", "Type", "Status", "Author", "Addenda", ""], rows[:shown]):
        c[0].text(r.session_date.isoformat())
        c[1].text(TEMPLATES[r.note_type].title + (" (carried over)" if r.carried_over else ""))
        c[2].markdown(":green-badge[signed]" if r.status == NoteStatus.signed else ":orange-badge[draft]")
        c[3].text(r.author_name)
        c[4].text(str(r.addenda) if r.addenda else "—")
        c[5].button("Open", key=f"open_note_{r.id}", on_click=_view, args=(r.id,))
    if len(rows) > shown:
        if st.button(f"Show {min(PAGE_SIZE, len(rows) - shown)} more", key="timeline_more"):
            st.session_state["timeline_shown"] = shown + PAGE_SIZE
            st.rerun()


view_id = st.session_state.get(VIEW_KEY)
if view_id is not None:
    viewer(view_id)
else:
    timeline(pid)
