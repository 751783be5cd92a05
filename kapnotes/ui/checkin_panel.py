"""Patient check-in widgets: the patient's phone page, and the clinician's panel on the dashboard.

The patient's page holds only the link's id in ``st.session_state`` (never the token, which
leaves the URL at once) and shows only a first name, the clinic's name and the plan. Nothing
the patient types is echoed back.
"""

from __future__ import annotations

from datetime import datetime, time
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import streamlit as st

from kapnotes import checkin, scales
from kapnotes.actor import Actor
from kapnotes.checkin_routes import CHECKIN_COOKIE
from kapnotes.config import get_settings
from kapnotes.errors import KapError, ValidationError
from kapnotes.textsafe import md_escape
from kapnotes.timeutil import fmt_local, utcnow
from kapnotes.ui.database import db
from kapnotes.ui.feedback import attempt

LINK_KEY = "checkin_link_id"  # app.py shows the check-in page to a signed-out visitor holding this
NONCE_KEY = "checkin_nonce"
RESULT_KEY = "checkin_result"
OPENED_KEY = "checkin_opened"

GENERIC_REFUSAL = ("This check-in link does not work. It may have expired, or your clinic may have ended it. "
                   "Please contact your clinic for a new link.")

FIELD_WORDS = {
    "taken_at": "When you took it", "dose_mg": "Dose", "minutes_held": "Minutes in the mouth",
    "administration": "Spat or swallowed", "anxiety_before": "Anxiety before", "anxiety_after": "Anxiety after",
    "dissociation": "Spaced-out", "nausea": "Nausea", "vomited": "Vomited", "bp": "Blood pressure",
    "bp_systolic": "Blood pressure", "bp_diastolic": "Blood pressure", "heart_rate": "Pulse",
    "side_effects": "Side effects", "note": "Your note", "gad7": "First questionnaire",
    "phq9": "Second questionnaire", "_": "Check-in",
}

# Large touch targets on a phone (WCAG 2.5.5 asks 44 px); nothing else is restyled.
_PHONE_CSS = """<style>
[data-testid="stRadio"] label, [data-testid="stCheckbox"] label { min-height: 44px; align-items: center; }
[data-testid="stRadio"] div[role="radiogroup"] { gap: 0.25rem 0.9rem; }
.stButton button, [data-testid="stFormSubmitButton"] button { min-height: 48px; width: 100%; font-size: 1.05rem; }
</style>"""


def _client_key() -> str:
    try:
        headers = dict(st.context.headers)
        ip = st.context.ip_address
    except Exception:  # AppTest has no request
        headers, ip = {}, None
    return checkin.client_key(headers, ip)


def remember_cookie_link() -> None:
    """A link that arrived as the HttpOnly cookie (``GET /checkin?t=`` set it,
    kapnotes.checkin_routes): keep its id for this browser session, as ``?t=`` would."""
    try:
        cookie = st.context.cookies.get(CHECKIN_COOKIE)
    except Exception:  # AppTest has no request
        cookie = None
    if isinstance(cookie, str) and cookie and "t" not in st.query_params and st.session_state.get(LINK_KEY) is None:
        with db() as session:
            link = checkin.resolve(session, cookie)  # None when revoked or expired: the page refuses
            st.session_state[LINK_KEY] = link.id if link is not None else None


def _refuse() -> None:
    st.title("Check-in")
    st.error(GENERIC_REFUSAL)
    st.stop()


def _link_from_request():
    """Validate ``?t=`` once (rate-limited per IP), keep only the link id, clear the URL."""
    token = st.query_params.get("t")
    if token is not None:
        st.query_params.clear()  # the secret leaves the address bar and the history at once
        key = _client_key()
        if checkin.LIMITER.blocked(key):
            st.session_state.pop(LINK_KEY, None)
            _refuse()
        with db() as session:
            link = checkin.resolve(session, token)
            if link is not None:
                checkin.note_opened(session, link)
                link_id = link.id
        if link is None:
            checkin.LIMITER.fail(key)
            st.session_state.pop(LINK_KEY, None)
            _refuse()
        for k in (NONCE_KEY, RESULT_KEY):
            st.session_state.pop(k, None)
        st.session_state[LINK_KEY] = link_id
    link_id = st.session_state.get(LINK_KEY)
    with db() as session:
        link = checkin.live_link(session, link_id)
        view = checkin.patient_view(session, link) if link is not None else None
    if link is None:
        st.session_state.pop(LINK_KEY, None)
        _refuse()
    return link.id, view


def _patient_tz() -> ZoneInfo:
    try:
        name = st.context.timezone
        if name:
            return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, Exception):
        pass
    return get_settings().tz


