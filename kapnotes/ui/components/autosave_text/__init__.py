"""Save a draft's free text while the clinician types, not only when the cursor leaves the field.

Streamlit's text areas send their value on blur or Ctrl+Enter. ``autosave_bridge`` mounts a
small ``st.components.v2`` component (no visible element) that commits every text field whose
widget key starts with ``prefix`` after ``delay_ms`` of no typing, and at once when the page is
hidden (``visibilitychange``) or closed (``pagehide``). The commit goes through the widget's own
path, so the page's autosave and its conflict check run as for any change, widgets stay native
(labels, help, AppTest), and nothing is pushed back into a field while someone types.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

_JS = (Path(__file__).with_name("autosave.js")).read_text(encoding="utf-8")
_component = st.components.v2.component("kapnotes_autosave_bridge", js=_JS, isolate_styles=False)


def autosave_bridge(prefix: str, delay_ms: int = 2000, key: str = "autosave_bridge") -> None:
    """Mount the bridge once per page, for text fields whose keys start with ``prefix``."""
    _component(key=key, data={"prefix": prefix, "delay": int(delay_ms)})
