"""The note viewer: one note read-only, its signature check, linked dose, addenda and the
"Add addendum" form. Used by the notes page and, for a signed note, by the editor.

User text is always rendered with ``st.text`` (literally, never as Markdown).
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from kapnotes import notes, vocab
from kapnotes.models import NoteStatus, SessionNote
from kapnotes.notes.queries import NoteView
from kapnotes.notes.templates import template
from kapnotes.timeutil import fmt_local
from kapnotes.ui.database import db
from kapnotes.ui.feedback import attempt
from kapnotes.ui.note_form import MODALITY_LABELS, render_readonly

SIGNATURE_WORDS = {"ok": "signature and content hash verified",
                   "unsealed": "signed before keyed signatures: content hash only"}
SIGNATURE_MISMATCH = "SIGNATURE DOES NOT MATCH — the note was altered or its signing key is missing"
ADDENDUM_WORDS = {"ok": "", "unsealed": " · hash only"}


def read_once(session, actor, note_id: int) -> SessionNote:
    """Load a note through the service, auditing the read once per note per sign-in (not per rerun)."""
    seen: set = st.session_state.setdefault("_audited_notes", set())
    note = notes.get_note(session, actor, note_id, audited=note_id not in seen)
    seen.add(note_id)
    return note


def goto(path: str) -> None:
    """``st.switch_page``; when a page runs on its own (AppTest), the state is set and the page reruns."""
    try:
        st.switch_page(path)
    except StreamlitPageNotFoundError:
        st.rerun()


def render_note(actor, note_id: int, tz, patient_id: int, notice: str | None = None,
                actions: Callable[[SessionNote], None] | None = None) -> bool:
    """The note viewer: header, signature and hash check, carried-over notice, content, addenda and
    the "Add addendum" form. ``actions(note)`` draws extra buttons for a signed note.
    Returns False when the note is not viewable here (refused, or another patient's).
    """
    v = None
    with attempt(), db() as s:
        read_once(s, actor, note_id)
        v = notes.view_note(s, actor, note_id)
    if v is None:
        return False
    note = v.note
    if note.patient_id != patient_id:
        return False
    tpl = template(note.note_type)
    if notice:
        st.success(notice, icon=":material/verified:")
    _heading(v, tpl.title, tz)
    render_readonly(tpl, note.fields or {}, note.free_text)
    if note.status != NoteStatus.signed:
        if note.author_id == actor.id and st.button("Continue editing", key="continue_editing", type="primary"):
            st.session_state["edit_note_id"] = note.id
            st.session_state.pop("view_note_id", None)
            goto("pages/note_editor.py")
        return True
    if actions is not None:
        actions(note)
    _addenda(v, tz)
    if notes.can_add_addendum(actor, note):
        _addendum_form(actor, note.id)
    return True


def _heading(v: NoteView, title: str, tz) -> None:
    """Title, who wrote it, signature state, carried-over notice, warnings and the linked dose."""
    note = v.note
    st.header(f"{title} · {note.session_date.isoformat()}")
    times = f"{note.start_time or '—'}–{note.end_time or '—'}"
    st.caption(f"{MODALITY_LABELS.get(note.modality, note.modality)} · {times} · written by {v.author_name}")
    if note.status == NoteStatus.signed:
        check = SIGNATURE_WORDS.get(v.signature_state, SIGNATURE_MISMATCH)
        st.markdown(f":green-badge[Signed] by {v.signer_name} on {fmt_local(note.signed_at, tz)} · {check}")
        st.caption(f"SHA-256 {note.content_hash}")
    else:
        st.markdown(":orange-badge[Draft] visible to you only")
    if v.carried_over_from is not None:
        st.info(f"Intention, homework and plan were carried over from the signed note of "
                f"{v.carried_over_from.session_date.isoformat()}.", icon=":material/content_copy:")
    for message in v.warnings.values():
        st.warning(message, icon=":material/warning:")
    if v.linked_dose is not None:
        d = v.linked_dose
        label = "Dose-log entry" if note.note_type == "dosing" else "Integrates the dose of"
        st.caption(f"{label}: {fmt_local(d.taken_at, tz)} · {d.dose_mg:g} mg {vocab.formulation_word(d.formulation)} · "
                   f"{vocab.context_word(d.context)}")


def _addenda(v: NoteView, tz) -> None:
    st.subheader("Addenda")
    if not v.addenda:
        st.caption("No addenda. Corrections to a signed note are added here; the note itself never changes.")
    for i, a in enumerate(v.addenda, start=1):
        with st.container(border=True):
            ok = ADDENDUM_WORDS.get(a.state, " · SIGNATURE MISMATCH")
            st.caption(f"Addendum {i} · {a.author_name} · signed {fmt_local(a.created_at, tz)}{ok}")
            st.text(a.text)


def _addendum_form(actor, note_id: int) -> None:
    with st.form(f"addendum_{note_id}", clear_on_submit=True):
        st.markdown("**Add addendum**")
        text = st.text_area("Addendum text", key=f"addendum_text_{note_id}",
                            help="Dated and signed with your name when you add it; it cannot be edited later.")
        submitted = st.form_submit_button("Add addendum", type="primary")
    if not submitted:
        return
    with attempt() as done, db() as s:
        notes.add_addendum(s, actor, note_id, text)
    if done:
        st.toast("Addendum added and signed.")
        st.rerun()
