"""KAPNotes: clinical documentation for ketamine-assisted psychotherapy.

The package is the domain and service layer. It never imports streamlit (only
``kapnotes.ui`` may), so every rule is enforced the same way for the UI, the CLI
and the tests.
"""

__version__ = "0.1.0"
