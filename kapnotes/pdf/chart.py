"""GAD-7 and PHQ-9 over time with the plan's dose steps, as vector graphics (reportlab.graphics).

Left axis: scale total (0–27). Right axis: planned dose (mg), drawn as a step line from the
plan versions. Dashed lines: GAD-7 response (50 % below the earliest GAD-7 on record) and
remission (< 5).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from reportlab.graphics.shapes import Circle, Drawing, Line, PolyLine, Rect, String
from reportlab.lib import colors
from reportlab.pdfbase.pdfmetrics import stringWidth

from kapnotes.pdf.model import PlanRow, ScoreRow
from kapnotes.pdf.styles import ACCENT, FONT, FONT_BOLD, MUTED, register_fonts

GAD_COLOR = ACCENT  # the house blue
PHQ_COLOR = colors.HexColor("#d9822b")
DOSE_COLOR = colors.HexColor("#2f855a")
RESPONSE_COLOR = colors.HexColor("#6b46c1")
REMISSION_COLOR = colors.HexColor("#2f855a")
GRID = colors.HexColor("#dde3ea")
AXIS = MUTED

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _date_ticks(start: date, end: date) -> list[date]:
    span = (end - start).days
    if span <= 70:
        step = 7 if span > 21 else max(1, span // 6 or 1)
        ticks, d = [], start
        while d <= end:
            ticks.append(d)
            d += timedelta(days=step)
        return ticks
    months = span / 30.4
    every = 1 if months <= 8 else 2 if months <= 16 else 3 if months <= 30 else 6
    ticks = []
    y, m = start.year, start.month
    d = date(y, m, 1)
    if d < start:
        m += 1
    while True:
        y += (m - 1) // 12
        m = (m - 1) % 12 + 1
        d = date(y, m, 1)
        if d > end:
            break
        if (m - 1) % every == 0:
            ticks.append(d)
        m += 1
    return ticks


def _label(d: date, monthly: bool) -> str:
    return f"{MONTHS[d.month - 1]} {d.year}" if monthly else f"{MONTHS[d.month - 1]} {d.day}"


Y_MAX = 27  # the scale axis: the PHQ-9 maximum


@dataclass(frozen=True)
class _Axes:
    """Where a day, a score and a dose fall in the drawing."""

    left: float
    right: float
    bottom: float
    top: float
    date_from: date
    span: int
    mg_max: float

    def x(self, day: date) -> float:
        return self.left + (self.right - self.left) * ((day - self.date_from).days / self.span)

    def y(self, score: float) -> float:
        return self.bottom + (self.top - self.bottom) * (score / Y_MAX)

    def y_mg(self, mg: float) -> float:
        return self.bottom + (self.top - self.bottom) * (mg / self.mg_max)


def _mg_max(plans: list[PlanRow]) -> float:
    doses = [p.dose_mg for p in plans if p.status != "ended"] or [0]
    mg_max = max(100.0, float(max(doses)) * 1.2)  # headroom: the top step stays inside the frame
    return float(int((mg_max + 49.999) // 50 * 50))


def _frame(d: Drawing, ax: _Axes, date_to: date) -> None:
    """Frame, grid, both axes and the date ticks."""
    left, right, bottom, top = ax.left, ax.right, ax.bottom, ax.top
    d.add(Rect(left, bottom, right - left, top - bottom, strokeColor=GRID, fillColor=None, strokeWidth=0.6))
    for v in (0, 5, 10, 15, 20, 25):
        y = ax.y(v)
        d.add(Line(left, y, right, y, strokeColor=GRID, strokeWidth=0.5))
        d.add(String(left - 5, y - 3, str(v), fontName=FONT, fontSize=7, fillColor=AXIS, textAnchor="end"))
    steps = 5
    for i in range(steps + 1):
        mg = ax.mg_max * i / steps
        d.add(String(right + 5, ax.y_mg(mg) - 3, f"{mg:g}", fontName=FONT, fontSize=7, fillColor=DOSE_COLOR))
    d.add(String(right + 5, top + 6, "mg", fontName=FONT_BOLD, fontSize=7, fillColor=DOSE_COLOR))
    d.add(String(left - 5, top + 6, "score", fontName=FONT_BOLD, fontSize=7, fillColor=AXIS, textAnchor="end"))
    monthly = ax.span > 70
    for t in _date_ticks(ax.date_from, date_to):
        x = ax.x(t)
        d.add(Line(x, bottom, x, bottom - 3, strokeColor=AXIS, strokeWidth=0.6))
        d.add(String(x, bottom - 12, _label(t, monthly), fontName=FONT, fontSize=7, fillColor=AXIS,
                     textAnchor="middle"))


def _day_of(value) -> date:
    return value.date() if isinstance(value, datetime) else value


def _dose_steps(d: Drawing, ax: _Axes, plans: list[PlanRow], date_to: date) -> None:
    """The plan's dose as a step line (dashed while held)."""
    date_from = ax.date_from
    dated = sorted(plans, key=lambda p: p.effective_from)
    for i, p in enumerate(dated):
        start = _day_of(p.effective_from)
        end = _day_of(dated[i + 1].effective_from) if i + 1 < len(dated) else date_to
        if end < date_from or start > date_to or p.status == "ended":
            continue
        s, e = max(start, date_from), min(end, date_to)
        y = ax.y_mg(p.dose_mg)
        held = p.status == "held"
        d.add(Line(ax.x(s), y, ax.x(e), y, strokeColor=DOSE_COLOR, strokeWidth=2.2,
                   strokeDashArray=[3, 2] if held else None))
        if i + 1 < len(dated) and dated[i + 1].status != "ended" and end <= date_to:
            d.add(Line(ax.x(e), y, ax.x(e), ax.y_mg(dated[i + 1].dose_mg), strokeColor=DOSE_COLOR, strokeWidth=1.2))
        d.add(String(ax.x(s) + 2, y + 3, f"{p.dose_mg:g} mg" + (" (held)" if held else ""), fontName=FONT,
                     fontSize=6.5, fillColor=DOSE_COLOR))


