"""Write a session note: start one (blank or from the last note), autosave while typing, sign.

The draft is saved on every rerun whose content differs from the stored draft; text fields
commit after a short pause in typing and when the page is hidden (kapnotes/ui/components),
so closing the tab loses nothing. The page wiring is kapnotes/ui/note_editor_view.py, the state
machine kapnotes/ui/note_editor_state.py.
"""

import streamlit as st

from kapnotes.config import get_settings
from kapnotes.ui import note_editor_view as view
from kapnotes.ui.database import db
from kapnotes.ui.guard import require_user
from kapnotes.ui.patient import require_patient_banner

actor = require_user("therapist")
tz = get_settings().tz

with db() as session:
    pid = require_patient_banner(session, actor, "note_editor")

note_id = st.session_state.get(view.EDIT_KEY)
if note_id is None:
    view.new_note_form(actor, pid, tz)
else:
    view.editor(actor, note_id, pid, tz)
