"""Dose log: the patient's doses as a filterable table, adherence, add, edit and void."""

from dataclasses import replace
from datetime import date, datetime, timedelta

import pandas as pd
import streamlit as st

from kapnotes import doses, vocab
from kapnotes.config import get_settings
from kapnotes.dosing.plans import active_plan
from kapnotes.errors import KapError, ValidationError
from kapnotes.textsafe import md_escape
from kapnotes.timeutil import fmt_local, utcnow
from kapnotes.ui.database import db
from kapnotes.ui.export_buttons import dose_csv_button
from kapnotes.ui.feedback import show_error
from kapnotes.ui.guard import require_user
from kapnotes.ui.patient import require_patient_banner

actor = require_user("therapist", "prescriber")
tz = get_settings().tz
TABS = ["Log", "Add a dose", "Edit or void"]
PAGE_ROWS = 50  # the log's page: readable, and the query reads only these rows

with db() as session:
    pid = require_patient_banner(session, actor, "dose_log")
    plan = active_plan(session, pid)

st.title("Dose log")
# stateful tabs: only the open tab's content runs (the forms are ~40 widgets), and the URL
# names the tab, so the dashboard can link straight to "Add a dose"
tab_log, tab_add, tab_edit = st.tabs(TABS, key="dose_tab", on_change="rerun", bind="query-params")


# Dates outside these bounds are refused by the service with a reason; narrower widget bounds
# would make the browser drop what was typed and keep the old value without a word.
WIDGET_MIN_DATE, WIDGET_MAX_DATE = date(1000, 1, 1), date(9999, 12, 31)
# Field → the words of its label, for messages that do not already name the field.
FIELD_LABELS = {"taken_at": "Date and time taken", "dose_mg": "Dose (mg)", "formulation": "Formulation",
                "administration": "Spat or swallowed", "context": "Context", "vomited": "Vomited",
                "adverse_events": "Adverse events", "notes": "Notes", "_": None}
NUMBERS = (("anxiety_before", "Anxiety before (0–10)"), ("anxiety_after", "Anxiety after (0–10)"),
           ("dissociation", "Dissociation (0–10)"), ("nausea", "Nausea (0 none – 3 severe)"),
           ("bp_systolic_pre", "Blood pressure before the dose: systolic (mmHg)"),
           ("bp_diastolic_pre", "Blood pressure before the dose: diastolic (mmHg)"),
           ("bp_systolic_post", "Blood pressure after the dose: systolic (mmHg)"),
           ("bp_diastolic_post", "Blood pressure after the dose: diastolic (mmHg)"),
           ("heart_rate", "Heart rate (bpm)"))


def field_message(name: str, message: str) -> str:
    """The message in the label's words: ``Dose (mg): …`` (messages naming their field stay as they are)."""
    label = FIELD_LABELS.get(name)
    if not label:
        return message
    if len(message) > 1 and message[1].islower():
        message = message[0].lower() + message[1:]
    return f"{label}: {message}"


def _prefill(prefix: str, initial: doses.DoseInput | None) -> None:
    """Start values, set once per form: an input the user empties or makes invalid stays empty
    (and is refused at save) instead of silently coming back as a default."""
    if st.session_state.get(f"{prefix}__filled"):
        return
    t0 = initial.taken_at.astimezone(tz) if initial else utcnow().astimezone(tz)
    st.session_state[f"{prefix}_date"] = t0.date()
    st.session_state[f"{prefix}_time"] = t0.time().replace(second=0, microsecond=0)
    dose_default = initial.dose_mg if initial else (plan.dose_mg if plan else None)
    st.session_state[f"{prefix}_dose"] = None if dose_default is None else float(dose_default)
    for name, _label in NUMBERS:
        st.session_state[f"{prefix}_{name}"] = getattr(initial, name) if initial else None
    st.session_state[f"{prefix}__filled"] = True


def _errors_at(prefix: str, *names: str) -> None:
    errors = st.session_state.get(f"{prefix}__errors") or {}
    for name in names:
        if name in errors:
            st.error(md_escape(field_message(name, errors[name])), icon=":material/error:")


