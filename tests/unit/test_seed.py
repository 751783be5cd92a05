"""The demo / synthetic clinic: deterministic, believable, consistent with the services."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, SQLModel, select

from kapnotes import audit, auth, patients
from kapnotes.config import get_settings
from kapnotes.db import make_engine
from kapnotes.dosing import plans
from kapnotes.dosing import protocol_settings as protocol_mod
from kapnotes.dosing.rules import suggest
from kapnotes.dosing.suggestions import engine_inputs
from kapnotes.errors import ValidationError
from kapnotes.models import (
    Addendum,
    Assessment,
    AuditEvent,
    DoseAdjustment,
    DoseEntry,
    Patient,
    SessionNote,
    TreatmentPlan,
    User,
)
from kapnotes.notes.hashing import content_hash
from kapnotes.seed import DEMO_PASSWORD, DEMO_USERS, HEAVIEST_MRN, SeedSummary, seed_demo
from tests.conftest import PG_URL, empty_all
from tests.helpers.cli import kap
from tests.helpers.rows import read_rows, write_rows

TODAY = date(2026, 11, 1)
CLINICAL = ("patients", "treatment_plans", "dose_entries", "assessments", "session_notes", "addenda",
            "dose_adjustments", "care_teams", "care_team_members")


def _dump(engine) -> dict[str, list[tuple]]:
    out = {}
    with engine.connect() as conn:
        for name in CLINICAL:
            t = SQLModel.metadata.tables[name]
            out[name] = [tuple(r) for r in conn.execute(sa_select(t).order_by(*t.primary_key.columns)).all()]
        users = SQLModel.metadata.tables["users"]
        out["users"] = [tuple(r) for r in conn.execute(
            sa_select(users.c.id, users.c.username, users.c.full_name, users.c.role).order_by(users.c.id)).all()]
        ev = SQLModel.metadata.tables["audit_events"]
        # every event but the final "demo.seed" one (stamped with the real clock)
        out["audit"] = [tuple(r) for r in conn.execute(
            sa_select(ev.c.id, ev.c.at, ev.c.action, ev.c.record_id, ev.c.hash)
            .where(ev.c.action != "demo.seed").order_by(ev.c.id)).all()]
    return out


def _fresh_sqlite(tmp_path, sqlite_template, name):
    path = tmp_path / name
    shutil.copy(sqlite_template, path)
    return make_engine(f"sqlite:///{path}")


@dataclass
class Demo:
    engine: object
    summary: SeedSummary


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def seeded_demo(request, tmp_path_factory, sqlite_template):
    """The default demo clinic (``seed_demo(today=TODAY)``), seeded once per backend: a SQLite file,
    or PostgreSQL's rows. Seeding is the costly part (seconds); each test starts from a copy."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("demo") / "demo.db"
        shutil.copy(sqlite_template, path)
        engine = make_engine(f"sqlite:///{path}")
        try:
            return path, seed_demo(engine, today=TODAY)
        finally:
            engine.dispose()
    engine = request.getfixturevalue("pg_session_engine")
    empty_all(engine)
    summary = seed_demo(engine, today=TODAY)
    rows = read_rows(engine)
    empty_all(engine)
    return rows, summary


@pytest.fixture
def demo(seeded_demo, tmp_path, request):
    """This test's own copy of the default demo clinic."""
    seeded, summary = seeded_demo
    if isinstance(seeded, Path):
        path = tmp_path / "demo.db"
        shutil.copy(seeded, path)
        engine = make_engine(f"sqlite:///{path}")
        yield Demo(engine, summary)
        engine.dispose()
        return
    engine = request.getfixturevalue("pg_session_engine")
    empty_all(engine)
    write_rows(engine, seeded)
    yield Demo(engine, summary)


@pytest.mark.slow
def test_same_seed_same_clinic_other_seed_other_clinic(tmp_path, sqlite_template):
    engines = [_fresh_sqlite(tmp_path, sqlite_template, f"s{i}.db") for i in range(3)]
    for eng, s in zip(engines, (11, 11, 12)):
        seed_demo(eng, patients=10, years=0.3, seed=s, today=TODAY)
    first, second, other = (_dump(e) for e in engines)
    assert first == second
    assert first["dose_entries"] and first["audit"]
    assert first["dose_entries"] != other["dose_entries"]
    for e in engines:
        e.dispose()


