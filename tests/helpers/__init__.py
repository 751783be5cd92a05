"""Helpers shared by test modules (a test module never imports another test module).

- ``uitext``: the pages listed in app.py, and all text an AppTest run rendered.
- ``records``: clinical histories written straight to the database (doses, scores, notes).
- ``words``: the scanner for code-like words a clinician should never read.
- ``axe``: axe-core accessibility checks in the browser tier.
- ``browser``: the browser tier's server, waits and moves (``start_server``, ``sign_in``, ``wait_idle``).
- ``apptest``: the AppTest harness ``run_page``.
- ``threads``: code run in several threads at once.
- ``dosefiles``: dose CSV files for the import tests.
"""
