"""The records-request packet PDF: cover letter, attestation, redisclosure notice, the
one-page course of treatment, then the chosen sections.

Sections reuse the treatment summary's building blocks (tables, note bodies, outcome
figures) so a note or a dose prints the same everywhere. Every user string goes through
``esc`` (ReportLab's Paragraph parses markup) or a table cell (drawn as text).
"""

from __future__ import annotations

import io

from reportlab.platypus import HRFlowable, PageBreak, Paragraph, SimpleDocTemplate, Spacer

from kapnotes.pdf import build_lock
from kapnotes.pdf.canvas import PageFrame, canvas_maker
from kapnotes.pdf.note_list import compact_notes
from kapnotes.pdf.note_pdf import (
    CONTENT_WIDTH,
    DOSE_HEADER,
    DOSE_WIDTHS,
    MARGIN_X,
    PAGE_SIZE,
    dose_cells,
    fmt_number,
    grid_table,
    patient_block,
    score_cells,
)
from kapnotes.pdf.packet_data import SECTION_LABELS, PacketData
from kapnotes.pdf.styles import RULE, esc, make_styles
from kapnotes.pdf.summary_pdf import diagnosis_text, outcomes

DOCUMENT_TITLE = "Records released on request"
ATTESTATION_TITLE = "Clinician's attestation"
NOTICE_TITLE = "Notice prohibiting redisclosure"
COURSE_TITLE = "Course of treatment"
NOTICE_TEXT = (
    "This information has been disclosed to you from records protected by federal confidentiality rules "
    "(HIPAA, 45 CFR Parts 160 and 164, and, where they apply, 42 CFR Part 2). These rules prohibit you from "
    "making any further disclosure of this record unless further disclosure is expressly permitted by the "
    "written authorization of the person to whom it pertains or as otherwise permitted by those rules. "
    "A general authorization for the release of medical or other information is NOT sufficient for this "
    "purpose. The record may not be re-disclosed without the patient's authorization. If you received it in "
    "error, notify the sender at the telephone number above and destroy every copy."
)


def _p(text: str, style) -> Paragraph:
    return Paragraph(esc(text), style)


def cover_letter(data: PacketData, s) -> list:
    c, req, summ = data.clinic, data.request, data.summary
    story = [
        _p(c.name, s["title"]),
        _p(c.address or "Address not set (KAPNOTES_CLINIC_ADDRESS)", s["base"]),
        _p(f"Telephone: {c.phone or 'not set (KAPNOTES_CLINIC_PHONE)'}", s["base"]),
        _p(f"NPI: {c.npi or 'not set (KAPNOTES_CLINIC_NPI)'}", s["base"]),
        Spacer(1, 8),
        HRFlowable(width=CONTENT_WIDTH, thickness=0.8, color=RULE, hAlign="LEFT"),
        Spacer(1, 8),
        _p(f"Date: {summ.meta.generated_at}", s["base"]),
        Spacer(1, 6),
        Paragraph("<b>To:</b>", s["base"]),
        _p(req.recipient, s["base"]),
        Spacer(1, 8),
        Paragraph("Cover letter: release of records", s["h2"]),
        patient_block(summ.patient, s),
        Spacer(1, 6),
        Paragraph(f"<b>Purpose of the disclosure:</b> {esc(req.purpose)}", s["base"]),
        Paragraph(f"<b>Period of the records:</b> {esc(summ.date_from.isoformat())} to "
                  f"{esc(summ.date_to.isoformat())}", s["base"]),
        Spacer(1, 6),
        Paragraph("<b>Sections included:</b>", s["base"]),
        _p(f"• {COURSE_TITLE} (one page)", s["base"]),
    ]
    story += [_p(f"• {SECTION_LABELS[k]}", s["base"]) for k in req.sections]
    left_out = [SECTION_LABELS[k] for k in SECTION_LABELS if k not in req.sections]
    if left_out:
        story.append(_p("Not included: " + "; ".join(left_out) + ".", s["muted"]))
    story.append(_p("Private psychotherapy notes (45 CFR 164.501) are never part of this release.", s["muted"]))
    story += [
        Spacer(1, 8),
        _p(f"Please direct questions to {data.exporter} at {c.name}"
           + (f", {c.phone}" if c.phone else "") + ".", s["base"]),
        Paragraph(ATTESTATION_TITLE, s["h2"]),
        _p(f"I, {data.exporter}, attest that the enclosed pages are a true and complete copy of the records "
           f"of {summ.patient.name} (MRN {summ.patient.mrn}) held by {c.name} for the sections and period "
           "listed above, produced from the clinic's electronic record on the date of this letter.", s["base"]),
        Spacer(1, 26),
        _p("Signature: ________________________________________    Date: ____________________", s["base"]),
        _p(data.exporter, s["muted"]),
        Paragraph(NOTICE_TITLE, s["h2"]),
        _p(NOTICE_TEXT, s["small"]),
    ]
    return story


