"""The treatment summary for one patient and a date range.

Sections: patient and diagnosis; safety (active flags, holds, safety overrides, urgent items
waiting); outcome (response and remission); plan history; the
GAD-7/PHQ-9 chart with dose steps; scores; the dose log (a LongTable whose header repeats
on every page); adverse events; suggestions and decisions; the signed notes in the range, one
table row each unless the full notes are asked for (drafts only when asked; private process
notes never reach this module at all).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from reportlab.platypus import CondPageBreak, PageBreak, Paragraph, SimpleDocTemplate, Spacer, TableStyle

from kapnotes import vocab
from kapnotes.pdf import build_lock
from kapnotes.pdf.canvas import PageFrame, canvas_maker
from kapnotes.pdf.chart import score_chart
from kapnotes.pdf.model import AttentionRow, NoteData, SafetyData, SafetyItem, ScoreRow, SummaryData, WeekRow
from kapnotes.pdf.note_list import compact_notes
from kapnotes.pdf.note_pdf import (
    CONTENT_WIDTH,
    DOSE_HEADER,
    DOSE_WIDTHS,
    MARGIN_X,
    MODALITY_LABELS,
    PAGE_SIZE,
    dose_cells,
    fmt_number,
    grid_table,
    note_type_label,
    patient_block,
    score_cells,
)
from kapnotes.pdf.styles import FONT_BOLD, WARN, esc, make_styles

ICD10 = {
    "F41.1": "Generalized anxiety disorder",
    "F41.0": "Panic disorder",
    "F41.9": "Anxiety disorder, unspecified",
    "F41.8": "Other specified anxiety disorders",
    "F40.10": "Social phobia, unspecified",
    "F43.10": "Post-traumatic stress disorder, unspecified",
    "F43.12": "Post-traumatic stress disorder, chronic",
    "F32.9": "Major depressive disorder, single episode, unspecified",
    "F32.1": "Major depressive disorder, single episode, moderate",
    "F33.1": "Major depressive disorder, recurrent, moderate",
    "F33.2": "Major depressive disorder, recurrent severe without psychotic features",
    "F42.2": "Mixed obsessional thoughts and acts",
}

RESPONSE_FRACTION = 0.5
REMISSION_BELOW = 5


@dataclass(frozen=True)
class Outcome:
    instrument: str
    baseline: ScoreRow | None
    latest: ScoreRow | None

    @property
    def change(self) -> float | None:
        if not self.baseline or not self.latest or self.baseline.total <= 0:
            return None
        return (self.baseline.total - self.latest.total) / self.baseline.total

    @property
    def response(self) -> bool:
        c = self.change
        return c is not None and c >= RESPONSE_FRACTION

    @property
    def remission(self) -> bool:
        return self.latest is not None and self.latest.total < REMISSION_BELOW


def outcomes(data: SummaryData) -> list[Outcome]:
    out = []
    for instrument in ("GAD-7", "PHQ-9"):
        series = sorted((s for s in data.scores if s.instrument == instrument),
                        key=lambda s: (s.administered_on, s.id))
        out.append(Outcome(instrument, data.baseline.get(instrument), series[-1] if series else None))
    return out


def _score(row: ScoreRow | None) -> str:
    return f"{row.total} ({row.band}), {row.administered_on.isoformat()}" if row else "—"


def diagnosis_text(code: str) -> str:
    code = (code or "").strip()
    name = ICD10.get(code.upper())
    return f"{code} — {name}" if name else (code or "—")


def _safety_items(items: list[SafetyItem], empty: str, styles, who_label: str = "By") -> list:
    if not items:
        return [Paragraph(esc(empty), styles["muted"])]
    rows = [[i.when, i.what, i.detail or "—", i.who or "—"] for i in items]
    return [grid_table(["Date", "What", "Detail", who_label], rows, [70, 150, CONTENT_WIDTH - 330, 110], styles)]


def safety_story(safety: SafetyData | None, styles) -> list:
    """The opening section: what must not be missed, before any other figure."""
    s = styles
    out: list = [Paragraph("Safety", s["h2"])]
    if safety is None:
        return out + [Paragraph("Safety information was not gathered for this summary.", s["muted"])]
    out.append(Paragraph(f"Active safety flags today ({esc(safety.as_of)})", s["h3"]))
    if safety.active:
        out += [Paragraph("• " + esc(flag), s["warn"]) for flag in safety.active]
    else:
        out.append(Paragraph("None: no suicidality, severe hypertension, serious adverse event, overuse or dose "
                             "above the plan is flagged.", s["muted"]))
    out.append(Paragraph("Holds in the period", s["h3"]))
    out += _safety_items(safety.holds, "No hold in this period.", s, "Status / by")
    out.append(Paragraph("Decisions with a safety override in the period", s["h3"]))
    out += _safety_items(safety.overrides, "No decision overrode a safety rule in this period.", s, "Prescriber")
    out.append(Paragraph("Urgent items still waiting", s["h3"]))
    out += _safety_items(safety.waiting, "No urgent item is waiting for the prescriber.", s, "Status")
    return out


def _adverse_rows(data: SummaryData) -> list[list[str]]:
    """Tagged doses, vomiting, and every reading at or above the protocol's thresholds (tagged or not)."""
    rows = []
    for d in data.doses:
        alert = data.bp_alerts.get(d.id, "")
        if not (d.adverse_events.strip() or d.vomited or alert):
            continue
        tags = [vocab.adverse_event_word(t.strip()) for t in d.adverse_events.split(";") if t.strip()]
        if d.vomited:
            tags.insert(0, "vomited")
        events = "; ".join(tags)
        if alert:
            events = f"{events}; {alert}" if events else f"{alert}, not tagged"
        rows.append([d.taken_at, f"{fmt_number(d.dose_mg)} mg", events,
                     " → ".join((d.bp_pre or "—", d.bp_post or "—")), d.notes or ""])
    return rows


