"""Streamlit helpers: the only part of ``kapnotes`` that imports streamlit.

- ``guard``: the sign-in guard every page starts with (``require_user``), the signed-out view.
- ``database``: the pages' database handle (``db()``), one engine per URL.
- ``feedback``: ``attempt()`` and ``show_error``/``show_outcome`` — a service's refusal, in words.
- ``patient``: the patient picker and banner; ``notices``: the urgent and decision notices.
- ``*_view.py``: the bodies of the pages (dashboard, dose log, import wizard, review queue, ...).
- ``note_editor_state``: the note editor's state machine; ``components/``: the autosave bridge.
"""