def course_page(data: PacketData, s) -> list:
    course, summ = data.course, data.summary
    story = [PageBreak(), Paragraph(COURSE_TITLE, s["title"]),
             _p(f"{summ.patient.name} · {diagnosis_text(summ.patient.diagnosis)} · "
                f"{summ.date_from.isoformat()} to {summ.date_to.isoformat()}", s["muted"]),
             Paragraph("Plan now", s["h2"]), _p(course.plan_now, s["base"]),
             Paragraph("Dose history", s["h2"])]
    if course.steps:
        rows = [[f"{fmt_number(st.dose_mg)} mg", st.first, st.last, str(st.count)] for st in course.steps[:20]]
        story.append(grid_table(["Dose", "From", "To", "Doses"], rows, [80, 90, 90, CONTENT_WIDTH - 260], s))
        if len(course.steps) > 20:
            story.append(_p(f"… and {len(course.steps) - 20} further dose changes (see the dose log).", s["muted"]))
    else:
        story.append(_p("No doses logged in the period.", s["muted"]))
    story.append(Paragraph("Scores", s["h2"]))
    rows = []
    for t in course.trends:
        first = f"{t.first.total} ({t.first.band}), {t.first.administered_on.isoformat()}" if t.first else "—"
        last = f"{t.last.total} ({t.last.band}), {t.last.administered_on.isoformat()}" if t.last else "—"
        rows.append([t.instrument, first, last, t.words])
    story.append(grid_table(["Scale", "First in period", "Last in period", "Trend"], rows,
                            [50, 140, 140, CONTENT_WIDTH - 330], s))
    story.append(Paragraph("Safety events", s["h2"]))
    if course.safety_events:
        shown = course.safety_events[:15]
        story += [_p(f"• {e}", s["base"]) for e in shown]
        if len(course.safety_events) > len(shown):
            story.append(_p(f"… and {len(course.safety_events) - len(shown)} more.", s["muted"]))
    else:
        story.append(_p("None recorded in the period (serious adverse events, vomiting, blood pressure at or "
                        f"above {course.bp_hold}, PHQ-9 item 9 above 0, holds).", s["muted"]))
    return story


def summary_section(data: PacketData, s) -> list:
    summ = data.summary
    story = [Paragraph(SECTION_LABELS["summary"].split(" (")[0], s["h2"]),
             patient_block(summ.patient, s, extra=[
                 ("Diagnosis (ICD-10)", diagnosis_text(summ.patient.diagnosis)),
                 ("Status", summ.patient.status or "—"),
                 ("Care team", ", ".join(summ.care_team) or "—")])]
    rows = []
    for o in outcomes(summ):
        c = o.change
        rows.append([o.instrument,
                     f"{o.baseline.total} ({o.baseline.band})" if o.baseline else "—",
                     f"{o.latest.total} ({o.latest.band})" if o.latest else "—",
                     f"{-c * 100:+.0f} %" if c is not None else "—",
                     "Yes" if o.response else "No", "Yes" if o.remission else "No"])
    story.append(Spacer(1, 4))
    story.append(grid_table(["Scale", "Baseline", "Latest", "Change", "Response", "Remission"], rows,
                            [50, 110, 110, 60, 70, CONTENT_WIDTH - 400], s))
    story.append(Paragraph("Suggestions and decisions", s["h3"]))
    if summ.adjustments:
        rows = []
        for a in summ.adjustments:
            decision = a.status + (f" by {a.decided_by}, {a.decided_at}" if a.decided_by else "")
            if a.rationale:
                decision += f"\nRationale: {a.rationale}"
            rows.append([a.created, f"{a.kind}: {a.action}\n{a.proposed}", "\n".join(a.reasons) or "—", decision])
        story.append(grid_table(["Date", "Item", "Reasons", "Decision"], rows,
                                [58, 100, CONTENT_WIDTH - 318, 160], s, long=True))
    else:
        story.append(_p("No suggestions or proposals in the period.", s["muted"]))
    return story