def _plan_status(p) -> str:
    if p.superseded:
        return "superseded" if p.status == "active" else f"superseded (was {p.status})"
    return p.status


FULL_LOG_HINT = ('the full log is available with "Full dose log" on the Exports page or --full-dose-log on '
                 "python -m kapnotes export-pdf")
NAUSEA_WORDS = {0: "none", 1: "mild", 2: "moderate", 3: "severe"}
WEEK_HEADER = ["Week (Mon–Sun)", "Taken / planned", "Dose(s)", "Anxiety before → after (mean)", "Max diss.",
               "Max nausea", "Vomiting", "Highest BP", "Adverse events", "Voided"]
WEEK_WIDTHS = [70, 42, 62, 52, 30, 50, 46, 46, 94, 36]
ATTENTION_HEADER = DOSE_HEADER[:9] + ["Why listed", "Notes"]


def _nausea(n: int | None) -> str:
    return "—" if n is None else NAUSEA_WORDS.get(n, str(n))


def week_cells(w: WeekRow) -> list[str]:
    return [
        w.label.replace(", ", "\n", 1), f"{w.taken} / {w.planned}", w.doses.replace(", ", "\n"), w.anxiety,
        fmt_number(w.dissociation_max), _nausea(w.nausea_max), f"yes ×{w.vomited}" if w.vomited else "no",
        w.bp_max or "—", w.adverse or "—", str(w.voided) if w.voided else "—",
    ]


def attention_cells(a: AttentionRow) -> list[str]:
    cells = dose_cells(a.dose)
    cells[9] = "\n".join(a.reasons)
    return cells