def dose_form(prefix: str, initial: doses.DoseInput | None) -> tuple[doses.DoseInput | None, dict, bool]:
    """The dose fields, errors at each field; returns (input, refusals found here, confirmed)
    when the form was submitted, (None, {}, False) otherwise."""
    _prefill(prefix, initial)
    c = st.columns(3)
    with c[0]:
        day = st.date_input("Date taken", value=None, min_value=WIDGET_MIN_DATE, max_value=WIDGET_MAX_DATE,
                            key=f"{prefix}_date", format="YYYY-MM-DD")
        _errors_at(prefix, "taken_date", "taken_at")
    with c[1]:
        clock = st.time_input(f"Time taken ({tz.key})", value=None, key=f"{prefix}_time", step=300)
        _errors_at(prefix, "taken_time")
    with c[2]:
        dose_mg = st.number_input("Dose (mg)", value=None, step=25.0, key=f"{prefix}_dose")
        _errors_at(prefix, "dose_mg")
        pending = st.session_state.get(f"{prefix}__unusual")
        confirmed = False
        if pending is not None:
            confirmed = st.checkbox(f"Yes, {pending:g} mg was taken — record it", key=f"{prefix}_confirm_{pending:g}",
                                    help="A recorded dose is what was taken. The dose rules then hold the plan "
                                         "for the prescriber's review.")
    c = st.columns(3)
    form_default = initial.formulation if initial else (plan.formulation if plan else "odt")
    formulation = c[0].selectbox("Formulation", doses.FORMULATIONS, index=doses.FORMULATIONS.index(form_default)
                                 if form_default in doses.FORMULATIONS else 0, format_func=vocab.formulation_word,
                                 key=f"{prefix}_form")
    adm_options = [None, *doses.ADMINISTRATIONS]
    adm_default = initial.administration if initial else (plan.administration if plan else None)
    administration = c[1].selectbox("Spat or swallowed", adm_options,
                                    index=adm_options.index(adm_default) if adm_default in adm_options else 0,
                                    format_func=lambda v: ("(not recorded)" if v is None
                                                           else vocab.administration_word(v)),
                                    key=f"{prefix}_adm")
    context = c[2].selectbox("Context", doses.CONTEXTS,
                             index=doses.CONTEXTS.index(initial.context) if initial else 0,
                             format_func=vocab.context_word, key=f"{prefix}_ctx")
    with c[0]:
        _errors_at(prefix, "formulation", "administration", "context")
    st.caption("Leave a value empty when it was not reported.")
    values = {}
    for row in (NUMBERS[:4], NUMBERS[4:]):
        cols = st.columns(len(row))
        for col, (name, label) in zip(cols, row, strict=True):
            with col:
                values[name] = st.number_input(label, value=None, step=1, key=f"{prefix}_{name}")
                _errors_at(prefix, name)
    vomited = st.checkbox("Vomited", value=bool(initial.vomited) if initial else False, key=f"{prefix}_vomited")
    tags_now = [t for t in (initial.adverse_events.split(";") if initial and initial.adverse_events else [])]
    options = list(vocab.ADVERSE_EVENT_TAGS) + [t for t in tags_now if t not in vocab.ADVERSE_EVENT_TAGS]
    # no "Select all": one click must never record a seizure and chest pain together
    picked = st.multiselect("Adverse events", options, default=tags_now, format_func=vocab.adverse_event_word,
                            accept_new_options=True, select_all=False, key=f"{prefix}_tags",
                            help="Choose each event that happened, or type another in a few words.")
    tags = [vocab.adverse_event_tag(t) for t in picked]
    _errors_at(prefix, "vomited", "adverse_events")
    notes = st.text_area("Notes", value=(initial.notes or "") if initial else "", key=f"{prefix}_notes")
    shown = {"taken_date", "taken_at", "taken_time", "dose_mg", "formulation", "administration", "context",
             "vomited", "adverse_events", "notes", *(name for name, _label in NUMBERS)}
    _errors_at(prefix, "notes", *[k for k in st.session_state.get(f"{prefix}__errors") or {} if k not in shown])
    submitted = st.form_submit_button("Save dose" if initial is None else "Save changes", type="primary")
    if not submitted:
        return None, {}, False
    here: dict[str, str] = {}  # what the widgets could not read: refused here, never replaced
    if day is None:
        here["taken_date"] = "Date taken: enter a valid date (YYYY-MM-DD)."
    if clock is None:
        here["taken_time"] = "Time taken: enter a valid time (HH:MM)."
    data = doses.DoseInput(
        taken_at=datetime.combine(day, clock, tz) if day is not None and clock is not None else None,
        dose_mg=dose_mg, formulation=formulation,
        administration=administration, context=context,
        vomited=vomited, adverse_events=";".join(tags), notes=notes, **values,
    )
    return data, here, bool(confirmed and pending is not None and dose_mg == pending)


