"""The AppTest harness itself: what keeps 300-odd page tests inside the suite's time."""

from __future__ import annotations

import importlib.metadata

from streamlit.testing.v1 import AppTest


def _page():
    import streamlit as st

    st.write("hello")


def test_installed_packages_are_scanned_for_components_once_per_run(monkeypatch):
    """A new AppTest asks Streamlit to scan every installed package for v2 components; the suite
    answers from the first scan (tests/conftest.py), so later AppTests read no package metadata."""
    AppTest.from_function(_page, default_timeout=30).run()  # the run's first scan, if none came before
    reads = []
    real = importlib.metadata.distributions
    monkeypatch.setattr(importlib.metadata, "distributions", lambda *a, **k: reads.append(1) or real(*a, **k))
    for _ in range(2):
        at = AppTest.from_function(_page, default_timeout=30).run()
        assert not at.exception and at.markdown[0].value == "hello"
    assert reads == []