def crisis_box(crisis_line: str) -> None:
    st.error(
        "**If you are having thoughts of hurting yourself, please reach out now.**  \n"
        f"{md_escape(crisis_line)}. If you are in danger right now, call 911 or go to the nearest emergency room.  \n"
        "Your care team will see your answers and contact you.",
        icon=":material/support:",
    )


def patient_page() -> None:
    """The whole check-in page (pages/checkin.py calls only this)."""
    try:
        st.set_page_config(page_title="Check-in", layout="centered", initial_sidebar_state="collapsed")
    except Exception:  # noqa: BLE001 - an older Streamlit allows one call per run only
        pass
    link_id, view = _link_from_request()
    st.html(_PHONE_CSS)
    st.caption(md_escape(view.clinic_name))
    st.title(f"Hello {md_escape(view.first_name)}" if view.first_name else "Hello")

    result = st.session_state.get(RESULT_KEY)
    if result is not None:
        st.success("Thank you. Your check-in was sent to your care team.", icon=":material/check_circle:")
        if result.get("crisis"):
            crisis_box(view.crisis_line)
        if st.button("Send another check-in", key="checkin_again"):
            st.session_state.pop(RESULT_KEY, None)
            st.session_state.pop(NONCE_KEY, None)
            st.rerun()
        return

    st.write("Please tell us about your last dose. It takes about two minutes.")
    nonce = st.session_state.setdefault(NONCE_KEY, checkin.new_nonce())
    plan = view.plan
    tz = _patient_tz()
    now_local = utcnow().astimezone(tz)
    with st.form("checkin_form", clear_on_submit=False, enter_to_submit=False):
        st.subheader("Your dose")
        day = st.date_input("Day you took it", value=now_local.date(), max_value=now_local.date(), key="ck_day",
                            format="YYYY-MM-DD")
        at = st.time_input("Time you took it", value=now_local.time().replace(second=0, microsecond=0),
                           step=300, key="ck_time")
        if plan is not None:
            st.write(f"Your planned dose is {plan.dose_mg:g} mg.")
        other = st.number_input("If you took a different dose, how many mg? (leave empty if you took your planned "
                                "dose)" if plan is not None else "How many mg did you take?",
                                value=None, step=1.0, format="%g", key="ck_dose")
        confirm = st.checkbox("I confirm I took this different dose", key="ck_dose_confirm")
        minutes = st.number_input("How many minutes did you keep it in your mouth?", value=None, step=1,
                                  key="ck_minutes")
        spit = st.radio("Then did you spit it out or swallow it?", ["Spit it out", "Swallowed it"], index=None,
                        horizontal=True, key="ck_spit")
        st.subheader("How it felt")
        ten = list(range(11))
        before = st.radio("Anxiety before the dose (0 = none, 10 = worst)", ten, index=None, horizontal=True,
                          key="ck_anx_before")
        after = st.radio("Anxiety after the dose (0 = none, 10 = worst)", ten, index=None, horizontal=True,
                         key="ck_anx_after")
        spaced = st.radio("How spaced-out or unreal did you feel? (0 = not at all, 10 = completely)", ten,
                          index=None, horizontal=True, key="ck_spaced")
        nausea = st.radio("Nausea (feeling sick to your stomach)", list(checkin.NAUSEA_WORDS), index=None,
                          horizontal=True, key="ck_nausea")
        vomited = st.checkbox("I vomited (threw up)", key="ck_vomited")
        effects = st.multiselect("Did you have any of these? (choose all that apply)", list(checkin.SIDE_EFFECTS),
                                 key="ck_effects", placeholder="Choose any that happened")
        st.subheader("Blood pressure and pulse (if you measured them)")
        sys_ = st.number_input("Blood pressure, top number", value=None, step=1, key="ck_sys")
        dia = st.number_input("Blood pressure, bottom number", value=None, step=1, key="ck_dia")
        pulse = st.number_input("Pulse (beats a minute)", value=None, step=1, key="ck_pulse")
        note = st.text_area("Anything else you want your care team to know? (optional)", max_chars=checkin.NOTE_MAX,
                            key="ck_note")
        answers: dict[str, list | None] = {"gad7": None, "phq9": None}
        for name, scale, due in (("gad7", scales.GAD7, view.ask_gad7), ("phq9", scales.PHQ9, view.ask_phq9)):
            if not due:
                continue
            st.subheader("How you have been feeling" if name == "gad7" else "A few more questions")
            st.write(scales.STEM)
            picked = []
            for i, text in enumerate(scale.items, start=1):
                choice = st.radio(f"{i}. {text}", scales.ANSWERS, index=None, key=f"ck_{name}_{i}")
                picked.append(None if choice is None else scales.ANSWERS.index(choice))
            answers[name] = picked
        sent = st.form_submit_button("Send my check-in", type="primary")
    st.caption("Your answers go to your care team at the clinic. This page does not show your history.")
    if not sent:
        return
    taken = None
    if day is not None and at is not None:
        taken = datetime.combine(day, time(at.hour, at.minute), tz)
    data = checkin.CheckinInput(
        taken_at=taken, dose_mg=None if other is None else float(other), dose_confirmed=confirm,
        minutes_held=None if minutes is None else _whole(minutes),
        administration={"Spit it out": "spit", "Swallowed it": "swallow"}.get(spit),
        anxiety_before=before, anxiety_after=after, dissociation=spaced,
        nausea=None if nausea is None else checkin.NAUSEA_WORDS.index(nausea), vomited=bool(vomited),
        bp_systolic=_whole(sys_), bp_diastolic=_whole(dia), heart_rate=_whole(pulse), side_effects=list(effects),
        note=note or None, gad7=answers["gad7"], phq9=answers["phq9"],
    )
    try:
        result = _submit(link_id, nonce, data)
    except ValidationError as exc:
        st.error("Please check these answers; nothing was sent yet.")
        for fieldname, message in exc.errors.items():  # our own plain words; nothing typed is echoed
            st.error(f"**{FIELD_WORDS.get(fieldname, 'Answer')}**: {md_escape(message)}")
        return
    except KapError:
        _refuse()
    st.session_state[RESULT_KEY] = {"crisis": result.crisis}
    st.session_state.pop(NONCE_KEY, None)
    st.rerun()


