"""One session note as a PDF: who, when, every structured field with its label, free text,
linked doses and scores, addenda in order, and the signature block.

Field labels and their order come from ``kapnotes.notes.templates`` (the one definition the
form, validation and PDF share). A stored field the template does not know is still
printed, under its key name, after the template's fields: a PDF must never hide content.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from reportlab.lib.pagesizes import LETTER
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import (
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from kapnotes import vocab
from kapnotes.notes.templates import display_value, template
from kapnotes.pdf import build_lock
from kapnotes.pdf.canvas import PageFrame, canvas_maker
from kapnotes.pdf.model import DocMeta, DoseRow, NoteData, PatientInfo, ScoreRow
from kapnotes.pdf.styles import (
    ACCENT,
    BAND,
    FONT,
    RULE,
    WARN,
    drawable_in_main_font,
    esc,
    make_styles,
    plain_text,
    text_blocks,
)
from kapnotes.pdf.tables import LongTextTable, TextTable

MODALITY_LABELS = vocab.MODALITY_WORDS  # the name kapnotes.pdf.summary_pdf imports

PAGE_SIZE = LETTER
MARGIN_X = 42
CONTENT_WIDTH = PAGE_SIZE[0] - 2 * MARGIN_X


# --- values -------------------------------------------------------------------------


def note_type_label(note_type: str) -> str:
    return vocab.note_type_word(note_type)


def humanize_key(key: str) -> str:
    return str(key).replace("_", " ").strip().capitalize() or str(key)


def fmt_number(value: float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _option_label(spec: Any, value: Any) -> str | None:
    options = getattr(spec, "options", None) or ()
    for opt in options:
        if isinstance(opt, (tuple, list)) and len(opt) == 2 and opt[0] == value:
            return str(opt[1])
    if isinstance(options, dict) and value in options:
        return str(options[value])
    return None


def format_value(value: Any, spec: Any = None) -> str:
    """A stored field value as text to print (not yet escaped)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, (list, tuple, set)):
        parts = [format_value(v, spec) for v in value]
        return ", ".join(parts) if parts else "—"
    if isinstance(value, dict):
        return "; ".join(f"{humanize_key(k)}: {format_value(v)}" for k, v in value.items()) or "—"
    label = _option_label(spec, value) if spec is not None else None
    if label is not None:
        return label
    text = fmt_number(value) if isinstance(value, (int, float)) else str(value)
    unit = getattr(spec, "unit", None) if spec is not None else None
    if unit and isinstance(value, (int, float)):
        text = f"{text} {unit}"
    return text


def template_fields(note_type: str) -> tuple:
    """The template's FieldSpecs in print order, or () for a type without a template."""
    try:
        return tuple(template(note_type).fields)
    except Exception:  # noqa: BLE001 - an unknown type still prints every stored field by key
        return ()


SYSTEM_LABELS = {
    "dose_differs_from_plan": "Dose differs from the active plan",
    "plan_dose_mg": "Active plan dose at the time (mg)",
    "plan_formulation": "Active plan formulation at the time",
}


def _display(spec: Any, value: Any) -> str:
    try:
        return display_value(spec, value)
    except Exception:  # noqa: BLE001 - an odd stored value still prints
        return format_value(value, spec)


