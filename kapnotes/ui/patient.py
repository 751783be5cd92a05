"""The patient banner every patient page shows: name, MRN, DOB and loud safety flags."""

from __future__ import annotations

import streamlit as st
from sqlmodel import Session
from streamlit.errors import StreamlitAPIException

from kapnotes import patients, safety
from kapnotes.actor import Actor
from kapnotes.dosing import protocol_settings
from kapnotes.errors import PermissionDenied
from kapnotes.textsafe import md_escape

PATIENT_KEY = "patient_id"

def selected_patient_id() -> int | None:
    return st.session_state.get(PATIENT_KEY)


def select_patient(patient_id: int) -> None:
    st.session_state[PATIENT_KEY] = patient_id


def audit_open_once(session: Session, actor: Actor, patient_id: int, view: str) -> None:
    """Record opening a patient's record once per view per sign-in, not on every rerun
    (the guard empties ``st.session_state`` at each sign-in, so a new sign-in records again)."""
    seen: set = st.session_state.setdefault("_audited_opens", set())
    if (patient_id, view) not in seen:
        patients.open_record(session, actor, patient_id, view)
        seen.add((patient_id, view))


def require_patient_banner(session: Session, actor: Actor, view: str) -> int:
    """Show the banner for the selected patient, or stop with what to do next."""
    pid = selected_patient_id()
    if pid is None:
        st.info("Choose a patient on the Patients page first.")
        try:
            st.page_link("pages/patients.py", label="Go to Patients", icon=":material/group:")
        except StreamlitAPIException:  # a page run on its own (tests) has no navigation to link into
            pass
        st.stop()
    try:
        patient, flags = patients.header(session, actor, pid)
    except PermissionDenied as exc:
        st.session_state.pop(PATIENT_KEY, None)
        st.error(str(exc))
        st.stop()
    audit_open_once(session, actor, pid, view)
    st.markdown(f"### {md_escape(patient.full_name)}")  # a name is typed text: never markdown
    st.caption(md_escape(f"MRN {patient.mrn} · born {patient.date_of_birth.isoformat()} · {patient.diagnosis} · "
                         f"{patient.status}"))
    if flags:
        # the clinic's own thresholds and windows, never the defaults
        words = safety.flag_texts(protocol_settings.in_force_or_default(session))
        for flag in flags:
            st.error(words.get(flag, f"SAFETY FLAG — {flag}"), icon=":material/warning:")
    return pid