@pytest.mark.slow
def test_patient_histories_do_not_depend_on_clinic_size(tmp_path, sqlite_template):
    small, big = (_fresh_sqlite(tmp_path, sqlite_template, n) for n in ("small.db", "big.db"))
    seed_demo(small, patients=3, years=0.3, seed=5, today=TODAY)
    seed_demo(big, patients=40, years=0.3, seed=5, today=TODAY)

    def history(engine, mrn):
        with Session(engine) as s:
            pid = s.execute(select(Patient.id).where(Patient.mrn == mrn)).scalar_one()
            return [(d.taken_at, d.dose_mg, d.context, d.bp_systolic_post)
                    for d in s.scalars(select(DoseEntry).where(DoseEntry.patient_id == pid)
                                       .order_by(DoseEntry.taken_at))]

    assert history(small, "KAP-1003") == history(big, "KAP-1003")
    small.dispose()
    big.dispose()


@pytest.mark.slow
def test_demo_clinic_shape_and_integrity(demo):
    engine, summary = demo.engine, demo.summary
    assert [u for u, _ in summary.users] == [u[0] for u in DEMO_USERS]
    assert DEMO_PASSWORD in summary.describe() and "tsato" in summary.describe()
    with Session(engine, expire_on_commit=False) as s:
        mrns = sorted(s.execute(select(Patient.mrn)).scalars())
        assert mrns == [f"KAP-{1001 + i}" for i in range(8)]
        tsato = auth.authenticate(s, "tsato", DEMO_PASSWORD)
        assert tsato.ok
        rows = patients.list_patients(s, tsato.actor)
        assert sorted(r.mrn for r in rows) == ["KAP-1001", "KAP-1002", "KAP-1003", "KAP-1004"]
        assert [r.mrn for r in rows if "suicidality" in r.flags] == ["KAP-1003"]
        for pid in s.execute(select(Patient.id)).scalars():
            plan = plans.active_plan(s, pid)
            assert plan is not None and plan.version_number >= 1
        # every seeded note is signed, and its stored hash is the hash of what it says
        notes = s.exec(select(SessionNote)).all()
        assert notes and all(n.status == "signed" for n in notes)
        assert all(content_hash(n) == n.content_hash for n in notes)
        assert {n.note_type for n in notes} == {"dosing", "integration"}
        # a dosing note is linked from its in-session dose; an integration note points at the dose
        linked = s.execute(select(func.count()).select_from(DoseEntry)
                           .where(DoseEntry.session_note_id.is_not(None))).scalar()
        assert linked == sum(1 for n in notes if n.note_type == "dosing")
        assert all(n.integrates_dose_id for n in notes if n.note_type == "integration")
        assert audit.verify_chain(s).ok
        # the services keep working on top of the bulk-written rows (ids, sequences, chain)
        user = auth.create_user(s, None, "newbie", "therapist", "New Bie", "a-long-password-1")
        assert user.id > max(u.id for u in s.exec(select(User).where(User.username != "newbie")))
        s.commit()
        assert audit.verify_chain(s).ok


@pytest.mark.slow
def test_heaviest_patient_has_three_years_of_daily_history(tmp_path, sqlite_template):
    eng = _fresh_sqlite(tmp_path, sqlite_template, "heavy.db")
    seed_demo(eng, patients=1, years=3, seed=7, today=TODAY)
    with Session(eng) as s:
        pid = s.execute(select(Patient.id).where(Patient.mrn == HEAVIEST_MRN)).scalar_one()

        def count(model, *where):
            return s.execute(select(func.count()).select_from(model).where(*where)).scalar()

        assert 1050 <= count(DoseEntry, DoseEntry.patient_id == pid) <= 1150
        assert 140 <= count(SessionNote, SessionNote.patient_id == pid) <= 160
        assert 110 <= count(Assessment, Assessment.patient_id == pid) <= 125  # GAD-7 fortnightly, PHQ-9 monthly
        assert count(TreatmentPlan, TreatmentPlan.patient_id == pid) >= 2  # at least one titration
        assert count(Addendum) > 0
        assert count(DoseEntry, DoseEntry.adverse_events != "") > 0
        decided = count(DoseAdjustment, DoseAdjustment.decided_by_id.is_not(None))
        assert decided > 0
        # an approved adjustment names the plan version it produced, and that version names it back
        adj = s.exec(select(DoseAdjustment).where(DoseAdjustment.status.in_(("approved", "modified")))).first()
        assert adj is not None and adj.resulting_plan_id is not None
        assert s.get(TreatmentPlan, adj.resulting_plan_id).adjustment_id == adj.id
        assert audit.verify_chain(s).ok
    eng.dispose()


