"""PDF documents (ReportLab Platypus): a session note, a treatment summary.

Importing this package locks ReportLab down: no host and no URL scheme is trusted, so
nothing in a document can make rendering fetch a URL. (Local paths are never given to
ReportLab from user text either: every user string is escaped, see ``styles.esc``.)
ReportLab keeps module-level state and is not thread-safe: every build holds
``BUILD_LOCK``.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from reportlab import rl_config

rl_config.trustedHosts = []
rl_config.trustedSchemes = []

BUILD_LOCK = threading.RLock()


@contextmanager
def build_lock():
    """Hold the process-wide build lock and make sure ReportLab is still locked down."""
    with BUILD_LOCK:
        rl_config.trustedHosts = []
        rl_config.trustedSchemes = []
        yield
