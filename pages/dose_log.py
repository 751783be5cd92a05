"""Dose log: the patient's doses as a filterable table, adherence, add, edit and void."""

from datetime import datetime, timedelta

import pandas as pd
import streamlit as st

from kapnotes import doses
from kapnotes.config import get_settings
from kapnotes.errors import KapError
from kapnotes.plans import active_plan
from kapnotes.timeutil import fmt_local, utcnow
from kapnotes.ui.patient import require_patient_banner
from kapnotes.ui.session import db, require_user, show_error

actor = require_user("therapist", "prescriber")
tz = get_settings().tz
TABS = ["Log", "Add a dose", "Edit or void"]
COMMON_TAGS = ["dizziness", "nausea", "headache", "vomiting", "anxiety", "fainting", "chest_pain",
               "breathing_difficulty", "seizure", "psychotic_symptoms", "self_harm", "emergency_visit"]

with db() as session:
    pid = require_patient_banner(session, actor, "dose_log")
    plan = active_plan(session, pid)

st.title("Dose log")
# stateful tabs: only the open tab's content runs (the forms are ~40 widgets), and the URL
# names the tab, so the dashboard can link straight to "Add a dose"
tab_log, tab_add, tab_edit = st.tabs(TABS, key="dose_tab", on_change="rerun", bind="query-params")


def dose_form(prefix: str, initial: doses.DoseInput | None) -> doses.DoseInput | None:
    """The dose fields; returns the input when the form was submitted."""
    now_local = utcnow().astimezone(tz)
    t0 = initial.taken_at.astimezone(tz) if initial else now_local
    c = st.columns(3)
    day = c[0].date_input("Date taken", value=t0.date(), max_value=now_local.date() + timedelta(days=1),
                          key=f"{prefix}_date")
    clock = c[1].time_input(f"Time taken ({tz.key})", value=t0.time().replace(second=0, microsecond=0),
                            key=f"{prefix}_time", step=300)
    dose_default = initial.dose_mg if initial else (plan.dose_mg if plan else 100.0)
    dose_mg = c[2].number_input("Dose (mg)", min_value=0.0, max_value=2000.0, step=25.0, value=float(dose_default),
                                key=f"{prefix}_dose")
    c = st.columns(3)
    form_default = initial.formulation if initial else (plan.formulation if plan else "odt")
    formulation = c[0].selectbox("Formulation", doses.FORMULATIONS, index=doses.FORMULATIONS.index(form_default)
                                 if form_default in doses.FORMULATIONS else 0, key=f"{prefix}_form")
    adm_options = ["(not recorded)", *doses.ADMINISTRATIONS]
    adm_default = (initial.administration if initial else (plan.administration if plan else None)) or adm_options[0]
    administration = c[1].selectbox("Spit or swallow", adm_options, index=adm_options.index(adm_default),
                                    key=f"{prefix}_adm")
    context = c[2].selectbox("Context", doses.CONTEXTS,
                             index=doses.CONTEXTS.index(initial.context) if initial else 0,
                             format_func=lambda v: v.replace("_", " "), key=f"{prefix}_ctx")
    st.caption("Leave a value empty when it was not reported.")
    c = st.columns(4)

    def num(col, label, name, lo, hi):
        value = getattr(initial, name) if initial else None
        return col.number_input(label, min_value=lo, max_value=hi, value=value, step=1, key=f"{prefix}_{name}")

    anxiety_before = num(c[0], "Anxiety before (0–10)", "anxiety_before", 0, 10)
    anxiety_after = num(c[1], "Anxiety after (0–10)", "anxiety_after", 0, 10)
    dissociation = num(c[2], "Dissociation (0–10)", "dissociation", 0, 10)
    nausea = num(c[3], "Nausea (0 none – 3 severe)", "nausea", 0, 3)
    c = st.columns(5)
    sys_pre = num(c[0], "BP before: systolic (mmHg)", "bp_systolic_pre", 0, 400)
    dia_pre = num(c[1], "BP before: diastolic (mmHg)", "bp_diastolic_pre", 0, 300)
    sys_post = num(c[2], "BP after: systolic (mmHg)", "bp_systolic_post", 0, 400)
    dia_post = num(c[3], "BP after: diastolic (mmHg)", "bp_diastolic_post", 0, 300)
    heart_rate = num(c[4], "Heart rate (bpm)", "heart_rate", 0, 300)
    vomited = st.checkbox("Vomited", value=bool(initial.vomited) if initial else False, key=f"{prefix}_vomited")
    tags_now = [t for t in (initial.adverse_events.split(";") if initial and initial.adverse_events else [])]
    tags = st.multiselect("Adverse events", sorted(set(COMMON_TAGS) | set(tags_now)), default=tags_now,
                          accept_new_options=True, key=f"{prefix}_tags",
                          help="Choose or type short tags, e.g. dizziness, chest_pain.")
    notes = st.text_area("Notes", value=(initial.notes or "") if initial else "", key=f"{prefix}_notes")
    submitted = st.form_submit_button("Save dose" if initial is None else "Save changes", type="primary")
    if not submitted:
        return None
    return doses.DoseInput(
        taken_at=datetime.combine(day, clock, tz), dose_mg=dose_mg, formulation=formulation,
        administration=None if administration == adm_options[0] else administration, context=context,
        anxiety_before=anxiety_before, anxiety_after=anxiety_after, dissociation=dissociation, nausea=nausea,
        vomited=vomited, bp_systolic_pre=sys_pre, bp_diastolic_pre=dia_pre, bp_systolic_post=sys_post,
        bp_diastolic_post=dia_post, heart_rate=heart_rate, adverse_events=";".join(tags), notes=notes,
    )