def dose_log_story(data: SummaryData, s) -> list:
    """The weekly table (or, when asked, every dose), then every dose that needs attention."""
    out: list = [Paragraph("Dose log", s["h2"])]
    if not data.doses:
        out.append(Paragraph("No doses logged in this period.", s["muted"]))
        if data.voided:
            out.append(Paragraph(f"{data.voided} voided entries in the period (not printed).", s["muted"]))
        return out
    total_mg = sum(d.dose_mg for d in data.doses)
    voided = f" {data.voided} voided entries are counted, not printed." if data.voided else ""
    out.append(Paragraph(f"{len(data.doses)} doses taken in the period, "
                         f"{fmt_number(round(total_mg / len(data.doses), 1))} mg on average. "
                         f"Times in the clinic's time zone.{esc(voided)}", s["muted"]))
    if data.full_dose_log:
        out.append(Paragraph("Every dose is listed (the full log).", s["muted"]))
        out.append(Spacer(1, 3))
        out.append(grid_table(DOSE_HEADER, [dose_cells(d) for d in data.doses], DOSE_WIDTHS, s, long=True))
    else:
        out.append(Paragraph(esc(f"Home doses by week; {FULL_LOG_HINT}. Each week counts every dose taken, "
                                 "home and in session; planned is what the active plan called for on the "
                                 "week's days in the period."), s["muted"]))
        out.append(Spacer(1, 3))
        out.append(grid_table(WEEK_HEADER, [week_cells(w) for w in data.weeks], WEEK_WIDTHS, s, long=True))
    out.append(Paragraph("Doses that need attention", s["h3"]))
    out.append(Paragraph("In-session doses, and every dose with an adverse event, blood pressure at or above the "
                         "protocol's decrease threshold, vomiting, severe nausea or a dose above the plan.",
                         s["muted"]))
    if data.attention:
        out.append(grid_table(ATTENTION_HEADER, [attention_cells(a) for a in data.attention], DOSE_WIDTHS, s,
                              long=True))
    else:
        out.append(Paragraph("None in this period.", s["muted"]))
    return out


FULL_NOTES_HINT = ('the full notes are available with "Full session notes" on the Exports page or --full-notes on '
                   "python -m kapnotes export-pdf, and each note's own PDF")
NOTE_HEADER = ["Date", "Type", "Modality", "Author", "Signed by, at", "Intention / theme", "Addenda", "Signature"]
NOTE_WIDTHS = [50, 56, 48, 74, 88, CONTENT_WIDTH - 412, 42, 54]
THEME_CHARS = 120
# the field that says what a session was about, first found wins (a check-in has none)
THEME_FIELDS = (("intention", "Intention"), ("themes_insights", "Themes"), ("themes", "Themes"),
                ("intention_link", "Intention"))
SIGNATURE_WORDS = {True: "verified", False: "MISMATCH", None: "no hash"}


def note_theme(note: NoteData) -> str:
    """The note's intention or main theme, on one line, cut to about ``THEME_CHARS`` characters."""
    for key, label in THEME_FIELDS:
        value = note.fields.get(key)
        if isinstance(value, str) and value.strip():
            text = " ".join(value.split())
            if len(text) > THEME_CHARS:
                text = text[:THEME_CHARS - 1].rstrip() + "…"
            return f"{label}: {text}"
    return "—"


def note_row(note: NoteData) -> list[str]:
    if note.status == "signed":
        signed = f"{note.signed_by or '—'}\n{note.signed_at or '—'}"
        check = SIGNATURE_WORDS.get(note.hash_verified, "no hash")
    else:
        signed, check = "DRAFT, not signed", "draft"
    return [note.session_date.isoformat(), note_type_label(note.note_type),
            MODALITY_LABELS.get(note.modality, note.modality), note.author, signed, note_theme(note),
            str(len(note.addenda)), check]


def notes_story(data: SummaryData, s) -> list:
    """Session notes in brief (one row each, with the signature check) or, when asked, in full."""
    label = "Session notes" + (" (signed, and unsigned drafts as requested)" if data.include_drafts else " (signed)")
    if data.full_notes:
        out: list = [PageBreak(), Paragraph(esc(label), s["h2"])]
    else:
        out = [CondPageBreak(120), Paragraph(esc(label), s["h2"])]
    if not data.notes:
        return out + [Paragraph("No signed notes in this period.", s["muted"])]
    if not data.full_notes:
        out.append(Paragraph(esc(f"Session notes in brief; {FULL_NOTES_HINT}. One row per note; private "
                                 "process notes are never part of a summary."), s["muted"]))
        out.append(Spacer(1, 3))
        table = grid_table(NOTE_HEADER, [note_row(n) for n in data.notes], NOTE_WIDTHS, s, long=True)
        last = len(NOTE_HEADER) - 1
        table.setStyle(TableStyle([cmd for i, n in enumerate(data.notes, start=1)
                                   if n.status == "signed" and n.hash_verified is False
                                   for cmd in (("TEXTCOLOR", (last, i), (last, i), WARN),
                                               ("FONT", (last, i), (last, i), FONT_BOLD, s["cell"].fontSize,
                                                s["cell"].leading))]))
        out.append(table)
        bad = [n for n in data.notes if n.status == "signed" and n.hash_verified is False]
        if bad:
            days = ", ".join(n.session_date.isoformat() for n in bad)
            out.append(Paragraph(esc(f"WARNING: the stored hash does not match the note's content ({days})."),
                                 s["warn"]))
        return out
    out.append(Paragraph("Every note in full. Fields without an answer are left out here; each note's own PDF "
                         "lists every field of its template.", s["muted"]))
    out.extend(compact_notes(data.notes, s, gap=10, rule_space=0))
    return out


