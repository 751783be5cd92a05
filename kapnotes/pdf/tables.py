"""ReportLab tables whose plain-text cells share one text object per drawn table.

``Table`` draws each plain-string cell with ``canvas.drawString``: a new PDF text object
(BT … ET), font and colour per line. A treatment summary has thousands of such cells and
that was a third of its build time. These subclasses let ReportLab do all the layout,
splitting and styling as before and only collect the left-aligned plain-string lines into
one text object, drawn when the table (or the part of it on a page) is drawn. Cells that
are flowables (wrapped ``Paragraph``s: long, right-to-left or CJK text) and any other
alignment take ReportLab's own path unchanged.

Plain strings are drawn verbatim (never parsed as markup), exactly as ``drawString`` would.
"""

from __future__ import annotations

from reportlab.platypus import LongTable, Table


class _SharedTextMixin:
    _tx = None

    def draw(self):  # noqa: D401 - ReportLab's API
        canv = self.canv
        self._tx = tx = canv.beginText()
        self._tx_font = self._tx_color = None
        try:
            super().draw()
        finally:
            self._tx = None
        # drawn inside the table's own translation (Table.draw runs within drawOn's transform)
        canv.drawText(tx)

    def _drawCell(self, cellval, cellstyle, pos, size):
        tx = self._tx
        if (tx is None or not isinstance(cellval, str) or cellstyle.alignment != "LEFT" or cellstyle.direction
                or cellstyle.shaping or cellstyle.href or cellstyle.destination):
            return super()._drawCell(cellval, cellstyle, pos, size)
        colpos, rowpos = pos
        _colwidth, rowheight = size
        font = (cellstyle.fontname, cellstyle.fontsize, cellstyle.leading)
        if font != self._tx_font:
            tx.setFont(*font)
            self._tx_font = font
        if cellstyle.color != self._tx_color:
            tx.setFillColor(cellstyle.color)
            self._tx_color = cellstyle.color
        lines = cellval.split("\n")
        n, leading, fontsize = len(lines), cellstyle.leading, cellstyle.fontsize
        valign = cellstyle.valign
        if valign == "BOTTOM":
            y = rowpos + cellstyle.bottomPadding + n * leading - fontsize
        elif valign == "MIDDLE":
            y = rowpos + (cellstyle.bottomPadding + rowheight - cellstyle.topPadding + n * leading) / 2.0 - fontsize
        else:  # TOP
            y = rowpos + rowheight - cellstyle.topPadding - fontsize
        x = colpos + cellstyle.leftPadding
        for line in lines:
            tx.setTextOrigin(x, y)
            tx.textOut(line)
            y -= leading
        return None


class TextTable(_SharedTextMixin, Table):
    """A ``Table`` drawing its plain-text cells through one text object."""


class LongTextTable(_SharedTextMixin, LongTable):
    """A ``LongTable`` drawing its plain-text cells through one text object."""
