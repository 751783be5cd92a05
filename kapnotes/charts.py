"""Altair charts for the dashboard (pure functions of DataFrames; no streamlit, no database).

- ``scores_chart``: GAD-7 and PHQ-9 totals over time, the planned dose as a step line on
  its own axis, the response line (50 % below the GAD-7 baseline) and remission line (5).
- ``effects_chart``: per-dose anxiety before/after, dissociation and nausea.
- ``bp_chart``: blood pressure before/after each dose.
Times are shown in the clinic's zone.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import altair as alt
import pandas as pd

from kapnotes import scales

SCORE_COLORS = {"GAD-7": "#1f5fa8", "PHQ-9": "#8a3ab9"}
DOSE_COLOR = "#c25e00"


def _local(series: pd.Series, tz: ZoneInfo) -> pd.Series:
    s = pd.to_datetime(series, utc=True)
    return s.dt.tz_convert(tz).dt.tz_localize(None)


def scores_chart(scores: pd.DataFrame, steps: pd.DataFrame, tz: ZoneInfo, gad7_baseline: int | None,
                 height: int = 320) -> alt.Chart | alt.LayerChart:
    s = scores[["administered_on", "instrument", "total", "band"]].copy()
    s["date"] = pd.to_datetime(s["administered_on"])
    s = s.drop(columns=["administered_on"])
    x = alt.X("date:T", title="Date")
    y_scale = alt.Scale(domain=[0, 27])
    color = alt.Color("instrument:N", title="Scale",
                      scale=alt.Scale(domain=list(SCORE_COLORS), range=list(SCORE_COLORS.values())))
    base = alt.Chart(s)
    lines = base.mark_line(point=True).encode(
        x=x, y=alt.Y("total:Q", title="Score (total)", scale=y_scale), color=color,
        tooltip=[alt.Tooltip("date:T", title="Date"), "instrument:N", alt.Tooltip("total:Q", title="Total"),
                 alt.Tooltip("band:N", title="Band")],
    )
    refs = [{"y": float(scales.REMISSION_BELOW), "label": "Remission (< 5)"}]
    if gad7_baseline:
        line = scales.response_line(gad7_baseline)
        refs.append({"y": line, "label": f"GAD-7 response (≤ {line:g}, 50 % below baseline {gad7_baseline})"})
    ref_frame = pd.DataFrame(refs)
    rules = alt.Chart(ref_frame).mark_rule(strokeDash=[6, 4], color="#555").encode(
        y=alt.Y("y:Q", scale=y_scale), tooltip=[alt.Tooltip("label:N", title="Line")])
    labels = alt.Chart(ref_frame).mark_text(align="left", dx=4, dy=-6, fontSize=11, color="#333").encode(
        y=alt.Y("y:Q", scale=y_scale), text="label:N", x=alt.value(0))
    score_layer = alt.layer(rules, labels, lines)
    if steps is None or steps.empty:
        return score_layer.properties(height=height, title="GAD-7 and PHQ-9")
    st_frame = steps[["date", "planned_dose_mg", "interval_days", "version"]].copy()
    st_frame["date"] = _local(st_frame["date"], tz)
    dose = alt.Chart(st_frame).mark_line(interpolate="step-after", color=DOSE_COLOR, strokeWidth=2,
                                         opacity=0.8).encode(
        x=x,
        y=alt.Y("planned_dose_mg:Q", title="Planned dose (mg)",
                axis=alt.Axis(orient="right", titleColor=DOSE_COLOR)),
        tooltip=[alt.Tooltip("date:T", title="From"), alt.Tooltip("planned_dose_mg:Q", title="Dose (mg)"),
                 alt.Tooltip("interval_days:Q", title="Every (days)"), alt.Tooltip("version:Q", title="Plan version")],
    )
    return alt.layer(score_layer, dose).resolve_scale(y="independent").properties(
        height=height, title="GAD-7 and PHQ-9 with the planned dose")


EFFECT_LABELS = {
    "anxiety_before": "Anxiety before (0–10)",
    "anxiety_after": "Anxiety after (0–10)",
    "dissociation": "Dissociation (0–10)",
    "nausea": "Nausea (0–3)",
}
BP_LABELS = {
    "bp_systolic_pre": "Systolic before",
    "bp_systolic_post": "Systolic after",
    "bp_diastolic_pre": "Diastolic before",
    "bp_diastolic_post": "Diastolic after",
}


def _long(trends: pd.DataFrame, labels: dict[str, str], tz: ZoneInfo) -> pd.DataFrame:
    frame = trends[["taken_at", *labels]].copy()
    frame["taken_at"] = _local(frame["taken_at"], tz)
    long = frame.melt(id_vars="taken_at", var_name="measure", value_name="value").dropna(subset=["value"])
    long["measure"] = long["measure"].map(labels)
    return long


def effects_chart(trends: pd.DataFrame, tz: ZoneInfo, weekly: bool = False, height: int = 240) -> alt.Chart:
    long = _long(trends, EFFECT_LABELS, tz)
    return alt.Chart(long).mark_line(point=not weekly).encode(
        x=alt.X("taken_at:T", title="Week" if weekly else "Dose taken"),
        y=alt.Y("value:Q", title="Rating", scale=alt.Scale(domain=[0, 10])),
        color=alt.Color("measure:N", title="Measure", sort=list(EFFECT_LABELS.values())),
        tooltip=[alt.Tooltip("taken_at:T", title="When"), "measure:N", alt.Tooltip("value:Q", format=".1f")],
    ).properties(height=height, title="Per-dose effects" + (" (weekly means)" if weekly else ""))


def bp_chart(trends: pd.DataFrame, tz: ZoneInfo, weekly: bool = False, height: int = 240) -> alt.LayerChart:
    long = _long(trends, BP_LABELS, tz)
    lines = alt.Chart(long).mark_line(point=not weekly).encode(
        x=alt.X("taken_at:T", title="Week" if weekly else "Dose taken"),
        y=alt.Y("value:Q", title="mmHg", scale=alt.Scale(zero=False)),
        color=alt.Color("measure:N", title="Reading", sort=list(BP_LABELS.values())),
        strokeDash=alt.StrokeDash("measure:N", legend=None),
        tooltip=[alt.Tooltip("taken_at:T", title="When"), "measure:N", alt.Tooltip("value:Q", format=".0f")],
    )
    limits = pd.DataFrame({"y": [160.0, 100.0], "label": ["Systolic 160", "Diastolic 100"]})
    rules = alt.Chart(limits).mark_rule(strokeDash=[2, 3], color="#b00020").encode(
        y="y:Q", tooltip=[alt.Tooltip("label:N", title="Threshold")])
    return alt.layer(lines, rules).properties(
        height=height, title="Blood pressure before and after dosing" + (" (weekly means)" if weekly else ""))