def _marker(d: Drawing, x: float, y: float, color, marker: str) -> None:
    if marker == "circle":
        d.add(Circle(x, y, 2.3, fillColor=color, strokeColor=colors.white, strokeWidth=0.5))
    else:
        d.add(Rect(x - 2.2, y - 2.2, 4.4, 4.4, fillColor=color, strokeColor=colors.white, strokeWidth=0.5))


def _series(d: Drawing, ax: _Axes, scores: list[ScoreRow], date_to: date) -> None:
    """GAD-7 (circles) and PHQ-9 (squares), each a line through its scores in the period."""
    for instrument, color, marker in (("GAD-7", GAD_COLOR, "circle"), ("PHQ-9", PHQ_COLOR, "square")):
        pts = sorted((s for s in scores
                      if s.instrument == instrument and ax.date_from <= s.administered_on <= date_to),
                     key=lambda s: (s.administered_on, s.id))
        if len(pts) > 1:
            coords: list[float] = []
            for s in pts:
                coords += [ax.x(s.administered_on), ax.y(s.total)]
            d.add(PolyLine(coords, strokeColor=color, strokeWidth=1.6))
        for s in pts:
            _marker(d, ax.x(s.administered_on), ax.y(s.total), color, marker)


def _legend(d: Drawing, left: float, height: float, resp: float | None, baseline_gad7: int | None) -> None:
    """Two rows: the series, then the thresholds (labelled here, so no label sits on the data)."""
    rows = [
        [("GAD-7", GAD_COLOR, "circle"), ("PHQ-9", PHQ_COLOR, "square"),
         ("Planned dose (mg, right axis; dashed = held)", DOSE_COLOR, "line")],
        [("Remission: below 5", REMISSION_COLOR, "dash")],
    ]
    if resp is not None:
        rows[1].insert(0, (f"GAD-7 response: ≤ {resp:g} (50 % below the baseline of {baseline_gad7})",
                           RESPONSE_COLOR, "dash"))
    for r, items in enumerate(rows):
        ly = height - 12 - r * 11
        x = left
        for label, color, kind in items:
            if kind == "dash":
                d.add(Line(x, ly + 3, x + 14, ly + 3, strokeColor=color, strokeWidth=0.9, strokeDashArray=[4, 3]))
            else:
                d.add(Line(x, ly + 3, x + 14, ly + 3, strokeColor=color, strokeWidth=2.2 if kind == "line" else 1.6))
            if kind == "circle":
                d.add(Circle(x + 7, ly + 3, 2.3, fillColor=color, strokeColor=colors.white, strokeWidth=0.5))
            elif kind == "square":
                d.add(Rect(x + 4.8, ly + 0.8, 4.4, 4.4, fillColor=color, strokeColor=colors.white, strokeWidth=0.5))
            d.add(String(x + 18, ly, label, fontName=FONT, fontSize=7.5, fillColor=AXIS))
            x += 18 + stringWidth(label, FONT, 7.5) + 16


def score_chart(
    scores: list[ScoreRow],
    plans: list[PlanRow],
    date_from: date,
    date_to: date,
    baseline_gad7: int | None,
    width: float = 528,
    height: float = 262,
) -> Drawing:
    register_fonts()
    d = Drawing(width, height, initialFontName=FONT)
    if date_to <= date_from:
        date_to = date_from + timedelta(days=1)
    ax = _Axes(34, width - 46, 30, height - 44, date_from, (date_to - date_from).days, _mg_max(plans))
    _frame(d, ax, date_to)
    _dose_steps(d, ax, plans, date_to)
    # thresholds (labelled in the legend, so no label sits on the data)
    d.add(Line(ax.left, ax.y(5), ax.right, ax.y(5), strokeColor=REMISSION_COLOR, strokeWidth=0.9,
               strokeDashArray=[4, 3]))
    resp = baseline_gad7 * 0.5 if baseline_gad7 else None
    if resp is not None:
        d.add(Line(ax.left, ax.y(resp), ax.right, ax.y(resp), strokeColor=RESPONSE_COLOR, strokeWidth=0.9,
                   strokeDashArray=[4, 3]))
    _series(d, ax, scores, date_to)
    if not scores:
        d.add(String((ax.left + ax.right) / 2, (ax.top + ax.bottom) / 2, "No GAD-7 or PHQ-9 recorded in this period",
                     fontName=FONT, fontSize=9, fillColor=AXIS, textAnchor="middle"))
    _legend(d, ax.left, height, resp, baseline_gad7)
    return d