def _section(key: str, s, items: list, body, empty: str) -> list:
    """A section: its heading, then ``body(items)`` or, when there are no items, the ``empty`` line."""
    story = [Paragraph(SECTION_LABELS[key], s["h2"])]
    story.extend(body(items) if items else [_p(empty, s["muted"])])
    return story


def scores_section(data: PacketData, s) -> list:
    return _section("scores", s, data.summary.scores, lambda scores: [
        grid_table(["Date", "Scale", "Total", "Band"], [score_cells(x) for x in scores],
                   [80, 60, 50, CONTENT_WIDTH - 190], s, long=True)], "No scores in the period.")


def doses_section(data: PacketData, s) -> list:
    return _section("doses", s, data.summary.doses, lambda doses: [
        _p(f"{len(doses)} doses in the period. Times in the clinic's time zone.", s["muted"]),
        grid_table(DOSE_HEADER, [dose_cells(d) for d in doses], DOSE_WIDTHS, s, long=True)],
        "No doses logged in the period.")


def _plan_table(plans: list, s) -> list:
    rows = [[str(p.version), p.effective, f"{fmt_number(p.dose_mg)} mg", p.formulation,
             f"every {p.interval_days} d", p.status, f"{p.approved_by}\n{p.approved_at}", p.rationale or "—"]
            for p in plans]
    return [grid_table(["Ver.", "Effective", "Dose", "Formulation", "Interval", "Status", "Approved by",
                        "Rationale"], rows, [26, 54, 40, 66, 48, 40, 110, CONTENT_WIDTH - 384], s)]


def plans_section(data: PacketData, s) -> list:
    return _section("plans", s, data.summary.plans, lambda plans: _plan_table(plans, s),
                    "No treatment plan on record.")


def notes_section(data: PacketData, s) -> list:
    notes = [n for n in data.summary.notes if n.status == "signed"]
    return _section("notes", s, notes, lambda signed: compact_notes(signed, s), "No signed notes in the period.")


BUILDERS = {"summary": summary_section, "scores": scores_section, "doses": doses_section,
            "plans": plans_section, "notes": notes_section}


def packet_story(data: PacketData, styles) -> list:
    story = cover_letter(data, styles) + course_page(data, styles)
    for key in data.request.sections:
        story.append(PageBreak())
        story.extend(BUILDERS[key](data, styles))
    return story


def build_packet_pdf(data: PacketData, invariant: bool = False) -> bytes:
    """Render the packet. Serialised: ReportLab keeps module-level state."""
    with build_lock():
        styles = make_styles()
        buf = io.BytesIO()
        p, meta = data.summary.patient, data.summary.meta
        doc = SimpleDocTemplate(
            buf, pagesize=PAGE_SIZE, leftMargin=MARGIN_X, rightMargin=MARGIN_X, topMargin=54, bottomMargin=60,
            title=f"{DOCUMENT_TITLE} — {p.name} ({p.mrn})", author=data.exporter,
            subject=f"Records released by {data.clinic.name}", creator="KAPNotes", producer="KAPNotes (ReportLab)",
            invariant=1 if invariant else 0, lang="en",
        )
        frame = PageFrame(meta.clinic_name, DOCUMENT_TITLE, p.name, p.mrn, meta.generated_at, meta.generated_by)
        doc.build(packet_story(data, styles), canvasmaker=canvas_maker(frame))
        return buf.getvalue()


__all__ = ["ATTESTATION_TITLE", "COURSE_TITLE", "DOCUMENT_TITLE", "NOTICE_TEXT", "NOTICE_TITLE", "build_packet_pdf"]
