"""Patient check-in (no account): reachable only through a valid check-in link.

The guard is the link itself: without a live link the page shows one generic refusal.
"""

from kapnotes.ui.checkin_panel import patient_page

patient_page()
