"""Administration: care teams and which team each patient belongs to (demographics only)."""

import pandas as pd
import streamlit as st

from kapnotes import admin
from kapnotes.ui.database import db
from kapnotes.ui.feedback import save_and_rerun
from kapnotes.ui.guard import require_user

actor = require_user("admin")
st.title("Care teams")

search = st.text_input("Find a team", placeholder="Team name")
with db() as session:
    teams = admin.list_teams(session, actor, search, limit=admin.PAGE_SIZE)
    total = admin.count_teams(session, actor, search)

st.dataframe(
    pd.DataFrame(
        [
            {"Team": t.name, "Members": ", ".join(f"{u} ({r})" for _, u, r in t.members), "Patients": t.patient_count}
            for t in teams
        ]
    ),
    hide_index=True,
    width="stretch",
)
if total > len(teams):
    st.caption(f"Showing {len(teams)} of {total} teams; search to narrow the list.")

with st.form("new_team", clear_on_submit=True):
    name = st.text_input("New team name")
    if st.form_submit_button("Create team"):
        save_and_rerun(lambda session: admin.create_team(session, actor, name), "Team created")

if teams:
    st.subheader("Members")
    team = st.selectbox("Team", teams, format_func=lambda t: t.name)
    who = st.text_input("Find a clinician", placeholder="Username or name")
    with db() as session:
        clinicians = admin.user_options(session, actor, who, limit=admin.PAGE_SIZE, clinicians_only=True)
    member = st.selectbox("Clinician", clinicians, format_func=lambda u: f"{u[1]} ({u[2]})")
    c1, c2 = st.columns(2)
    if c1.button("Add to team") and member:
        save_and_rerun(lambda session: admin.add_member(session, actor, team.id, member[0]))
    if c2.button("Remove from team") and member:
        save_and_rerun(lambda session: admin.remove_member(session, actor, team.id, member[0]))

    st.subheader("Assign a patient")
    # Least privilege: the administrator places a patient by MRN (from the intake paperwork) and
    # never sees a name here, so the audit log's patient ids cannot be joined to names.
    find = st.text_input("Patient MRN", help="The full MRN; names are not shown to administrators.")
    found = None
    if find.strip():
        with db() as session:
            found = admin.find_patient_by_mrn(session, actor, find)
    directory = [found] if found else []
    patient = st.selectbox("Patient", directory, format_func=lambda p: f"MRN {p.mrn}", index=None,
                           placeholder="Choose the patient" if directory else "Type the full MRN above first")
    target = st.selectbox("New care team", teams, format_func=lambda t: t.name, key="assign_team")
    if st.button("Assign", disabled=patient is None):
        save_and_rerun(lambda session: admin.assign_team(session, actor, patient.id, target.id), "Care team changed")