def header_story(data: SummaryData, s) -> list:
    """Clinic, title, period, and the patient block with diagnosis and care team."""
    rng = f"{data.date_from.isoformat()} to {data.date_to.isoformat()}"
    return [
        Paragraph(esc(data.meta.clinic_name), s["clinic"]),
        Paragraph("Treatment summary", s["title"]),
        Paragraph(f"Period {esc(rng)}" + (" · includes unsigned drafts" if data.include_drafts else ""), s["muted"]),
        Spacer(1, 6),
        patient_block(data.patient, s, extra=[
            ("Diagnosis (ICD-10)", diagnosis_text(data.patient.diagnosis)),
            ("Status", data.patient.status or "—"),
            ("Care team", ", ".join(data.care_team) or "—"),
        ]),
    ]


def outcome_story(data: SummaryData, s) -> list:
    """Response and remission of each scale against the earliest score on record."""
    rows = []
    for o in outcomes(data):
        if o.latest is None:
            rows.append([o.instrument, _score(o.baseline), "none in period", "—", "—", "—"])
            continue
        c = o.change
        rows.append([
            o.instrument, _score(o.baseline), _score(o.latest), f"{-c * 100:+.0f} %" if c is not None else "—",
            "Yes (≥ 50 % below baseline)" if o.response else "No",
            "Yes (< 5)" if o.remission else "No",
        ])
    return [
        Paragraph("Response and remission", s["h2"]),
        grid_table(["Scale", "Baseline (earliest on record)", "Latest in period", "Change", "Response",
                    "Remission"], rows, [48, 120, 120, 50, 110, CONTENT_WIDTH - 448], s),
        Paragraph("Response: total at least 50 % below the earliest score on record. "
                  "Remission: total below 5.", s["small"]),
    ]


def plans_story(data: SummaryData, s) -> list:
    story: list = [Paragraph("Treatment plan history", s["h2"])]
    if not data.plans:
        return story + [Paragraph("No treatment plan on record.", s["muted"])]
    rows = []
    for p in data.plans:
        rows.append([
            str(p.version), p.effective, f"{fmt_number(p.dose_mg)} mg",
            (f"{vocab.formulation_word(p.formulation)}, {p.minutes_in_mouth} min, "
             f"{vocab.administration_word(p.administration)}"),
            vocab.every(p.interval_days), _plan_status(p), f"{p.approved_by}\n{p.approved_at}",
            (p.rationale or "—") + (f"\n{p.override}" if p.override else ""),
        ])
    story.append(grid_table(["Ver.", "Effective", "Dose", "Formulation", "Interval", "Status", "Approved by",
                             "Rationale"], rows, [26, 54, 40, 80, 44, 56, 92, CONTENT_WIDTH - 392], s))
    return story


def chart_story(data: SummaryData, s) -> list:
    """The GAD-7/PHQ-9 chart with the dose steps, then the scores as a table."""
    baseline = data.baseline.get("GAD-7")
    story: list = [
        CondPageBreak(300),
        Paragraph("GAD-7 and PHQ-9 over time", s["h2"]),
        score_chart(data.scores, data.plans, data.date_from, data.date_to,
                    baseline.total if baseline else None, width=CONTENT_WIDTH),
    ]
    if data.scores:
        story.append(Spacer(1, 4))
        story.append(grid_table(["Date", "Scale", "Total", "Band"],
                                [score_cells(x) for x in sorted(data.scores, key=lambda x: (x.administered_on, x.id))],
                                [80, 60, 50, CONTENT_WIDTH - 190], s, long=True))
    return story