def unanswered(value: Any) -> bool:
    """No answer recorded: None, blank text or an empty list/dict. Unlike the form's
    ``note_templates.is_blank``, False and 0 are answers on paper ("No", "0")."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, set, dict)):
        return len(value) == 0
    return False


def field_rows(note_type: str, fields: dict, skip_empty: bool = False) -> list[tuple[str, str, str]]:
    """(section, label, value) for every template field, then any stored field it lacks.

    Template fields print in template order with their labels (empty ones as "—", or left
    out with ``skip_empty``); a stored key the template does not know prints by its key name
    afterwards.
    """
    fields = dict(fields or {})
    rows: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for spec in template_fields(note_type):
        name = getattr(spec, "name", None)
        if name is None:
            continue
        seen.add(name)
        if skip_empty and unanswered(fields.get(name)):
            continue
        label = getattr(spec, "label", None) or humanize_key(name)
        section = getattr(spec, "section", None) or ""
        rows.append((str(section), str(label), _display(spec, fields.get(name))))
    for key in fields:
        if key in seen or (skip_empty and unanswered(fields[key])):
            continue
        rows.append(("Other recorded fields", SYSTEM_LABELS.get(key, str(key)), format_value(fields[key])))
    return rows


# --- flowables ----------------------------------------------------------------------


def _kv_style(label_cols: tuple[int, ...], value_cols: tuple[int, ...], styles) -> TableStyle:
    lab, val = styles["label"], styles["value"]
    cmds = [
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.3, RULE),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
        ("LEFTPADDING", (0, 0), (-1, -1), 2),
        ("RIGHTPADDING", (0, 0), (-1, -1), 6),
    ]
    for cols, st in ((label_cols, lab), (value_cols, val)):  # "FONT" sets name, size and leading at once
        for c in cols:
            cmds += [("FONT", (c, 0), (c, -1), st.fontName, st.fontSize, st.leading),
                     ("TEXTCOLOR", (c, 0), (c, -1), st.textColor)]
    return TableStyle(cmds)


def _fields_table(rows: list[tuple[str, str, str]], styles, label_width: float = 175,
                  width: float = CONTENT_WIDTH) -> Table:
    """A note's structured fields as one label/value table (it splits across pages by rows);
    each section starts with its name on a row spanning both columns."""
    vw = width - label_width
    sec_style = styles["label"].clone("sec", textColor=ACCENT)
    data: list[list] = []
    extra: list[tuple] = []
    section = None
    for sec, label, value in rows:
        if sec != section:
            if sec:
                r = len(data)
                data.append([table_cell(sec, width, sec_style, pad=8), ""])
                extra += [("SPAN", (0, r), (1, r)), ("TEXTCOLOR", (0, r), (0, r), ACCENT),
                          ("TOPPADDING", (0, r), (-1, r), 6)]
            section = sec
        data.append([table_cell(label, label_width, styles["label"], pad=8),
                     table_cell(value, vw, styles["value"], pad=8)])
    t = TextTable(data, colWidths=[label_width, vw], hAlign="LEFT", splitInRow=1)
    t.setStyle(TableStyle(list(_kv_style((0,), (1,), styles).getCommands()) + extra))
    return t


def _kv_grid(rows: list[tuple[str, str]], styles, width: float = CONTENT_WIDTH) -> Table:
    """Label/value pairs two to a row: a compact header block."""
    lw = 84
    vw = width / 2 - lw
    cells = [[table_cell(k, lw, styles["label"], pad=8), table_cell(v, vw, styles["value"], pad=8)] for k, v in rows]
    if len(cells) % 2:
        cells.append(["", ""])
    data = [cells[i] + cells[i + 1] for i in range(0, len(cells), 2)]
    t = TextTable(data, colWidths=[lw, vw, lw, vw], hAlign="LEFT")
    t.setStyle(_kv_style((0, 2), (1, 3), styles))
    return t


CELL_PAD = 3


WRAP_MAX_LINES = 40  # longer cell text goes to a Paragraph (same look; it may need its rules)


def wrap_lines(text: str, font: str, size: float, room: float) -> list[str] | None:
    """``text`` broken at spaces into lines no wider than ``room`` (blank lines kept, as a
    Paragraph's <br/><br/> would); None when a single word is wider than ``room``."""
    lines: list[str] = []
    for line in text.split("\n"):
        if stringWidth(line, font, size) <= room:
            lines.append(line)
            continue
        parts = simpleSplit(line, font, size, room) or [""]
        if any(stringWidth(part, font, size) > room for part in parts):
            return None
        lines.extend(parts)
    return lines


def table_cell(text: str, width: float, style, pad: float = 2 * CELL_PAD):
    """A table cell: a plain string, wrapped at word boundaries to the column, when the main font
    draws all of it (cheap, drawn verbatim by the table, never parsed as markup); else an
    escaped Paragraph (right-to-left or CJK runs, words wider than the column, very long text)."""
    text = plain_text(text)
    if text and len(text) < 80 * WRAP_MAX_LINES and drawable_in_main_font(text):
        lines = wrap_lines(text, style.fontName, style.fontSize, width - pad - 0.5)
        if lines is not None and len(lines) <= WRAP_MAX_LINES:
            return "\n".join(lines)
    return Paragraph(esc(text), style)


def grid_table(header: list[str], rows: list[list[str]], widths: list[float], styles, repeat: bool = True,
               long: bool = False):
    """A data table: cells wrap (long text), the header row repeats on each page."""
    cell, head = styles["cell"], styles["head_cell"]
    # header labels that fit are plain strings (drawn verbatim, bold white via the style below)
    data = [[table_cell(h, w, head) for h, w in zip(header, widths, strict=True)]]
    data += [[table_cell(c, w, cell) for c, w in zip(row, widths, strict=True)] for row in rows]
    cls = LongTextTable if long else TextTable
    t = cls(data, colWidths=widths, repeatRows=1 if repeat else 0, hAlign="LEFT", splitInRow=1)
    t.setStyle(TableStyle([
        # each command visits every cell: "FONT" sets name, size and leading in one pass
        ("FONT", (0, 1), (-1, -1), cell.fontName, cell.fontSize, cell.leading),
        ("TEXTCOLOR", (0, 1), (-1, -1), cell.textColor),
        ("FONT", (0, 0), (-1, 0), head.fontName, cell.fontSize, cell.leading),
        ("TEXTCOLOR", (0, 0), (-1, 0), head.textColor),
        ("BACKGROUND", (0, 0), (-1, 0), ACCENT),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [None, BAND]),  # None: white paper, no rectangle drawn
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
        ("LEFTPADDING", (0, 0), (-1, -1), CELL_PAD),
        ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PAD),
    ]))
    return t


