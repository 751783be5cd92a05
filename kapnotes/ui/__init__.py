"""Shared Streamlit widgets: the one place besides ``pages/`` and ``app.py`` that imports streamlit."""
