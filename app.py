"""KAPNotes entry point: page config, the sign-in gate, navigation by role and the sidebar notices."""

from pathlib import Path

import streamlit as st

from kapnotes.ui import notices
from kapnotes.ui.guard import current_actor, sign_in_form

# A local icon file: a ":material/...:" page icon makes the browser fetch it from a font CDN (issue 20).
st.set_page_config(page_title="KAPNotes", page_icon=str(Path(__file__).parent / "kapnotes" / "assets" / "favicon.png"),
                   layout="wide")

# (file, title, icon, roles, section). Every page also checks the user itself.
PAGES = [
    ("pages/patients.py", "Patients", ":material/group:", ("therapist", "prescriber"), "Patients"),
    ("pages/dashboard.py", "Patient dashboard", ":material/monitoring:", ("therapist", "prescriber"), "Patients"),
    ("pages/dose_log.py", "Dose log", ":material/medication:", ("therapist", "prescriber"), "Patients"),
    ("pages/import_doses.py", "Import doses", ":material/upload_file:", ("therapist", "prescriber"), "Patients"),
    ("pages/measures.py", "Measures", ":material/checklist:", ("therapist", "prescriber"), "Patients"),
    ("pages/proposals.py", "Suggestions and proposals", ":material/rule:", ("therapist", "prescriber"), "Patients"),
    ("pages/review_queue.py", "Review queue", ":material/fact_check:", ("prescriber",), "Patients"),
    ("pages/exports.py", "Exports (PDF)", ":material/picture_as_pdf:", ("therapist", "prescriber"), "Patients"),
    ("pages/notes.py", "Session notes", ":material/clinical_notes:", ("therapist", "prescriber"), "Notes"),
    ("pages/note_editor.py", "Write note", ":material/edit_note:", ("therapist",), "Notes"),
    ("pages/my_drafts.py", "My drafts", ":material/draft:", ("therapist",), "Notes"),
    ("pages/process_notes.py", "Private process notes", ":material/lock:", ("therapist",), "Notes"),
    ("pages/admin_users.py", "Users", ":material/manage_accounts:", ("admin",), "Administration"),
    ("pages/admin_teams.py", "Care teams", ":material/diversity_3:", ("admin",), "Administration"),
    ("pages/audit_log.py", "Audit log", ":material/policy:", ("admin", "auditor"), "Administration"),
    ("pages/protocol_admin.py", "Protocol", ":material/tune:", ("admin",), "Administration"),
    ("pages/account.py", "My account", ":material/account_circle:", ("therapist", "prescriber", "admin"), "Account"),
]


def _navigation(role: str) -> list:
    # A flat list: Streamlit's sectioned sidebar puts headings inside its <ul>, which
    # axe-core reports as invalid list markup (WCAG 1.3.1). The order keeps sections together.
    return [st.Page(path, title=title, icon=icon) for path, title, icon, roles, _section in PAGES if role in roles]


def _checkin_visitor() -> bool:
    """A signed-out visitor with ``?t=`` (AppTest), a remembered link, or a check-in cookie
    (set by GET /checkin; a revoked one still lands on the check-in page, which refuses it)."""
    if "t" in st.query_params or st.session_state.get("checkin_link_id") is not None:
        return True
    try:
        cookie = st.context.cookies.get("kapnotes_checkin")
    except Exception:  # AppTest has no request
        return False
    return isinstance(cookie, str) and bool(cookie)  # (AppTest's context is a mock object)


actor = current_actor()
if actor is None and _checkin_visitor():
    st.navigation([st.Page("pages/checkin.py", title="Check-in")], position="hidden").run()  # patient check-in
elif actor is None:
    st.navigation([st.Page(sign_in_form, title="Sign in", icon=":material/login:")], position="hidden").run()
else:
    page = st.navigation(_navigation(actor.role))
    notices.sidebar(actor)  # urgent items (prescriber), new decisions (therapist): on every page
    page.run()
