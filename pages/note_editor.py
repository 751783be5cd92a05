"""Write a session note: start one (blank or from the last note), autosave while typing, sign.

The draft is saved on every rerun whose content differs from the stored draft; text fields
commit after a short pause in typing and when the page is hidden (kapnotes/ui/components),
so closing the tab loses nothing. The state machine is kapnotes/ui/note_editor_state.py.
"""

import streamlit as st

from kapnotes import notes
from kapnotes.config import get_settings
from kapnotes.errors import KapError, PermissionDenied
from kapnotes.models import NoteStatus, NoteType
from kapnotes.notes.templates import TEMPLATES, template
from kapnotes.timeutil import fmt_local, to_local
from kapnotes.ui import note_editor_state as es
from kapnotes.ui import note_form as nf
from kapnotes.ui.components.autosave_text import autosave_bridge
from kapnotes.ui.database import db
from kapnotes.ui.feedback import show_error
from kapnotes.ui.guard import require_user
from kapnotes.ui.patient import require_patient_banner

EDIT_KEY = "edit_note_id"
NOTICE_KEY = "note_notice"

actor = require_user("therapist")
tz = get_settings().tz

with db() as session:
    pid = require_patient_banner(session, actor, "note_editor")


def _set_action(note_id: int, action: str) -> None:
    st.session_state[nf.skey(note_id, "action")] = action


def _open(note_id: int) -> None:
    st.session_state[EDIT_KEY] = note_id


def _close() -> None:
    st.session_state.pop(EDIT_KEY, None)


def new_note_form(patient_id: int) -> None:
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
            c[3].button("Continue", key=f"continue_{d.id}", on_click=_open, args=(d.id,))
    st.subheader("Start a note")
    note_type = st.selectbox("Note type", list(TEMPLATES), format_func=lambda t: TEMPLATES[t].title,
                             key="new_note_type")
    with db() as s:
        last = notes.last_signed_note(s, actor, patient_id, note_type)
    c1, c2 = st.columns(2)
    start = c1.button("Start note", type="primary", key="start_note")
    carry = c2.button("Load last note", key="load_last_note", disabled=last is None,
                      help="Start from the previous signed note of this type: intention, homework and plan carry over.")
    if last is None:
        st.caption(f"No earlier signed {TEMPLATES[note_type].title.lower()} note to carry over.")
    else:
        st.caption(f"Last signed {TEMPLATES[note_type].title.lower()} note: {last.session_date.isoformat()}.")
    if start or carry:
        try:
            with db() as s:
                note = notes.create_draft(s, actor, patient_id, note_type, carry_over=bool(carry))
        except KapError as exc:
            show_error(exc)
        else:
            _open(note.id)
            st.rerun()


note_id = st.session_state.get(EDIT_KEY)
if note_id is None:
    new_note_form(pid)
    st.stop()

# --- the editor -----------------------------------------------------------------------------
with db() as session:
    try:
        note = nf.read_once(session, actor, note_id)
    except PermissionDenied as exc:
        note, denied = None, exc
if note is None:
    _close()
    st.error(str(denied))
    st.stop()
if note.patient_id != pid:  # another patient was chosen meanwhile: the draft stays in "My drafts"
    _close()
    st.rerun()
if note.status == NoteStatus.signed:  # signed (here or elsewhere): the read-only view, never the form
    st.button("Start another note", key="start_another", on_click=_close, icon=":material/add:")
    nf.render_note(actor, note.id, tz, pid, notice=st.session_state.pop(NOTICE_KEY, None))
    st.stop()
with db() as session:
    tpl = template(note.note_type)
    stored = notes.content_of(note)
    stored_version = note.version
    stored_updated = note.updated_at
    warnings = notes.warnings_for(note)
    carried = None
    if note.carried_over_from_id:
        carried = notes.get_note(session, actor, note.carried_over_from_id, audited=False).session_date
    dose_opts = notes.dose_choices(session, actor, pid) if note.note_type == NoteType.integration else None

# The page's own state for this draft (version loaded, conflict) lives in one plain dict:
# reading or writing st.session_state is a point where Streamlit may stop a run for a newer
# one, so between a commit and recording its new version there must be none.
ed_key = nf.skey(note_id, "state")
if ed_key not in st.session_state:
    st.session_state[ed_key] = {"version": stored_version, "conflict": None, "values": {}}
    nf.load_state(note_id, tpl, stored, st.session_state[ed_key]["values"])
