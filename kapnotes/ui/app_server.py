"""The served app: Streamlit's ``st.App`` around app.py with our routes, edge middleware and
lifespan (``kapnotes.server``). The one place outside the pages that builds on Streamlit;
``kapnotes.asgi`` re-exports ``app`` for ``uvicorn kapnotes.asgi:app``."""

from __future__ import annotations

import streamlit as st

from kapnotes.config import PROJECT_ROOT
from kapnotes.server import lifespan, middleware, routes

app = st.App(str(PROJECT_ROOT / "app.py"), lifespan=lifespan, routes=routes(), middleware=middleware())