def save_dose(prefix: str, form_result, save) -> None:
    """Run ``save(data, confirmed)``; refusals go to the fields (kept across the rerun), with the
    confirmation control under the dose when the dose is unusual. Then rerun to show them."""
    data, here, confirmed = form_result
    if data is None:
        return
    errors = dict(here)
    unusual = None
    try:
        if here:  # the other fields' reasons too, in one go
            errors |= doses.validate_dose(data)
        else:
            save(data, confirmed)
    except doses.UnusualDose as exc:
        errors |= exc.errors
        unusual = exc.dose_mg
    except ValidationError as exc:
        errors |= exc.errors
    except KapError as exc:
        show_error(exc)
        return
    st.session_state[f"{prefix}__unusual"] = unusual
    if errors:
        if "taken_date" in errors or "taken_time" in errors:
            errors.pop("taken_at", None)  # the reason is already at the date or time
        st.session_state[f"{prefix}__errors"] = errors
    else:
        for key in [k for k in st.session_state if str(k).startswith(f"{prefix}_")]:
            del st.session_state[key]  # the next dose starts from fresh defaults
    st.rerun()


# --- the log -------------------------------------------------------------------------------------
def log_tab() -> None:
    today = utcnow().astimezone(tz).date()
    f = st.columns([2, 2, 1, 1])
    period = f[0].date_input("Dates", value=(today - timedelta(days=90), today), key="dl_period")
    contexts = f[1].multiselect("Context", doses.CONTEXTS, format_func=vocab.context_word, select_all=False,
                                key="dl_contexts")
    adverse_only = f[2].checkbox("Adverse events only", key="dl_adverse")
    include_voided = f[3].checkbox("Show voided", key="dl_voided")
    start, end = (period if isinstance(period, (tuple, list)) and len(period) == 2
                  else (period[0] if isinstance(period, (tuple, list)) and period else today, today))
    flt = doses.DoseFilter(date_from=start, date_to=end, contexts=tuple(contexts), adverse_only=adverse_only,
                           include_voided=include_voided)
    if st.session_state.get("dl_filter") != flt:  # other filters: back to the newest page
        st.session_state["dl_filter"], st.session_state["dl_page"] = flt, 0
    page_no = st.session_state.get("dl_page", 0)
    with db() as session:
        total = doses.count_doses(session, actor, pid, flt, tz)
        last_page = max(0, (total - 1) // PAGE_ROWS)
        page_no = min(max(0, page_no), last_page)
        frame = doses.list_doses(session, actor, pid, replace(flt, limit=PAGE_ROWS, offset=page_no * PAGE_ROWS), tz)
        adh_all, adh_28 = doses.adherences(session, actor, pid, (None, 28))
    a = st.columns(2)
    if adh_all is None:
        a[0].info("No active plan: adherence is not computed.")
    else:
        a[0].metric("Adherence since this plan version", "—" if adh_all.ratio is None else f"{adh_all.ratio:.0%}",
                    help=adh_all.describe())
        a[0].caption(adh_all.describe())
        a[1].metric("Adherence, last 28 days", "—" if adh_28.ratio is None else f"{adh_28.ratio:.0%}",
                    help=adh_28.describe())
        a[1].caption(adh_28.describe())
    dose_csv_button(actor, pid, start, end, key="dl_csv")
    if frame.empty:
        st.info("No doses logged yet — add one or import a CSV." if not (contexts or adverse_only)
                else "No doses match these filters.")
        return
    view = pd.DataFrame({
        "Taken at": frame["taken_at"].dt.tz_convert(tz).dt.tz_localize(None),
        "Dose (mg)": frame["dose_mg"],
        "Formulation": frame["formulation"].map(vocab.formulation_word),
        "Spat or swallowed": frame["administration"].map(lambda v: vocab.administration_word(v) if v else ""),
        "Context": frame["context"].map(vocab.context_word),
        "Anxiety before": frame["anxiety_before"], "Anxiety after": frame["anxiety_after"],
        "Dissociation": frame["dissociation"], "Nausea": frame["nausea"], "Vomited": frame["vomited"],
        "Sys before": frame["bp_systolic_pre"], "Dia before": frame["bp_diastolic_pre"],
        "Sys after": frame["bp_systolic_post"], "Dia after": frame["bp_diastolic_post"],
        "HR (bpm)": frame["heart_rate"],
        "Adverse events": frame["adverse_events"].map(lambda v: vocab.adverse_events_text(v) if v else ""),
        "Notes": frame["notes"], "Source": frame["source"].map(vocab.source_word),
        "Status": frame["voided_at"].map(lambda v: "voided" if pd.notna(v) else ""),
    })
    first, last = page_no * PAGE_ROWS + 1, page_no * PAGE_ROWS + len(view)
    st.caption(f"{total:,} dose{'s' if total != 1 else ''} shown · rows {first:,}–{last:,} of {total:,} · newest first "
               f"· times in {tz.key}")
    st.dataframe(view, hide_index=True, width="stretch", height=min(36 + 35 * len(view), 36 + 35 * 20),
                 column_config={"Taken at": st.column_config.DatetimeColumn("Taken at", format="YYYY-MM-DD HH:mm"),
                                "Dose (mg)": st.column_config.NumberColumn("Dose (mg)", format="%g")})
    if total > PAGE_ROWS:
        p = st.columns([1, 1, 4])
        if p[0].button("Previous", key="dl_prev", disabled=page_no == 0, icon=":material/chevron_left:"):
            st.session_state["dl_page"] = page_no - 1
            st.rerun()
        if p[1].button("Next", key="dl_next", disabled=page_no >= last_page, icon=":material/chevron_right:"):
            st.session_state["dl_page"] = page_no + 1
            st.rerun()
        p[2].caption(f"Page {page_no + 1:,} of {last_page + 1:,}")


# --- add -------------------------------------------------------------------------------------------
def add_tab() -> None:
    if plan is not None:
        st.caption(f"Defaults from the active plan: {plan.dose_mg:g} mg {vocab.formulation_word(plan.formulation)}.")
    notice = st.session_state.pop("dose_saved_notice", None)
    if notice:
        st.success(notice)
    with st.form("add_dose_form", clear_on_submit=False):
        result = dose_form("add", None)

    def save(data: doses.DoseInput, confirmed: bool) -> None:
        with db() as session:
            entry = doses.add_dose(session, actor, pid, data, confirm_unusual_dose=confirmed)
            when = fmt_local(entry.taken_at, tz)
        st.session_state["dose_saved_notice"] = f"Dose saved: {data.dose_mg:g} mg taken {when}."
        st.toast(f"Dose saved ({when})", icon=":material/check:")

    save_dose("add", result, save)

# --- edit or void ---------------------------------------------------------------------------------------
def edit_tab() -> None:
    with db() as session:
        recent = doses.list_doses(session, actor, pid, doses.DoseFilter(limit=200), tz)
    if recent.empty:
        st.info("No doses logged yet — add one or import a CSV.")
    else:
        labels = {int(r.id): f"{r.taken_at.tz_convert(tz):%Y-%m-%d %H:%M} · {r.dose_mg:g} mg · "
                             f"{vocab.source_word(r.source)}"
                  for r in recent.itertuples()}
        chosen = st.selectbox("Entry", list(labels), format_func=lambda i: labels.get(i, str(i)), key="de_entry")
        with db() as session:
            entry = doses.get_dose(session, actor, chosen)
            locked = doses.is_locked(session, entry)
        if locked:
            st.warning("This entry is part of a signed session note: it can no longer be edited or voided. "
                       "Correct it with an addendum to that note.")
        else:
            with st.form(f"edit_dose_{entry.id}_{entry.version}"):
                result = dose_form(f"edit{entry.id}v{entry.version}", doses.DoseInput.from_entry(entry))

            def save(data: doses.DoseInput, confirmed: bool) -> None:
                with db() as session:
                    doses.edit_dose(session, actor, entry.id, data, expected_version=entry.version,
                                    confirm_unusual_dose=confirmed)
                st.toast("Changes saved", icon=":material/check:")

            save_dose(f"edit{entry.id}v{entry.version}", result, save)
            with st.form(f"void_dose_{entry.id}"):
                reason = st.text_input("Reason for voiding", key=f"void_reason_{entry.id}",
                                       help="The entry stays in the record, marked void.")
                if st.form_submit_button("Void this entry"):
                    try:
                        with db() as session:
                            doses.void_dose(session, actor, entry.id, reason, expected_version=entry.version)
                        st.toast("Entry voided", icon=":material/block:")
                        st.rerun()
                    except KapError as exc:
                        show_error(exc)


for tab, body in ((tab_log, log_tab), (tab_add, add_tab), (tab_edit, edit_tab)):
    if tab.open:
        with tab:
            body()
