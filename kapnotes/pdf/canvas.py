"""The page frame: header and footer on every page, "Page X of Y", an optional DRAFT mark.

The total page count is only known at the end, so the canvas keeps each page's state
and draws the header/footer for all pages in ``save()`` (the usual ReportLab recipe). The
header and footer are the same on every page: they are drawn once into a form XObject
that each page places, and only "Page X of Y" is drawn per page.
"""

from __future__ import annotations

from dataclasses import dataclass

from reportlab.lib import colors
from reportlab.pdfgen import canvas as rl_canvas
from reportlab.platypus import Paragraph

from kapnotes.pdf.styles import FONT, FONT_BOLD, MUTED, RULE, esc, make_styles

CONFIDENTIAL = "Confidential — contains protected health information"


@dataclass(frozen=True)
class PageFrame:
    """What every page shows."""

    clinic_name: str
    document_title: str
    patient_name: str
    mrn: str
    generated_at: str  # already formatted in the clinic's zone
    generated_by: str
    draft: bool = False


def canvas_maker(frame: PageFrame):
    """A Canvas class bound to this document's header/footer content."""
    styles = make_styles()
    head_style = styles["small"].clone("frame_head", fontName=FONT_BOLD, textColor=MUTED)
    foot_style = styles["small"].clone("frame_foot", fontSize=7.5, leading=9, textColor=MUTED)

    class NumberedCanvas(rl_canvas.Canvas):
        def __init__(self, *args, **kwargs):
            # the embedded font from the first operator on: no unembedded Helvetica in the file
            kwargs["initialFontName"] = FONT
            super().__init__(*args, **kwargs)
            self._page_states: list[dict] = []

        def showPage(self):
            self._page_states.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            total = len(self._page_states)
            for i, state in enumerate(self._page_states):
                self.__dict__.update(state)
                if i == 0:  # the same header and footer on every page: drawn once, placed per page
                    self.beginForm("kap_frame")
                    self._draw_static()
                    self.endForm()
                self.doForm("kap_frame")
                self._draw_page_number(total)
                super().showPage()
            super().save()

        def _para(self, markup: str, style, x: float, y_top: float, width: float) -> None:
            p = Paragraph(markup, style)
            _, h = p.wrapOn(self, width, 100)
            p.drawOn(self, x, y_top - h)

        def _draw_static(self) -> None:
            page_w, page_h = self._pagesize
            left, right = 42, page_w - 42
            width = right - left
            self.saveState()
            if frame.draft:
                self.saveState()
                self.setFillColor(colors.Color(0.75, 0.1, 0.1, alpha=0.13))
                self.setFont(FONT_BOLD, 110)
                self.translate(page_w / 2, page_h / 2)
                self.rotate(45)
                self.drawCentredString(0, -40, "DRAFT")
                self.restoreState()
            # header: clinic and document on the left, patient on the right
            top = page_h - 24
            self._para(f"{esc(frame.clinic_name)} · {esc(frame.document_title)}", head_style, left, top, width * 0.55)
            self._para(f"{esc(frame.patient_name)} · MRN {esc(frame.mrn)}",
                       head_style.clone("frame_head_r", alignment=2), left + width * 0.45, top, width * 0.55)
            self.setStrokeColor(RULE)
            self.setLineWidth(0.6)
            self.line(left, page_h - 40, right, page_h - 40)
            # footer
            self.line(left, 46, right, 46)
            self._para(f"<b>{esc(CONFIDENTIAL)}</b>", foot_style, left, 42, width * 0.75)
            self._para(f"Generated {esc(frame.generated_at)} by {esc(frame.generated_by)}", foot_style, left, 31,
                       width * 0.75)
            self.restoreState()

        def _draw_page_number(self, total: int) -> None:
            self.saveState()
            self.setFont(FONT_BOLD, 8.5)
            self.setFillColor(MUTED)
            self.drawRightString(self._pagesize[0] - 42, 33, f"Page {self._pageNumber} of {total}")
            self.restoreState()

    NumberedCanvas.__name__ = "NumberedCanvas"
    return NumberedCanvas


__all__ = ["CONFIDENTIAL", "FONT", "PageFrame", "canvas_maker"]
