"""An app process for the memory figure: every page of app.py for the heaviest patient, a first run and a rerun each.

``python -m bench.app_process DATABASE_URL`` (run under bench.memprobe).
"""

import os
import sys
from pathlib import Path

from bench.clinic import Clinic
from bench.pages import app_pages, runner_for, time_interleaved

if __name__ == "__main__":
    os.environ.setdefault("STREAMLIT_LOGGER_LEVEL", "error")
    url = sys.argv[1]
    os.environ["KAPNOTES_DATABASE_URL"] = url
    from sqlalchemy import select

    from kapnotes.db import make_engine
    from kapnotes.models import Patient, User
    from kapnotes.seed import HEAVIEST_MRN

    eng = make_engine(url)
    with eng.connect() as conn:
        heavy = conn.execute(select(Patient.id).where(Patient.mrn == HEAVIEST_MRN)).scalar_one()
        users = dict(conn.execute(select(User.username, User.id)).all())
    eng.dispose()
    clinic = Clinic(url, 0, 0, 0, None, heavy, users)
    runners = [runner_for(page, roles, clinic) for page, _title, roles in app_pages()
               if (Path(__file__).resolve().parent.parent / page).exists()]
    time_interleaved(runners, 1)
    broken = [r.script.name for r in runners if r.error]
    print("broken pages:", broken, file=sys.stderr)