@pytest.mark.slow
def test_synthetic_clinicians_keep_demo_caseloads(tmp_path, sqlite_template):
    eng = _fresh_sqlite(tmp_path, sqlite_template, "caseload.db")
    summary = seed_demo(eng, patients=60, years=0.12, seed=3, today=TODAY)
    assert summary.synthetic_users >= 3 and summary.patients == 60
    with Session(eng) as s:
        tsato = auth.authenticate(s, "tsato", DEMO_PASSWORD).actor
        assert len(patients.list_patients(s, tsato)) == 4
        t1 = auth.authenticate(s, "therapist001", DEMO_PASSWORD).actor
        assert len(patients.list_patients(s, t1)) == 25
        assert s.execute(select(func.count()).select_from(AuditEvent)).scalar() > summary.doses
    eng.dispose()


@pytest.mark.slow
def test_seed_demo_cli_and_verify_audit(tmp_path, sqlite_template):
    path = tmp_path / "cli.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    out = kap(url, "seed-demo", "--patients", "10", "--years", "0.2", "--seed", "4")
    assert out.returncode == 0, out.stderr
    assert "10 patients" in out.stdout and "tsato" in out.stdout
    verify = kap(url, "verify-audit")
    assert verify.returncode == 0, verify.stderr
    again = kap(url, "seed-demo")
    assert again.returncode != 0 and "already" in again.stderr


@pytest.mark.skipif(not PG_URL, reason="KAPNOTES_TEST_POSTGRES_URL is not set")
def test_postgres_sequences_follow_explicit_ids(request):
    from tests.conftest import truncate_all

    eng = request.getfixturevalue("pg_session_engine")
    truncate_all(eng)
    seed_demo(eng, patients=9, years=0.2, seed=2, today=TODAY)
    with Session(eng, expire_on_commit=False) as s:
        before = s.execute(select(func.max(Patient.id))).scalar()
        p = patients.add_patient(s, None, "X-1", "Xavier Ex", date(1980, 1, 1), "tsato", "mokafor")
        assert p.id == before + 1
        s.commit()
        assert audit.verify_chain(s).ok
    truncate_all(eng)


# --- the records tell the truth: the seeded suggestions are the engine's ---------------------------


def _reevaluate(s: Session, row: DoseAdjustment, proto, tz):
    """The engine's answer for the plan the row names, on the record up to the row's as_of."""
    plan = s.get(TreatmentPlan, row.plan_id)
    as_of = row.as_of.astimezone(tz).date()
    facts, doses, assessments = engine_inputs(s, row.patient_id, plan, as_of, tz)
    return suggest(facts, doses, assessments, proto, as_of)


def _stored_as_engine_output(row: DoseAdjustment) -> dict:
    return {"action": row.action, "dose_mg": row.proposed_dose_mg, "interval_days": row.proposed_interval_days,
            "flags": list(row.flags), "reasons": list(row.reasons), "checks": list(row.checks or []),
            "protocol_hash": row.protocol_hash}


def _engine_output(out) -> dict:
    return {"action": out.action, "dose_mg": float(out.dose_mg), "interval_days": out.interval_days,
            "flags": list(out.flags), "reasons": [r.as_dict() for r in out.reasons],
            "checks": [c.as_dict() for c in out.checks], "protocol_hash": out.protocol_hash}


