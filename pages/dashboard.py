"""Patient dashboard: the page a clinician opens before a session.

Active plan and its history, GAD-7/PHQ-9 with the dose steps, per-dose effects and BP,
adherence, the last session's plan and homework; the red-flag banner comes first
(``kapnotes/ui/dashboard_view.py``). Then the sections other features own, one call each.
"""

from kapnotes.ui import checkin_panel, dashboard_view, suggestion_panel
from kapnotes.ui.database import db
from kapnotes.ui.export_buttons import dashboard_section
from kapnotes.ui.guard import require_user

actor = require_user("therapist", "prescriber")
pid = dashboard_view.show(actor)

with db() as session:
    suggestion_panel.render(session, actor, pid)
dashboard_section(actor, pid)
checkin_panel.render(actor, pid)