# --- the log -------------------------------------------------------------------------------------
def log_tab() -> None:
    today = utcnow().astimezone(tz).date()
    f = st.columns([2, 2, 1, 1])
    period = f[0].date_input("Dates", value=(today - timedelta(days=90), today), key="dl_period")
    contexts = f[1].multiselect("Context", doses.CONTEXTS, format_func=lambda v: v.replace("_", " "),
                                key="dl_contexts")
    adverse_only = f[2].checkbox("Adverse events only", key="dl_adverse")
    include_voided = f[3].checkbox("Show voided", key="dl_voided")
    start, end = (period if isinstance(period, (tuple, list)) and len(period) == 2
                  else (period[0] if isinstance(period, (tuple, list)) and period else today, today))
    flt = doses.DoseFilter(date_from=start, date_to=end, contexts=tuple(contexts), adverse_only=adverse_only,
                           include_voided=include_voided)
    with db() as session:
        frame = doses.list_doses(session, actor, pid, flt, tz)
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
    if frame.empty:
        st.info("No doses logged yet — add one or import a CSV." if not (contexts or adverse_only)
                else "No doses match these filters.")
    else:
        view = frame.copy()
        view["taken_at"] = view["taken_at"].dt.tz_convert(tz).dt.tz_localize(None)
        view["status"] = view["voided_at"].map(lambda v: "voided" if pd.notna(v) else "")
        view["context"] = view["context"].str.replace("_", " ", regex=False)  # as in the filter above
        view = view[["taken_at", "dose_mg", "formulation", "administration", "context", "anxiety_before",
                     "anxiety_after", "dissociation", "nausea", "vomited", "bp_systolic_pre", "bp_diastolic_pre",
                     "bp_systolic_post", "bp_diastolic_post", "heart_rate", "adverse_events", "notes", "source",
                     "status", "id"]]
        st.caption(f"{len(view)} dose{'s' if len(view) != 1 else ''} shown · times in {tz.key} · click a header to sort")
        st.dataframe(
            view, hide_index=True, width="stretch",
            column_config={
                "taken_at": st.column_config.DatetimeColumn("Taken at", format="YYYY-MM-DD HH:mm"),
                "dose_mg": st.column_config.NumberColumn("Dose (mg)", format="%g"),
                "bp_systolic_pre": "Sys before", "bp_diastolic_pre": "Dia before",
                "bp_systolic_post": "Sys after", "bp_diastolic_post": "Dia after",
                "heart_rate": "HR (bpm)", "anxiety_before": "Anxiety before", "anxiety_after": "Anxiety after",
                "id": st.column_config.NumberColumn("Entry", format="%d"),
                "formulation": "Formulation", "administration": "Spit/swallow", "context": "Context",
                "dissociation": "Dissociation", "nausea": "Nausea", "vomited": "Vomited",
                "adverse_events": "Adverse events", "notes": "Notes", "source": "Source", "status": "Status",
            },
        )

# --- add -------------------------------------------------------------------------------------------
def add_tab() -> None:
    if plan is not None:
        st.caption(f"Defaults from the active plan: {plan.dose_mg:g} mg {plan.formulation.upper()}.")
    with st.form("add_dose", clear_on_submit=False):
        data = dose_form("add", None)
    if data is not None:
        try:
            with db() as session:
                entry = doses.add_dose(session, actor, pid, data)
            st.toast(f"Dose saved ({fmt_local(entry.taken_at, tz)})", icon=":material/check:")
            st.success(f"Saved dose entry {entry.id}.")
        except KapError as exc:
            show_error(exc)

# --- edit or void ---------------------------------------------------------------------------------------
def edit_tab() -> None:
    with db() as session:
        recent = doses.list_doses(session, actor, pid, doses.DoseFilter(limit=200), tz)
    if recent.empty:
        st.info("No doses logged yet — add one or import a CSV.")
    else:
        labels = {int(r.id): f"{r.taken_at.tz_convert(tz):%Y-%m-%d %H:%M} · {r.dose_mg:g} mg · {r.source}"
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
                data = dose_form(f"edit{entry.id}v{entry.version}", doses.DoseInput.from_entry(entry))
            if data is not None:
                try:
                    with db() as session:
                        doses.edit_dose(session, actor, entry.id, data, expected_version=entry.version)
                    st.toast("Changes saved", icon=":material/check:")
                    st.rerun()
                except KapError as exc:
                    show_error(exc)
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
