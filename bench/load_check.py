"""After a load run: does the database hold exactly what the generator says it saved (no lost,
no duplicated write), and does the audit chain verify (``python -m kapnotes verify-audit``)?"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

from sqlalchemy import create_engine, text

from bench.load_actions import MARK, Ledger
from bench.load_cluster import ROOT, base_env


def database_counts(url: str) -> dict:
    engine = create_engine(url)
    with engine.connect() as conn:
        counts = {
            "gad7": conn.execute(text("SELECT count(*) FROM assessments WHERE instrument = 'GAD-7'")).scalar_one(),
            "decisions": conn.execute(text("SELECT count(*) FROM dose_adjustments WHERE decided_at IS NOT NULL"))
            .scalar_one(),
        }
    engine.dispose()
    return counts


def _drafts(conn) -> list[str]:
    rows = conn.execute(text("SELECT fields FROM session_notes WHERE status = 'draft'")).all()
    return [str(r[0]) for r in rows if MARK in str(r[0])]


def check_database(url: str, ledger: Ledger, before: dict) -> dict:
    engine = create_engine(url)
    with engine.connect() as conn:
        doses = Counter(r[0] for r in conn.execute(
            text("SELECT notes FROM dose_entries WHERE notes LIKE :m"), {"m": f"{MARK} %"}).all())
        drafts = _drafts(conn)
    engine.dispose()
    after = database_counts(url)
    expected_doses = Counter(ledger.doses)
    run_doses = Counter({k: v for k, v in doses.items() if any(k.startswith(f"{MARK} {r}") for r in _run_ids(ledger))})
    # sent without an answer and never confirmed (no retry before the run ended): stored once or not at all
    in_doubt = set(ledger.doses_in_doubt) - set(expected_doses)
    extra = run_doses - expected_doses
    reply_lost = sum(1 for note, n in extra.items() if note in in_doubt and n == 1)
    lost_drafts = [m for m, plan in ledger.drafts.items()
                   if not any(m in d and f"{plan}'" in d or (m in d and f'{plan}"' in d) for d in drafts)]
    result = {
        "doses_saved_by_generator": sum(expected_doses.values()),
        "doses_in_database": sum(run_doses.values()),
        "doses_missing": sum((expected_doses - run_doses).values()),
        "doses_sent_unanswered": len(set(ledger.doses_in_doubt)),
        "doses_saved_reply_lost": reply_lost,
        "doses_unexpected_or_duplicated": sum(extra.values()) - reply_lost,
        "gad7_saved_by_generator": ledger.gad7,
        "gad7_new_in_database": after["gad7"] - before["gad7"],
        "decisions_by_generator": ledger.decisions,
        "decisions_new_in_database": after["decisions"] - before["decisions"],
        "decision_conflicts_refused": ledger.conflicts,
        "drafts_saved_by_generator": len(ledger.drafts),
        "drafts_lost_or_stale": len(lost_drafts),
    }
    audit = subprocess.run([sys.executable, "-m", "kapnotes", "verify-audit"], cwd=ROOT, env=base_env(url),
                           capture_output=True, text=True)
    result["audit_chain"] = (audit.stdout.strip().splitlines() or [""])[-1][:200]
    result["audit_ok"] = audit.returncode == 0
    result["ok"] = (result["doses_missing"] == 0 and result["doses_unexpected_or_duplicated"] == 0
                    and result["gad7_saved_by_generator"] == result["gad7_new_in_database"]
                    and result["decisions_by_generator"] == result["decisions_new_in_database"]
                    and not lost_drafts and result["audit_ok"])
    return result


def _run_ids(ledger: Ledger) -> set[str]:
    return {note.split(" ")[1] for note in [*ledger.doses, *ledger.doses_in_doubt]} or {"-"}