@pytest.mark.slow
def test_every_demo_suggestion_is_what_the_engine_says_on_the_record_up_to_then(demo):
    engine = demo.engine
    tz = get_settings().tz
    with Session(engine) as s:
        proto = protocol_mod.in_force(s)
        rows = s.exec(select(DoseAdjustment).where(DoseAdjustment.kind == "suggestion")
                      .order_by(DoseAdjustment.id)).all()
        assert len(rows) > 50
        for row in rows:
            assert row.plan_id is not None and row.as_of is not None, row.id
            assert _stored_as_engine_output(row) == _engine_output(_reevaluate(s, row, proto, tz)), (
                f"suggestion #{row.id} ({row.status}, as of {row.as_of:%Y-%m-%d}) is not what the engine says")
        # the histories reach every kind of result through the engine itself
        assert {"hold", "increase", "space_out", "continue", "insufficient_data"} <= {r.action for r in rows}


@pytest.mark.slow
def test_demo_stories_follow_from_the_engine_and_real_decisions(demo):
    engine = demo.engine
    with Session(engine) as s:
        pid = dict(s.execute(select(Patient.mrn, Patient.id)).all())

        def items(mrn, **where):
            q = select(DoseAdjustment).where(DoseAdjustment.patient_id == pid[mrn])
            for k, v in where.items():
                q = q.where(getattr(DoseAdjustment, k) == v)
            return s.exec(q.order_by(DoseAdjustment.id)).all()

        # KAP-1003: PHQ-9 item 9 answered 1 four days ago: the engine holds; it waits for the prescriber
        last = items("KAP-1003", kind="suggestion")[-1]
        assert last.action == "hold" and "suicidality" in last.flags and last.status == "pending"
        # KAP-1005: post-dose BP 182/112 in the last ten days: a hold for severe hypertension
        last = items("KAP-1005", kind="suggestion")[-1]
        assert last.action == "hold" and "hypertension_severe" in last.flags and last.status == "pending"
        # KAP-1004, a non-responder: an engine increase approved, and the plan version it produced
        approved = items("KAP-1004", kind="suggestion", action="increase", status="approved")
        assert approved
        for adj in approved:
            new = s.get(TreatmentPlan, adj.resulting_plan_id)
            assert new.adjustment_id == adj.id and new.dose_mg == adj.proposed_dose_mg > s.get(
                TreatmentPlan, adj.plan_id).dose_mg
            assert adj.decision_rationale and new.effective_from == adj.decided_at
        # a responder spaced out on remission
        spaced = s.exec(select(DoseAdjustment).where(DoseAdjustment.action == "space_out",
                                                     DoseAdjustment.kind == "suggestion",
                                                     DoseAdjustment.status.in_(("approved", "modified")))).all()
        assert spaced and all("remission" in a.flags for a in spaced)
        # a therapist's proposal, declined with a rationale
        proposals = s.exec(select(DoseAdjustment).where(DoseAdjustment.kind == "proposal")).all()
        assert proposals and all(p.status == "rejected" and p.decision_rationale for p in proposals)
        # every decision has a rationale; every plan version after the first comes from a decision
        decided = s.exec(select(DoseAdjustment).where(DoseAdjustment.decided_at.is_not(None))).all()
        assert decided and all(d.decision_rationale for d in decided)
        for plan in s.exec(select(TreatmentPlan).where(TreatmentPlan.version_number > 1)).all():
            adj = s.get(DoseAdjustment, plan.adjustment_id)
            assert adj is not None and adj.resulting_plan_id == plan.id and adj.status in ("approved", "modified")
        # rows carry the historical moments, not the time the seed ran
        assert max(a.created_at for a in s.exec(select(DoseAdjustment)).all()).date() <= TODAY


def test_the_replay_clock_is_removed_after_seeding(tmp_path, sqlite_template):
    """The services read a historical "now" only while the seed replays; afterwards, the real one."""
    import kapnotes.dosing.plans
    import kapnotes.dosing.suggestions
    from kapnotes import timeutil

    eng = _fresh_sqlite(tmp_path, sqlite_template, "clock.db")
    seed_demo(eng, patients=2, years=0.2, seed=1, today=TODAY)
    assert kapnotes.dosing.suggestions.utcnow is timeutil.utcnow and kapnotes.dosing.plans.utcnow is timeutil.utcnow
    with pytest.raises(ValidationError):  # a failed seed (non-empty database) restores it too
        seed_demo(eng, patients=2, years=0.2, seed=1, today=TODAY)
    assert kapnotes.dosing.suggestions.utcnow is timeutil.utcnow and audit.utcnow is timeutil.utcnow
    eng.dispose()
