"""The patient handout: the current plan in plain words, what to do about side effects,
when to call, the crisis line, and the check-in link as a QR code.

It is given to the patient, so it carries no diagnosis, no scores, no MRN and no notes:
only the first name, the plan and the link. Every string from the record goes through
``esc`` (a plan's instructions are typed text).
"""

from __future__ import annotations

import io
from functools import partial

from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.pagesizes import LETTER
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from kapnotes.pdf import build_lock
from kapnotes.pdf.handout_data import HandoutData, PlanWords
from kapnotes.pdf.styles import FONT, RULE, esc, make_styles

QR_SIZE = 170  # points: about 6 cm, easy for a phone camera


def how_often(days: int) -> str:
    if days == 1:
        return "once a day"
    if days == 7:
        return "once a week (every 7 days)"
    return f"once every {days} days"


def plan_lines(plan: PlanWords | None) -> list[str]:
    """The plan as sentences a patient reads (plain text, escaped later)."""
    if plan is None:
        return ["You have no active dosing plan right now. Do not take a dose until your prescriber tells you to."]
    after = ("then spit it out (do not swallow it)" if plan.administration == "spit"
             else "then swallow what is left")
    lines = [
        f"Your dose: {plan.dose_mg:g} mg of ketamine, as a {plan.formulation_words}.",
        f"How often: {how_often(plan.interval_days)}. Never take more, or more often, than this.",
        f"How to take it: keep it in your mouth for {plan.minutes_in_mouth} minutes without swallowing, {after}.",
        f"Before the dose: {plan.fasting}",
        "Take it sitting or lying down in a safe, quiet place, with someone you trust nearby if your clinic asked "
        "for that. Do not drive, cycle or use machines until the next day.",
    ]
    if plan.instructions:
        lines.append(f"Your prescriber adds: {plan.instructions}")
    return lines


def side_effects_help(bp_hold: tuple[int, int] = (180, 110)) -> tuple[tuple[str, str], ...]:
    """What to do about the common side effects; the blood pressure to call at is the clinic's
    hold threshold (the protocol in force), so the handout and the dose rules agree."""
    systolic, diastolic = bp_hold
    return (
    ("Nausea", "Sip water slowly and rest with your head raised. If you vomit, do not take another dose to make "
               "up for it. Tell us in your check-in."),
    ("Dizziness", "Stay sitting or lying down until it passes. Get up slowly, and have someone with you when you "
                  "first walk."),
    ("High blood pressure", "If you have a home monitor, check it before and about an hour after the dose. If the "
                            f"top number is {systolic} or more, or the bottom number {diastolic} or more, rest and "
                            "check again in 15 minutes; if it is still that high, call the clinic. With chest pain, "
                            "a severe headache or trouble speaking, call 911."),
    )

WHEN_TO_CALL = (
    "Call the clinic if you took more than your dose, vomited soon after taking it, fell, fainted, or felt very "
    "confused or frightened during the dose; if a side effect does not pass by the next day; or before a dose if "
    "you are unwell or started a new medicine.",
    "Call 911 (or go to the nearest emergency room) for chest pain, trouble breathing, a seizure, or if you "
    "cannot be woken.",
)


def handout_story(data: HandoutData, styles) -> list:
    body = styles["base"].clone("hand_body", fontSize=11, leading=15, spaceAfter=5)
    h2 = styles["h2"]
    qr = QrCodeWidget(data.url, barLevel="M")
    x1, y1, x2, y2 = qr.getBounds()
    drawing = Drawing(QR_SIZE, QR_SIZE, transform=[QR_SIZE / (x2 - x1), 0, 0, QR_SIZE / (y2 - y1), 0, 0])
    drawing.add(qr)
    link_text = [
        Paragraph("Check in after each dose", styles["h3"]),
        Paragraph(esc("Scan the code with your phone's camera after each dose to tell us how it went. "
                      "The link is for you only: do not share it."), body),
        Paragraph(esc(f"It works until {data.expires_on}."), body),
        Paragraph(esc(data.url), styles["mono"]),
    ]
    table = Table([[drawing, link_text]], colWidths=[QR_SIZE + 16, None])
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOX", (0, 0), (-1, -1), 0.6, RULE),
                               ("LEFTPADDING", (0, 0), (-1, -1), 8), ("TOPPADDING", (0, 0), (-1, -1), 8)]))
    # the check-in code first: on page 1, where the patient looks for it
    story: list = [
        Paragraph(esc(data.clinic_name), styles["clinic"]),
        Paragraph("Your at-home ketamine plan", styles["title"]),
        Paragraph(esc(f"For {data.first_name}") if data.first_name else "", body),
        Spacer(1, 4),
        KeepTogether([table]),
        Paragraph("Your plan", h2),
    ]
    story += [Paragraph("• " + esc(line), body) for line in plan_lines(data.plan)]
    story.append(Paragraph("If you have side effects", h2))
    for title, text in side_effects_help(data.bp_hold):
        story.append(Paragraph(f"<b>{esc(title)}.</b> {esc(text)}", body))
    story.append(Paragraph("When to call", h2))
    story += [Paragraph(esc(text), body) for text in WHEN_TO_CALL]
    story.append(Paragraph("If you are thinking about hurting yourself", h2))
    story.append(Paragraph(esc(f"Call or text now: {data.crisis_line}. If you are in danger, call 911."), body))
    return story


def build_handout_pdf(data: HandoutData) -> bytes:
    """Render the handout (serialised: ReportLab keeps module-level state)."""
    with build_lock():
        styles = make_styles()
        buf = io.BytesIO()
        doc = SimpleDocTemplate(buf, pagesize=LETTER, leftMargin=54, rightMargin=54, topMargin=48, bottomMargin=48,
                                title="Your at-home ketamine plan", author=data.clinic_name,
                                creator="KAPNotes", producer="KAPNotes (ReportLab)", lang="en")
        # the embedded font from the first operator on: no unembedded Helvetica in the file
        doc.build(handout_story(data, styles), canvasmaker=partial(Canvas, initialFontName=FONT))
        return buf.getvalue()
