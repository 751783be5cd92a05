"""The entry point: ``uvicorn kapnotes.asgi:app`` (``make run``, deploy/kapnotes@.service).

The app is built in ``kapnotes.ui.app_server`` (Streamlit's ``st.App``) from the pieces in
``kapnotes.server``; this module only refuses to serve with the AppTest sign-in flag set.
"""

from __future__ import annotations

import os

TEST_SIGN_IN_FLAG = "KAPNOTES_APPTEST_SIGN_IN"  # see kapnotes.ui.guard; never in a served process
if os.environ.get(TEST_SIGN_IN_FLAG):
    raise RuntimeError(f"{TEST_SIGN_IN_FLAG} is for AppTest only; unset it to serve KAPNotes.")

from kapnotes.ui.app_server import app  # noqa: E402  (only after the check above)

__all__ = ["app"]