def dose_cells(d: DoseRow) -> list[str]:
    anxiety = f"{fmt_number(d.anxiety_before)} → {fmt_number(d.anxiety_after)}" \
        if d.anxiety_before is not None or d.anxiety_after is not None else "—"
    form = vocab.FORMULATION_SHORT.get(d.formulation, d.formulation)
    if d.administration:
        form = f"{form}, {vocab.administration_word(d.administration)}"
    bp = f"{d.bp_pre or '—'} →\n{d.bp_post or '—'}"
    events = vocab.adverse_events_text(d.adverse_events, "; ") if d.adverse_events else ""
    if d.vomited:
        events = f"vomited; {events}" if events else "vomited"
    return [
        d.taken_at.replace(" ", "\n", 1), f"{fmt_number(d.dose_mg)} mg", form,
        vocab.CONTEXT_SHORT.get(d.context, d.context), anxiety,
        fmt_number(d.dissociation), fmt_number(d.nausea), bp, fmt_number(d.heart_rate), events or "—",
        d.notes or "",
    ]


DOSE_HEADER = ["Taken", "Dose", "Form", "Context", "Anxiety before → after", "Diss.", "Naus.",
               "BP pre → post (mmHg)", "HR", "Adverse events", "Notes"]
DOSE_WIDTHS = [58, 36, 52, 46, 40, 29, 31, 56, 22, 64, 94]


def score_cells(s: ScoreRow) -> list[str]:
    extra = ""
    if s.instrument == "PHQ-9" and s.item9:
        extra = f" · item 9 = {s.item9} (self-harm thoughts)"
    return [s.administered_on.isoformat(), s.instrument, str(s.total), f"{s.band}{extra}"]


