"""The security headers every HTTP response carries, Streamlit's own included (deploy/nginx sends
the same set, so a response looks the same whether or not it passed the proxy)."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
from pathlib import Path


def _streamlit_index() -> Path | None:
    spec = importlib.util.find_spec("streamlit")  # its files, without importing it here
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent / "static" / "index.html"


def _streamlit_inline_script_hashes() -> list[str]:
    """Streamlit's index.html has one small inline script; allow exactly it by hash."""
    index = _streamlit_index()
    try:
        page = index.read_text(encoding="utf-8") if index else ""
    except OSError:
        return []
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in re.findall(r"<script>(.*?)</script>", page, flags=re.S)
    ]


CSP = "; ".join([
    "default-src 'self'",
    # blob: for Streamlit's v2 components, whose JS (shipped with the app, e.g. the note editor's
    # autosave bridge) Streamlit loads from a blob URL it creates itself; only same-origin script
    # can create one, and no inline script or other origin is allowed
    "script-src 'self' blob: " + " ".join(_streamlit_inline_script_hashes()),
    "style-src 'self' 'unsafe-inline'",  # Streamlit's CSS-in-JS writes style elements at run time
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",  # includes the same-origin websocket
    "media-src 'self' blob:",
    "worker-src 'self' blob:",
    "frame-src 'self' blob: data:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])


def security_headers(https: bool) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CSP,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",  # frame-ancestors for old browsers
    }
    if https:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    return headers
