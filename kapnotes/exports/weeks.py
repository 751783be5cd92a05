"""The dose log by week, and the doses that need a line of their own (issue 17 item 4).

A long home-dosing record prints as one row per Monday-to-Sunday week (clinic days); a dose
given in session, above the plan, with an adverse event, a blood pressure at or above the
protocol's thresholds, vomiting or severe nausea is always listed on its own with its reasons.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from kapnotes.exports.rows import bp_text
from kapnotes.pdf.model import WeekRow
from kapnotes.timeutil import to_local


def plan_at(plans, moment: datetime):
    """The plan version in force at a moment: the newest one effective by then."""
    current = None
    for p in plans:  # ordered by version
        if p.effective_from <= moment:
            current = p
    return current


def mg_text(x: float) -> str:
    return f"{x:g} mg"


def _meets(s: int | None, d: int | None, at_s: int, at_d: int) -> bool:
    return (s is not None and s >= at_s) or (d is not None and d >= at_d)


def bp_alerts(doses, proto) -> dict[int, str]:
    """Doses with a reading at or above the protocol's decrease (or hold) threshold, in words."""
    out: dict[int, str] = {}
    for d in doses:
        parts = []
        for when, s, di in (("before", d.bp_systolic_pre, d.bp_diastolic_pre),
                            ("after", d.bp_systolic_post, d.bp_diastolic_post)):
            if _meets(s, di, proto.hold_systolic, proto.hold_diastolic):
                parts.append(f"BP {bp_text(s, di)} {when} the dose (hold level)")
            elif _meets(s, di, proto.decrease_systolic, proto.decrease_diastolic):
                parts.append(f"BP {bp_text(s, di)} {when} the dose")
        if parts:
            out[d.id] = "; ".join(parts)
    return out


def _tags(d) -> list[str]:
    """A dose's adverse-event tags in words."""
    return [t.strip().replace("_", " ") for t in (d.adverse_events or "").split(";") if t.strip()]


def attention_reasons(d, alerts: dict[int, str], plans, proto) -> tuple[str, ...]:
    """Why a dose is printed on its own line (in words); empty when it can be summed into its week."""
    reasons = []
    if d.context == "in_session":
        reasons.append("In session")
    plan = plan_at(plans, d.taken_at)
    if plan is not None and d.dose_mg > plan.dose_mg:
        reasons.append(f"Dose above the plan ({mg_text(d.dose_mg)}; plan {mg_text(plan.dose_mg)})")
    tags = _tags(d)
    if tags:
        reasons.append("Adverse event: " + "; ".join(tags))
    if d.id in alerts:
        reasons.append(alerts[d.id])
    if d.vomited:
        reasons.append("Vomited")
    if d.nausea is not None and d.nausea >= proto.severe_nausea:
        reasons.append(f"Severe nausea ({d.nausea} of 3)")
    return tuple(reasons)


# --- one row per week ------------------------------------------------------------------------


def _monday(moment: datetime, tz) -> date:
    day = to_local(moment, tz).date()
    return day - timedelta(days=day.weekday())


def _planned(monday: date, plans, date_from: date, date_to: date, tz) -> float:
    """For each day of the week inside the period: 1 / interval of the plan in force, when active."""
    planned = 0.0
    for k in range(7):
        day = monday + timedelta(days=k)
        if date_from <= day <= date_to:
            plan = plan_at(plans, datetime.combine(day + timedelta(days=1), time(), tz))
            if plan is not None and plan.status == "active" and plan.interval_days:
                planned += 1 / plan.interval_days
    return planned


def _counted(values) -> dict:
    """{value: how many times}, in first-seen order."""
    out: dict = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def _mean(xs: list) -> str:
    return f"{sum(xs) / len(xs):.1f}" if xs else "—"


def _anxiety(ds) -> str:
    before = [d.anxiety_before for d in ds if d.anxiety_before is not None]
    after = [d.anxiety_after for d in ds if d.anxiety_after is not None]
    return f"{_mean(before)} → {_mean(after)}" if before or after else "—"


def _highest_bp(ds) -> str:
    readings = [(s_, d_) for d in ds for s_, d_ in ((d.bp_systolic_pre, d.bp_diastolic_pre),
                                                    (d.bp_systolic_post, d.bp_diastolic_post))
                if s_ is not None or d_ is not None]
    if not readings:
        return ""
    return bp_text(*max(readings, key=lambda r: (r[0] if r[0] is not None else -1, r[1] if r[1] is not None else -1)))


def _week_row(monday: date, ds: list, planned: float, voided: int) -> WeekRow:
    iso = monday.isocalendar()
    sunday = monday + timedelta(days=6)
    mg = _counted(d.dose_mg for d in ds)
    tags = _counted(t for d in ds for t in _tags(d))
    return WeekRow(
        start=monday, label=f"{iso.year}-W{iso.week:02d}, {monday:%d %b} – {sunday:%d %b}",
        taken=len(ds), planned=round(planned),
        doses=", ".join(f"{mg_text(k)} ×{v}" for k, v in sorted(mg.items())) or "—", anxiety=_anxiety(ds),
        dissociation_max=max((d.dissociation for d in ds if d.dissociation is not None), default=None),
        nausea_max=max((d.nausea for d in ds if d.nausea is not None), default=None),
        vomited=sum(1 for d in ds if d.vomited),
        bp_max=_highest_bp(ds),
        adverse="; ".join(f"{k} ×{v}" if v > 1 else k for k, v in tags.items()),
        voided=voided,
    )


def dose_week_rows(doses, voided_times, plans, date_from: date, date_to: date, tz) -> list[WeekRow]:
    """Monday-to-Sunday weeks (clinic days) from the week of ``date_from`` to that of ``date_to``.

    ``taken`` counts every dose not voided (home and in session); ``planned`` counts, for each
    day of the week inside the period, 1 / interval of the plan in force that day when it is
    active (so 7 for a daily plan, 1 for a weekly one), rounded."""
    by_week: dict[date, list] = {}
    for d in doses:
        by_week.setdefault(_monday(d.taken_at, tz), []).append(d)
    voided = _counted(_monday(t, tz) for t in voided_times)
    out = []
    monday = date_from - timedelta(days=date_from.weekday())
    while monday <= date_to:
        out.append(_week_row(monday, by_week.get(monday, []), _planned(monday, plans, date_from, date_to, tz),
                             voided.get(monday, 0)))
        monday += timedelta(days=7)
    return out
