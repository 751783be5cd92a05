"""Patient check-in (no account): reachable only through a valid check-in link.

The guard is the link itself: without a live link the page shows one generic refusal. The
link arrives as ``?t=`` (AppTest, older links) or, after ``GET /checkin?t=``, as the HttpOnly
``kapnotes_checkin`` cookie, which survives a reload (kapnotes.checkin_routes).
"""

from kapnotes.ui.checkin_panel import patient_page, remember_cookie_link

remember_cookie_link()
patient_page()
