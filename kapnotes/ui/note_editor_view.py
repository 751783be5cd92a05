"""The note editor's page wiring: start a note, open a draft, autosave, conflicts, sign, discard.

``pages/note_editor.py`` only picks which of the two views to show: ``new_note_form`` (no
draft open) or ``editor``. The decisions (what this run saves, signs or discards) are the state
machine's (``note_editor_state.step``); this module draws the form around it and acts on the
``Outcome``. Widget keys are ``note_form``'s, so tests and the browser find the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import streamlit as st

from kapnotes import notes
from kapnotes.models import NoteStatus, NoteType, SessionNote
from kapnotes.notes.templates import TEMPLATES, Template, template
from kapnotes.timeutil import fmt_local, to_local
from kapnotes.ui import note_editor_state as es
from kapnotes.ui import note_form as nf
from kapnotes.ui.components.autosave_text import autosave_bridge
from kapnotes.ui.database import db
from kapnotes.ui.feedback import attempt, show_error
from kapnotes.ui.note_view import read_once, render_note

EDIT_KEY = "edit_note_id"
NOTICE_KEY = "note_notice"
SIGNED_NOTICE = "Note signed. It can no longer be edited; corrections are addenda."


def set_action(note_id: int, action: str) -> None:
    st.session_state[nf.skey(note_id, "action")] = action


def open_note(note_id: int) -> None:
    st.session_state[EDIT_KEY] = note_id


def close() -> None:
    st.session_state.pop(EDIT_KEY, None)


# --- no draft open: continue one, or start one ------------------------------------------------


def new_note_form(actor, patient_id: int, tz) -> None:
    st.title("New session note")
    with db() as s:
        drafts = [d for d in notes.my_drafts(s, actor) if d.patient_id == patient_id]
    if drafts:
        st.subheader("Your drafts for this patient")
        for d in drafts:
            c = st.columns([3, 2, 3, 2], vertical_alignment="center")
            c[0].text(TEMPLATES[d.note_type].title)
            c[1].text(d.session_date.isoformat())
            c[2].caption(f"Last saved {fmt_local(d.updated_at, tz)}")
            c[3].button("Continue", key=f"continue_{d.id}", on_click=open_note, args=(d.id,))
    st.subheader("Start a note")
    note_type = st.selectbox("Note type", list(TEMPLATES), format_func=lambda t: TEMPLATES[t].title,
                             key="new_note_type")
    with db() as s:
        last = notes.last_signed_note(s, actor, patient_id, note_type)
    c1, c2 = st.columns(2)
    start = c1.button("Start note", type="primary", key="start_note")
    carry = c2.button("Load last note", key="load_last_note", disabled=last is None,
                      help="Start from the previous signed note of this type: intention, homework and plan carry over.")
    title = TEMPLATES[note_type].title.lower()
    if last is None:
        st.caption(f"No earlier signed {title} note to carry over.")
    else:
        st.caption(f"Last signed {title} note: {last.session_date.isoformat()}.")
    if start or carry:
        with attempt() as done, db() as s:
            note_id = notes.create_draft(s, actor, patient_id, note_type, carry_over=bool(carry)).id
        if done:
            open_note(note_id)
            st.rerun()


# --- a draft open --------------------------------------------------------------------------------


@dataclass
class Draft:
    """The draft as stored when this run began (updated when this run saves it)."""

    note_id: int
    tpl: Template
    content: dict
    version: int
    updated: datetime
    warnings: dict[str, str]
    carried: date | None
    dose_opts: list[tuple[int, str]] | None


def editor(actor, note_id: int, patient_id: int, tz) -> None:
    """The draft's form; a signed note shows read-only, a refused or other patient's one closes."""
    note = _opened(actor, note_id, patient_id, tz)
    draft = _draft(actor, note, patient_id)
    ed = _page_state(draft)
    mine = nf.collect(note_id, draft.tpl, ed["values"])
    ed.setdefault("confirm", None)
    out = es.step(actor, note_id, ed, mine, draft.content, draft.version,
                  st.session_state.pop(nf.skey(note_id, "action"), None), db)
    _act_on(out, draft, ed, mine)
    _heading(draft, tz)
    if ed["conflict"] is not None:
        _conflict(actor, draft, ed, mine, tz)
    nf.render_header(note_id, out.errors, draft.dose_opts)
    nf.render_fields(note_id, draft.tpl, out.errors, draft.warnings)
    _buttons(draft, ed, mine)


def _opened(actor, note_id: int, patient_id: int, tz) -> SessionNote:
    """The note to edit; anything else ends this run (refused, another patient's, or signed)."""
    note = None
    with attempt(), db() as session:
        note = read_once(session, actor, note_id)
    if note is None:
        close()
        st.stop()
    if note.patient_id != patient_id:  # another patient was chosen meanwhile: the draft stays in "My drafts"
        close()
        st.rerun()
    if note.status == NoteStatus.signed:  # signed (here or elsewhere): the read-only view, never the form
        st.button("Start another note", key="start_another", on_click=close, icon=":material/add:")
        render_note(actor, note.id, tz, patient_id, notice=st.session_state.pop(NOTICE_KEY, None))
        st.stop()
    return note


def _draft(actor, note: SessionNote, patient_id: int) -> Draft:
    with db() as session:
        carried = None
        if note.carried_over_from_id:
            carried = notes.get_note(session, actor, note.carried_over_from_id, audited=False).session_date
        dose_opts = notes.dose_choices(session, actor, patient_id) if note.note_type == NoteType.integration else None
        return Draft(note.id, template(note.note_type), notes.content_of(note), note.version, note.updated_at,
                     notes.warnings_for(note), carried, dose_opts)


def _page_state(draft: Draft) -> dict:
    """The page's own state for this draft (version loaded, conflict, confirmation) in one plain dict:
    reading or writing st.session_state is a point where Streamlit may stop a run for a newer one,
    so between a commit and recording its new version there must be none."""
    key = nf.skey(draft.note_id, "state")
    if key not in st.session_state:
        st.session_state[key] = {"version": draft.version, "conflict": None, "values": {}}
        nf.load_state(draft.note_id, draft.tpl, draft.content, st.session_state[key]["values"])
    return st.session_state[key]


def _act_on(out: es.Outcome, draft: Draft, ed: dict, mine: dict) -> None:
    """Show what this run's step did; signing or discarding leaves the form."""
    if out.message:
        st.error(out.message)
    if out.failure is not None:
        show_error(out.failure)
    if out.signed:
        st.session_state[NOTICE_KEY] = SIGNED_NOTICE
        st.rerun()
    if out.discarded:
        close()
        st.toast("Draft discarded.")
        st.rerun()
    if out.saved is not None:
        draft.version, draft.updated = out.saved.version, out.saved.updated_at
        draft.warnings = notes.warnings_for(out.saved)
        _sync_back(draft, ed, out.saved.fields, mine["fields"])


def _sync_back(draft: Draft, ed: dict, saved_fields: dict, sent_fields: dict) -> None:
    """Values the service computed (e.g. days since the linked dose) go back into the widgets."""
    for spec in draft.tpl.fields:
        if spec.name in saved_fields and saved_fields[spec.name] != sent_fields.get(spec.name):
            key = nf.fkey(draft.note_id, spec.name)
            st.session_state[key] = ed["values"][key] = nf.to_widget(spec, saved_fields[spec.name])


def _heading(draft: Draft, tz) -> None:
    st.title(f"{draft.tpl.title} note")
    head_l, head_r = st.columns([3, 1], vertical_alignment="center")
    head_l.caption("Draft · saved automatically while you type (after a short pause) and on every change")
    head_r.markdown(f":material/cloud_done: Saved {to_local(draft.updated, tz).strftime('%H:%M')}",
                    help=f"Last saved {fmt_local(draft.updated, tz)}")
    autosave_bridge(prefix=f"nf{draft.note_id}_")
    if draft.carried is not None:
        st.info(f"Carried over from the signed note of {draft.carried.isoformat()}: intention, homework and plan. "
                "Review them before signing.", icon=":material/content_copy:")


# --- a conflict, and the buttons -------------------------------------------------------------------


def load_saved(actor, nid: int) -> None:
    """Conflict resolution: drop my unsaved changes and load the saved version."""
    with db() as s:
        fresh = notes.get_note(s, actor, nid, audited=False)
        fresh_type, fresh_content, fresh_version = fresh.note_type, notes.content_of(fresh), fresh.version
    state = st.session_state[nf.skey(nid, "state")]
    state.update(version=fresh_version, conflict=None)
    nf.load_state(nid, template(fresh_type), fresh_content, state["values"])


def _conflict(actor, draft: Draft, ed: dict, mine: dict, tz) -> None:
    """Both versions side by side: keep mine (saving over theirs) or load theirs."""
    note_id = draft.note_id
    with db() as s:
        theirs_note = notes.get_note(s, actor, note_id, audited=False)
        theirs = notes.content_of(theirs_note)
        their_version, their_saved = theirs_note.version, theirs_note.updated_at
    st.error(f"Conflict: this draft was saved elsewhere (version {their_version}, {fmt_local(their_saved, tz)}) "
             f"after you loaded version {ed['version']}. Nothing was overwritten. Compare and choose.",
             icon=":material/sync_problem:")
    left, right = st.columns(2)
    for col, title, content in ((left, "Your version (not saved)", mine),
                                (right, f"Saved version {their_version}", theirs)):
        with col:
            st.markdown(f"**{title}**")
            st.caption(f"{content['session_date']} · {content['start_time'] or '—'}–{content['end_time'] or '—'} · "
                       f"{nf.MODALITY_LABELS.get(content['modality'], content['modality'])}")
            nf.render_readonly(draft.tpl, content["fields"], content["free_text"])
    b1, b2 = st.columns(2)
    b1.button(f"Keep my version (replace version {their_version})", key="conflict_keep_mine",
              on_click=set_action, args=(note_id, es.KEEP_MINE))
    b2.button("Discard my changes and load the saved version", key="conflict_load_saved",
              on_click=load_saved, args=(actor, note_id))
    st.divider()


def _buttons(draft: Draft, ed: dict, mine: dict) -> None:
    """Save, sign (with its confirmation), close, discard."""
    note_id = draft.note_id
    c1, c2, c3, c4 = st.columns(4)
    if ed["confirm"] is not None:
        dose_label = dict(draft.dose_opts or []).get(mine.get("integrates_dose_id"))
        with st.container(border=True, key="sign_confirm"):
            st.markdown("**Sign this note?** Once signed it cannot be edited; corrections become addenda.")
            st.text(es.sign_summary(draft.tpl.title, mine, dose_label))
            y, n = st.columns(2)
            y.button("Yes, sign", key="confirm_sign", type="primary", on_click=set_action, args=(note_id, es.SIGN))
            n.button("Not yet", key="cancel_sign", on_click=set_action, args=(note_id, es.CANCEL))
    c1.button("Save draft", key="save_draft", help="Drafts also save while you type.")
    c2.button("Sign note", key="sign_note", type="primary", on_click=set_action, args=(note_id, es.REVIEW),
              help="Checks the times, shows a summary to confirm, then locks the note with your signature.",
              disabled=ed["confirm"] is not None)
    c3.button("Close", key="close_editor", on_click=close, help="The draft stays in My drafts.")
    with c4.popover("Discard draft"):
        st.write("Delete this draft? This cannot be undone.")
        st.button("Yes, discard this draft", key="confirm_discard", on_click=set_action, args=(note_id, es.DISCARD))