ed: dict = st.session_state[ed_key]


def _load_saved(nid: int) -> None:
    """Conflict resolution: drop my unsaved changes and load the saved version."""
    with db() as s:
        fresh = notes.get_note(s, actor, nid, audited=False)
        fresh_type, fresh_content, fresh_version = fresh.note_type, notes.content_of(fresh), fresh.version
    state = st.session_state[nf.skey(nid, "state")]
    state.update(version=fresh_version, conflict=None)
    nf.load_state(nid, template(fresh_type), fresh_content, state["values"])


def _sync_back(saved_fields: dict, sent_fields: dict) -> None:
    """Values the service computed (e.g. days since the linked dose) go back into the widgets."""
    for spec in tpl.fields:
        if spec.name in saved_fields and saved_fields[spec.name] != sent_fields.get(spec.name):
            key = nf.fkey(note_id, spec.name)
            st.session_state[key] = ed["values"][key] = nf._to_widget(spec, saved_fields[spec.name])


mine = nf.collect(note_id, tpl, ed["values"])
ed.setdefault("confirm", None)
out = es.step(actor, note_id, ed, mine, stored, stored_version,
              st.session_state.pop(nf.skey(note_id, "action"), None), db)
errors = out.errors
if out.message:
    st.error(out.message)
if out.failure is not None:
    show_error(out.failure)
if out.signed:
    st.session_state[NOTICE_KEY] = "Note signed. It can no longer be edited; corrections are addenda."
    st.rerun()
if out.discarded:
    _close()
    st.toast("Draft discarded.")
    st.rerun()
if out.saved is not None:
    stored_version, stored_updated = out.saved.version, out.saved.updated_at
    warnings = notes.warnings_for(out.saved)
    _sync_back(out.saved.fields, mine["fields"])

st.title(f"{tpl.title} note")
head_l, head_r = st.columns([3, 1], vertical_alignment="center")
head_l.caption("Draft · saved automatically while you type (after a short pause) and on every change")
head_r.markdown(f":material/cloud_done: Saved {to_local(stored_updated, tz).strftime('%H:%M')}",
                help=f"Last saved {fmt_local(stored_updated, tz)}")
autosave_bridge(prefix=f"nf{note_id}_")
if carried is not None:
    st.info(f"Carried over from the signed note of {carried.isoformat()}: intention, homework and plan. "
            "Review them before signing.", icon=":material/content_copy:")

if ed["conflict"] is not None:
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
            nf.render_readonly(tpl, content["fields"], content["free_text"])
    b1, b2 = st.columns(2)
    b1.button(f"Keep my version (replace version {their_version})", key="conflict_keep_mine",
              on_click=_set_action, args=(note_id, "keep_mine"))
    b2.button("Discard my changes and load the saved version", key="conflict_load_saved",
              on_click=_load_saved, args=(note_id,))
    st.divider()

nf.render_header(note_id, errors, dose_opts)
nf.render_fields(note_id, tpl, errors, warnings)

c1, c2, c3, c4 = st.columns(4)
if ed["confirm"] is not None:
    dose_label = dict(dose_opts or []).get(mine.get("integrates_dose_id"))
    with st.container(border=True, key="sign_confirm"):
        st.markdown("**Sign this note?** Once signed it cannot be edited; corrections become addenda.")
        st.text(es.sign_summary(tpl.title, mine, dose_label))
        y, n = st.columns(2)
        y.button("Yes, sign", key="confirm_sign", type="primary", on_click=_set_action, args=(note_id, es.SIGN))
        n.button("Not yet", key="cancel_sign", on_click=_set_action, args=(note_id, es.CANCEL))

c1.button("Save draft", key="save_draft", help="Drafts also save while you type.")
c2.button("Sign note", key="sign_note", type="primary", on_click=_set_action, args=(note_id, es.REVIEW),
          help="Checks the times, shows a summary to confirm, then locks the note with your signature.",
          disabled=ed["confirm"] is not None)
c3.button("Close", key="close_editor", on_click=_close, help="The draft stays in My drafts.")
with c4.popover("Discard draft"):
    st.write("Delete this draft? This cannot be undone.")
    st.button("Yes, discard this draft", key="confirm_discard", on_click=_set_action, args=(note_id, "discard"))
