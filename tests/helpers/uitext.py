"""Helpers for AppTest: the pages listed in app.py, and all text a run rendered."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def app_pages() -> list[tuple[str, str, str, tuple[str, ...], str]]:
    """The PAGES table of app.py, read without running Streamlit."""
    tree = ast.parse((ROOT / "app.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PAGES" for t in node.targets):
            return [tuple(row) for row in ast.literal_eval(node.value)]
    raise AssertionError("app.py has no PAGES table")


def rendered_text(at) -> str:
    """Every string an AppTest run put on screen: values, labels, bodies, options, table cells."""
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
        for attr in ("value", "label", "body", "help", "placeholder"):
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
