"""A list of records as a table of widgets (my drafts, patients, the notes timeline): a bold
header row, then one row of columns per record, its widgets centred vertically."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

import streamlit as st

T = TypeVar("T")


def table_rows(widths: Sequence[float], labels: Sequence[str], items: Iterable[T]) -> Iterator[tuple[T, list]]:
    """Draw the header (``labels`` in bold over columns of ``widths``), then give each item with its
    row of columns (the same widths) to fill: ``for r, c in table_rows(...): c[0].text(r.mrn)``."""
    for col, label in zip(st.columns(list(widths)), labels):
        col.markdown(f"**{label}**")
    for item in items:
        yield item, st.columns(list(widths), vertical_alignment="center")
