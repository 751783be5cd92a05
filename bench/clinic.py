"""The benchmark clinics: generated once into bench/out/ (or PostgreSQL databases), reused.

A clinic is reused when its marker (patients, years, seed, generator and schema digest)
matches; otherwise it is rebuilt. SQLite: ``bench/out/clinic_<N>x<Y>_s<S>.db``.
PostgreSQL (``--database-url``): databases ``<name>_c<N>`` next to the given one.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
MARKER_KEY = "bench.clinic"


def generator_digest() -> str:
    h = hashlib.sha256()
    files = [ROOT / "kapnotes" / "seed.py", ROOT / "kapnotes" / "seed_notes.py", ROOT / "kapnotes" / "models.py"]
    files += sorted((ROOT / "migrations" / "versions").glob("*.py"))
    for path in files:
        if path.exists():
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


@dataclass
class Clinic:
    url: str
    patients: int
    years: float
    seed: int
    built_seconds: float | None  # None: reused
    heavy_patient_id: int
    users: dict[str, int]


def _marker(patients: int, years: float, seed: int) -> dict:
    return {"patients": patients, "years": years, "seed": seed, "digest": generator_digest()}


def _read_marker(url: str) -> dict | None:
    from kapnotes.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT value FROM clinic_settings WHERE key = :k"), {"k": MARKER_KEY}).first()
    except Exception:  # noqa: BLE001 - missing tables = not built
        return None
    finally:
        engine.dispose()
    if row is None:
        return None
    value = row[0]
    return json.loads(value) if isinstance(value, str) else value


def _pg_url(base_url: str, name: str) -> str:
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def _recreate_pg(base_url: str, name: str) -> None:
    admin = create_engine(_pg_url(base_url, "postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def _fresh_database(url: str) -> None:
    """Drop whatever is at ``url`` and create it again, migrated and empty."""
    from kapnotes.db import migrate

    if url.startswith("sqlite"):
        path = Path(make_url(url).database)
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    else:
        _recreate_pg(url, make_url(url).database)
    migrate(url)


def _patient_and_users(url: str, mrn: str) -> tuple[int, dict[str, int]]:
    """The benchmarked patient's id and every account's id, by username."""
    from sqlalchemy import select

    from kapnotes.db import make_engine
    from kapnotes.models import Patient, User

    engine = make_engine(url)
    with engine.connect() as conn:
        patient = conn.execute(select(Patient.id).where(Patient.mrn == mrn)).scalar_one()
        users = {u: i for u, i in conn.execute(select(User.username, User.id)).all()}
    engine.dispose()
    return patient, users


def clinic_url(patients: int, years: float, seed: int, database_url: str | None) -> str:
    if database_url and make_url(database_url).get_backend_name() == "postgresql":
        base = make_url(database_url).database or "kapnotes"
        return _pg_url(database_url, f"{base}_c{patients}")
    OUT.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{OUT / f'clinic_{patients}x{years:g}_s{seed}.db'}"


def ensure_clinic(patients: int, years: float, seed: int, database_url: str | None = None,
                  log=print) -> Clinic:
    from kapnotes.db import make_engine, session_scope
    from kapnotes.models import ClinicSetting
    from kapnotes.seed import HEAVIEST_MRN, seed_demo
    from kapnotes.timeutil import utcnow

    url = clinic_url(patients, years, seed, database_url)
    wanted = _marker(patients, years, seed)
    built = None
    if _read_marker(url) != wanted:
        log(f"generating clinic: {patients} patients x {years:g} years (seed {seed}) ...")
        t0 = time.perf_counter()
        _fresh_database(url)
        engine = make_engine(url)
        seed_demo(engine, patients=patients, years=years, seed=seed, today=date.today())
        with session_scope(engine) as s:
            s.add(ClinicSetting(key=MARKER_KEY, value=wanted, updated_at=utcnow()))
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE"))
        else:
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA optimize")
        engine.dispose()
        built = time.perf_counter() - t0
        log(f"  built in {built:.1f} s")
    heavy, users = _patient_and_users(url, HEAVIEST_MRN)
    return Clinic(url, patients, years, seed, built, heavy, users)


EMPTY_MARKER = {"empty": True}
NEW_MRN = "KAP-NEW"


def empty_clinic_url(database_url: str | None) -> str:
    if database_url and make_url(database_url).get_backend_name() == "postgresql":
        base = make_url(database_url).database or "kapnotes"
        return _pg_url(database_url, f"{base}_empty")
    OUT.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{OUT / 'clinic_empty.db'}"


def ensure_empty_clinic(database_url: str | None = None, log=print) -> Clinic:
    """The same pages with nothing recorded yet: DESIGN §6's "empty page".

    The demo accounts and one patient registered today on tsato/mokafor's team with a
    first plan, and nothing else: no doses, scores, notes, adjustments or drafts. Each page
    of the heavy clinic is timed against itself here, signed in as the same user.
    """
    from sqlalchemy import select

    from kapnotes import auth, patients
    from kapnotes.db import make_engine, session_scope
    from kapnotes.dosing import plans
    from kapnotes.models import ClinicSetting, User
    from kapnotes.seed import DEMO_PASSWORD, DEMO_USERS
    from kapnotes.timeutil import utcnow

    url = empty_clinic_url(database_url)
    wanted = {**EMPTY_MARKER, "digest": generator_digest()}
    built = None
    if _read_marker(url) != wanted:
        log("generating the empty clinic (accounts and one new patient) ...")
        t0 = time.perf_counter()
        _fresh_database(url)
        engine = make_engine(url)
        with session_scope(engine) as s:
            for username, role, name, cred in DEMO_USERS:
                auth.create_user(s, None, username, role, name, DEMO_PASSWORD, cred)
            patient = patients.add_patient(s, None, NEW_MRN, "Robin Newcomb", date(1991, 2, 14), "tsato", "mokafor")
            prescriber = s.execute(select(User.id).where(User.username == "mokafor")).scalar_one()
            plans.new_plan_version(s, None, patient.id, plans.PlanInput(formulation="odt", dose_mg=100,
                                                                        interval_days=7),
                                   "First plan at intake.", approved_by_id=prescriber)
            s.add(ClinicSetting(key=MARKER_KEY, value=wanted, updated_at=utcnow()))
        engine.dispose()
        built = time.perf_counter() - t0
        log(f"  built in {built:.1f} s")
    new, users = _patient_and_users(url, NEW_MRN)
    return Clinic(url, 1, 0, 0, built, new, users)