def note_flowables(note: NoteData, styles, heading_style: str = "title", show_heading: bool = True,
                   compact: bool = False) -> list:
    """The body of one note, used alone (note PDF) and inside the treatment summary.

    ``compact`` (the summary, where dozens of notes follow the dose log): the note is one
    label/value table, see ``_compact_body``.
    """
    story: list = []
    title = f"{note_type_label(note.note_type)} note — {note.session_date.isoformat()}"
    if show_heading:
        story.append(Paragraph(esc(title), styles[heading_style]))
    if note.status != "signed":
        story.append(Paragraph("DRAFT — this note is not signed and may still change.", styles["warn"]))
    times = "–".join(t for t in (note.start_time, note.end_time) if t) or "—"
    status = "Signed" if note.status == "signed" else "Draft (unsigned)"
    modality = MODALITY_LABELS.get(note.modality, note.modality)
    if compact:
        story.extend(_compact_body(note, styles, f"{note.author} · {times} (clinic time) · {modality} · {status}"))
        story.extend(_addenda(note, styles))
        return story
    story.append(_kv_grid([
        ("Note type", note_type_label(note.note_type)),
        ("Session date", note.session_date.isoformat()),
        ("Time (clinic)", times),
        ("Modality", modality),
        ("Author", note.author),
        ("Status", status),
    ], styles))
    if note.carried_over:
        story.append(Paragraph("Some content was carried over from the previous note of this type.",
                               styles["muted"]))

    rows = field_rows(note.note_type, note.fields)
    if rows:
        story.append(Paragraph("Structured fields", styles["h3"]))
        story.append(_fields_table(rows, styles))

    story.append(Paragraph("Free text", styles["h3"]))
    if (note.free_text or "").strip():
        story.extend(text_blocks(note.free_text, styles["value"]))  # linear time however long the note
    else:
        story.append(Paragraph("—", styles["value"]))

    if note.doses:
        story.append(Paragraph("Linked dose-log entries", styles["h3"]))
        story.append(grid_table(DOSE_HEADER, [dose_cells(d) for d in note.doses], DOSE_WIDTHS, styles))
    if note.scores:
        story.append(Paragraph("Linked scores", styles["h3"]))
        story.append(grid_table(["Date", "Scale", "Total", "Band"], [score_cells(s) for s in note.scores],
                                [80, 60, 50, CONTENT_WIDTH - 190], styles))

    story.append(Spacer(1, 6))
    story.append(KeepTogether(signature_block(note, styles)))
    story.extend(_addenda(note, styles))
    return story


RECORD_SECTION = "Free text, links and signature"


def _compact_body(note: NoteData, styles, session_line: str) -> list:
    """The summary's form of a note: one label/value table (plain text, drawn verbatim) with
    the session line, the fields that have an answer, the free text, the linked doses and
    scores (their rows are in the summary's own tables) and the signature. A hash that does
    not match the content is also printed in red under the table."""
    rows = [("", "Author, time, modality", session_line)]
    if note.carried_over:
        rows.append(("", "Carried over", "Some content was carried over from the previous note of this type."))
    rows += field_rows(note.note_type, note.fields, skip_empty=True)
    rows.append((RECORD_SECTION, "Free text", note.free_text if (note.free_text or "").strip() else "—"))
    if note.doses:
        rows.append((RECORD_SECTION, "Linked dose-log entries (in the dose log above)",
                     "; ".join(f"{d.taken_at}, {fmt_number(d.dose_mg)} mg" for d in note.doses)))
    if note.scores:
        rows.append((RECORD_SECTION, "Linked scores", "; ".join(
            f"{x.instrument} {x.total} ({x.band}) on {x.administered_on.isoformat()}" for x in note.scores)))
    if note.status == "signed":
        rows.append((RECORD_SECTION, "Electronically signed",
                     f"by {note.signed_by or '—'} on {note.signed_at or '—'}"))
        check = {True: " — matches the note's content as printed", False: " — DOES NOT MATCH the content"}
        rows.append((RECORD_SECTION, "Content hash (SHA-256)",
                     f"{note.content_hash or '—'}{check.get(note.hash_verified, '')}"))
    else:
        rows.append((RECORD_SECTION, "Status", "DRAFT — not signed. This note may still change; it is not part "
                                               "of the signed record."))
    out: list = [_fields_table(rows, styles)]
    if note.status == "signed" and note.hash_verified is False:
        out.append(Paragraph("WARNING: the stored hash does not match the note's content.", styles["warn"]))
    return out