def adverse_story(data: SummaryData, s) -> list:
    story: list = [Paragraph("Adverse events", s["h2"])]
    if data.bp_thresholds:
        story.append(Paragraph(f"Blood pressure at or above the protocol's thresholds, {esc(data.bp_thresholds)}, "
                               "is listed whether or not the dose was tagged.", s["muted"]))
    rows = _adverse_rows(data)
    if rows:
        story.append(grid_table(["Taken", "Dose", "Events", "BP pre → post", "Notes"], rows,
                                [70, 44, 150, 80, CONTENT_WIDTH - 344], s, long=True))
    else:
        story.append(Paragraph("No adverse events recorded in this period.", s["muted"]))
    return story


def _adjustment_cells(a) -> list[str]:
    what = f"{vocab.ADJUSTMENT_KIND_WORDS.get(a.kind, a.kind)}: {vocab.action_word(a.action)}"
    if a.proposed and a.proposed != "—":
        what += f"\n{a.proposed}"
    why = "\n".join(f"• {r}" for r in a.reasons) or "—"
    if a.flags:
        why += "\nFlags: " + ", ".join(vocab.rule_label(f) for f in a.flags)
    if a.therapist_note:
        why += f"\nTherapist: {a.therapist_note}"
    if a.protocol:
        why += f"\nProtocol: {a.protocol}"
    decision = a.status
    if a.decided_by:
        decision = f"{a.status} by {a.decided_by}, {a.decided_at}"
        if a.decision:
            decision += f"\n{a.decision}"
        if a.rationale:
            decision += f"\nRationale: {a.rationale}"
    return [a.created, what, why, decision]


def adjustments_story(data: SummaryData, s) -> list:
    story: list = [Paragraph("Dose-adjustment suggestions and decisions", s["h2"])]
    if data.adjustments:
        story.append(grid_table(["Date", "Suggestion / proposal", "Reasons", "Decision"],
                                [_adjustment_cells(a) for a in data.adjustments],
                                [58, 100, CONTENT_WIDTH - 318, 160], s, long=True))
    else:
        story.append(Paragraph("No suggestions or proposals in this period.", s["muted"]))
    return story


def summary_story(data: SummaryData, styles) -> list:
    """The whole summary, section by section, in the order the module docstring lists."""
    s = styles
    return [
        *header_story(data, s),
        *safety_story(data.safety, s),
        *outcome_story(data, s),
        *plans_story(data, s),
        *chart_story(data, s),
        *dose_log_story(data, s),  # by week (default) or every dose, then the doses that need attention
        *adverse_story(data, s),
        *adjustments_story(data, s),
        *notes_story(data, s),  # one row each (default) or in full
    ]


def build_summary_pdf(data: SummaryData, invariant: bool = False) -> bytes:
    """Render the summary. Serialised: ReportLab keeps module-level state."""
    with build_lock():
        styles = make_styles()
        buf = io.BytesIO()
        p = data.patient
        doc = SimpleDocTemplate(
            buf, pagesize=PAGE_SIZE, leftMargin=MARGIN_X, rightMargin=MARGIN_X, topMargin=54, bottomMargin=60,
            title=(f"Treatment summary — {p.name} ({p.mrn}) — "
                   f"{data.date_from.isoformat()} to {data.date_to.isoformat()}"),
            author=data.meta.generated_by,
            subject=f"KAP treatment summary — {data.meta.clinic_name}",
            creator="KAPNotes", producer="KAPNotes (ReportLab)", invariant=1 if invariant else 0, lang="en",
        )
        frame = PageFrame(data.meta.clinic_name, "Treatment summary", p.name, p.mrn, data.meta.generated_at,
                          data.meta.generated_by, draft=False)
        doc.build(summary_story(data, styles), canvasmaker=canvas_maker(frame))
        return buf.getvalue()


__all__ = ["ICD10", "Outcome", "attention_cells", "build_summary_pdf", "diagnosis_text", "dose_log_story",
           "note_row", "note_theme", "notes_story", "outcomes", "safety_story", "summary_story", "week_cells"]
