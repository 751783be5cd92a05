"""Helpers for AppTest: the pages listed in app.py, and all text a run rendered."""

from __future__ import annotations

import ast
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def app_pages() -> list[tuple[str, str, str, tuple[str, ...], str]]:
    """The PAGES table of app.py, read without running Streamlit."""
    tree = ast.parse((ROOT / "app.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PAGES" for t in node.targets):
            return [tuple(row) for row in ast.literal_eval(node.value)]
    raise AssertionError("app.py has no PAGES table")


# Widgets whose value is a stored choice (a code); the reader sees its option's words instead.
OPTION_WIDGETS = ("selectbox", "multiselect", "radio", "select_slider", "button_group", "pills", "segmented_control")
TABLES = ("dataframe", "arrow_data_frame", "table")


def _table_text(node) -> list[str]:
    """A table as a reader sees it: the shown columns under their configured headers, then the cells."""
    frame = node.value
    try:
        config = json.loads(node.proto.columns or "{}")
    except ValueError:
        config = {}
    parts = []
    for c in frame.columns:
        cfg = config.get(f"name:{c}") or config.get(str(c)) or {}
        if cfg is None or cfg.get("hidden"):
            continue
        parts.append(str(cfg.get("label") or c))
    parts.append(frame.to_string(header=False, index=False))
    return parts


def rendered_text(at, *, skip: tuple[str, ...] = (), reader: bool = False) -> str:
    """Every string an AppTest run put on screen: values, labels, bodies, options, table cells.

    ``skip``: element types left out (e.g. ``("code", "text_area")``). ``reader=True``: as a reader
    sees it: tables under their configured headers (hidden columns left out), and never the raw
    value of an option widget (its options' words are read instead)."""
    parts: list[str] = []

    def walk(node) -> None:
        children = getattr(node, "children", None)
        if children:
            label = getattr(node, "label", None)  # an expander's or tab's own label is on screen too
            if isinstance(label, str) and label:
                parts.append(label)
            for key in sorted(children):
                walk(children[key])
            return
        kind = getattr(node, "type", "")
        if kind in skip:
            return
        if reader and kind in TABLES:
            parts.extend(_table_text(node))
            return
        attrs = ("value", "label", "body", "help", "placeholder")
        if reader and kind in OPTION_WIDGETS:
            attrs = attrs[1:]
        for attr in attrs:
            try:
                v = getattr(node, attr, None)
            except Exception:  # some elements compute attributes lazily
                v = None
            if v is None or isinstance(v, bool):
                continue
            parts.append(v.to_string() if callable(getattr(v, "to_string", None)) else str(v))
        for opt in getattr(node, "options", None) or ():
            parts.append(str(opt))

    walk(at._tree)
    return "\n".join(parts)