def _addenda(note: NoteData, styles) -> list:
    story: list = []

    if note.addenda:
        story.append(Paragraph(f"Addenda ({len(note.addenda)})", styles["h3"]))
        for i, a in enumerate(note.addenda, start=1):
            head = Paragraph(f"<b>Addendum {i}</b> — {esc(a.author)}, signed {esc(a.signed_at)}", styles["base"])
            body = Paragraph(esc(a.text), styles["value"])
            digest = Paragraph(f"SHA-256 {esc(a.content_hash)}", styles["mono"])
            box = Table([[head], [body], [digest]], colWidths=[CONTENT_WIDTH], hAlign="LEFT", splitInRow=1)
            box.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), FONT), 
                ("LINEBEFORE", (0, 0), (0, -1), 2, ACCENT),
                ("LEFTPADDING", (0, 0), (-1, -1), 8),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]))
            story.append(KeepTogether([box, Spacer(1, 5)]))
    return story


def signature_block(note: NoteData, styles) -> list:
    """The signature in a banded box (the single-note PDF; the summary prints it as table rows)."""
    if note.status == "signed":
        lines = [
            f"<b>Electronically signed</b> by {esc(note.signed_by or '—')} on {esc(note.signed_at or '—')}",
            f"Content hash (SHA-256): {esc(note.content_hash or '—')}",
        ]
        if note.hash_verified is True:
            lines.append("The hash matches the note's content as printed.")
        elif note.hash_verified is False:
            lines.append("<font color='#b42318'><b>WARNING: the stored hash does not match the note's "
                         "content.</b></font>")
        border = ACCENT
    else:
        lines = ["<b>DRAFT — not signed.</b> This note may still change; it is not part of the signed record."]
        border = WARN
    cell = [Paragraph(line, styles["small"] if i else styles["base"]) for i, line in enumerate(lines)]
    t = Table([[cell]], colWidths=[CONTENT_WIDTH], hAlign="LEFT")
    t.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), FONT), 
        ("BOX", (0, 0), (-1, -1), 0.8, border),
        ("BACKGROUND", (0, 0), (-1, -1), BAND),
        ("LEFTPADDING", (0, 0), (-1, -1), 8),
        ("TOPPADDING", (0, 0), (-1, -1), 5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
    ]))
    return [t]


def patient_block(patient: PatientInfo, styles, extra: Iterable[tuple[str, str]] = ()) -> Table:
    rows = [
        ("Patient", patient.name),
        ("MRN", patient.mrn),
        ("Date of birth", patient.date_of_birth.isoformat()),
        *extra,
    ]
    return _kv_grid(rows, styles)


# --- document -----------------------------------------------------------------------


def build_note_pdf(meta: DocMeta, patient: PatientInfo, note: NoteData, invariant: bool = False) -> bytes:
    """Render one note. Serialised: ReportLab keeps module-level state."""
    with build_lock():
        styles = make_styles()
        buf = io.BytesIO()
        title = f"{note_type_label(note.note_type)} note — {note.session_date.isoformat()}"
        doc = SimpleDocTemplate(
            buf, pagesize=PAGE_SIZE, leftMargin=MARGIN_X, rightMargin=MARGIN_X, topMargin=54, bottomMargin=60,
            title=f"{title} — {patient.name} ({patient.mrn})",
            author=note.author, subject=f"Session note {note.id} ({note.status}) — {meta.clinic_name}",
            creator="KAPNotes", producer="KAPNotes (ReportLab)", invariant=1 if invariant else 0,
            lang="en",
        )
        story = [
            Paragraph(esc(meta.clinic_name), styles["clinic"]),
            Paragraph(esc(title), styles["title"]),
            patient_block(patient, styles),
            Spacer(1, 8),
            *note_flowables(note, styles, show_heading=False),
        ]
        frame = PageFrame(meta.clinic_name, "Session note", patient.name, patient.mrn, meta.generated_at,
                          meta.generated_by, draft=note.status != "signed")
        doc.build(story, canvasmaker=canvas_maker(frame))
        return buf.getvalue()


__all__ = [
    "CONTENT_WIDTH", "DOSE_HEADER", "DOSE_WIDTHS", "build_note_pdf", "dose_cells", "field_rows", "format_value",
    "grid_table", "note_flowables", "note_type_label", "patient_block", "score_cells",
]