def _whole(value):
    """A number input's value as an int when whole; otherwise as given (then refused in plain words)."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def _submit(link_id: int, nonce: str, data: checkin.CheckinInput) -> checkin.CheckinResult:
    try:
        with db() as session:
            return checkin.submit(session, link_id, nonce, data)
    except checkin.AlreadySent:  # a concurrent double tap stored it: read that result
        with db() as session:
            return checkin.submit(session, link_id, nonce, data)


# --- the clinician's panel (patient dashboard) --------------------------------------------------------


def _base_url() -> str:
    try:
        parts = urlsplit(st.context.url or "")
    except Exception:  # noqa: BLE001 - AppTest has no request
        parts = None
    origin = f"{parts.scheme}://{parts.netloc}" if parts and parts.netloc else "http://localhost:8501"
    path = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"{origin}/{path}" if path else origin


def render(actor: Actor, patient_id: int) -> None:
    """Create a link (its address and the handout shown once), list links with last use, end links."""
    settings = get_settings()
    tz = settings.tz
    st.subheader("Check-in link")
    st.caption("The patient reports each at-home dose (and the GAD-7 and PHQ-9 when due) from their phone, "
               "without an account. Entries arrive in the dose log as patient-reported.")
    with st.form("ck_create", border=False):
        c1, c2 = st.columns(2)
        days = c1.number_input("Valid for (days)", min_value=1, max_value=checkin.MAX_DAYS,
                               value=settings.checkin_days, step=1, key="ck_days")
        ask = c2.checkbox("Ask for the GAD-7 and PHQ-9 at the next check-in", key="ck_ask_scales")
        create = st.form_submit_button("Create a check-in link", icon=":material/add_link:")
    if create:
        with attempt() as done:
            with db() as session:
                link, token = checkin.create_link(session, actor, patient_id, int(days), ask_scales=ask)
                url = checkin.link_url(_base_url(), token)
                pdf = checkin.handout_pdf(session, actor, link, url)
        if done:
            st.success("Link created. It is shown only now: give the patient the handout or copy the link.")
            st.code(url, language=None)
            st.download_button("Download the patient handout (PDF)", data=pdf, file_name="checkin-handout.pdf",
                               mime="application/pdf", key="ck_handout", icon=":material/download:",
                               type="primary", on_click="ignore")
    with db() as session:
        links = checkin.list_links(session, actor, patient_id)
        last = checkin.last_patient_dose(session, actor, patient_id)
    if last is not None:
        st.write(f"Latest patient-reported dose: {last.dose_mg:g} mg taken {fmt_local(last.taken_at, tz)} "
                 "(see the dose log).")
    if not links:
        st.info("No check-in link yet.")
        return
    now = utcnow()
    for link in links:
        status = checkin.link_status(link, now)
        cols = st.columns([4, 1])
        cols[0].write(
            f"Created {fmt_local(link.created_at, tz)} · expires {fmt_local(link.expires_at, tz, False)} · "
            f"{status} · last used {fmt_local(link.last_used_at, tz) if link.last_used_at else 'never'}"
            f" · {link.use_count} check-in{'s' if link.use_count != 1 else ''}")
        if status == "active" and cols[1].button("End link", key=f"ck_revoke_{link.id}"):
            with db() as session:
                checkin.revoke_link(session, actor, link.id)
            st.session_state["ck_revoked_notice"] = True
            st.rerun()
    if st.session_state.pop("ck_revoked_notice", False):
        st.success("The link was ended; it no longer opens the check-in.")
