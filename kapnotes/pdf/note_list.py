"""Several signed notes one after another, in their compact form: the treatment summary's full
notes and the records packet's notes section print them so."""

from __future__ import annotations

from reportlab.platypus import CondPageBreak, HRFlowable, Spacer

from kapnotes.pdf.note_pdf import CONTENT_WIDTH, note_flowables
from kapnotes.pdf.styles import RULE


def compact_notes(notes, s, *, gap: float = 0, rule_space: float = 8) -> list:
    """Each note (``note_flowables``, compact, h3 headings) on a fresh page when less than 160 pt
    remain; between two notes a thin rule, ``rule_space`` pt below a ``gap`` (pt) if any."""
    story: list = []
    for i, note in enumerate(notes):
        if i:
            if gap:
                story.append(Spacer(1, gap))
            story.append(HRFlowable(width=CONTENT_WIDTH, thickness=1, color=RULE, spaceBefore=rule_space,
                                    spaceAfter=1, hAlign="LEFT"))
        story.append(CondPageBreak(160))
        story.extend(note_flowables(note, s, heading_style="h3", compact=True))
    return story
