"""The demo clinic and the synthetic clinic: believable, deterministic histories.

``seed_demo(engine)`` builds the 8-patient demo clinic (users tsato, rbennett = therapists,
mokafor = prescriber, admin; patients KAP-1001..1008; tsato has KAP-1001..1004).
``seed_demo(engine, patients=2000, years=3)`` builds a clinic-scale one for benchmarks:
the first 8 patients are always the demo patients on the demo care teams, every further
patient belongs to a synthetic care team (about 25 patients per therapist, 4 therapists
per prescriber), so a demo clinician's caseload is the same in a clinic of 20 and of 2,000.

Same ``seed`` (and ``today``) → same clinic: each patient draws from its own random
generator seeded with (seed, patient number), so patient N is the same whatever the
clinic size. KAP-1001 is the heaviest patient: daily home doses plus an in-session dose
every 15 days (≈1,100 dose entries, ≈150 signed notes and ≈120 assessments over 3 years).

The records tell the truth: each history is replayed day by day, and on review days
(weekly in the demo; monthly, then quarterly, for synthetic patients) the real engine runs
on the record up to that day (``suggestions.run_for_patient``); the care team acts through
the real services (send, propose, decide, hold, resume), so every stored suggestion is what
the engine says about the data before it, and every plan version follows from a decision.
The demo's stories come from the data: KAP-1003 answers PHQ-9 item 9 (a hold waiting for
the prescriber), KAP-1005's last doses read 182/112 (a hold), non-responders (KAP-1004,
KAP-1008) are titrated up on approved increases, responders reach remission and are spaced
out; KAP-1002 and KAP-1007's therapist proposes a longer interval and is declined.

Doses, scores, notes and addenda are written in bulk (Core ``executemany``) with explicit
ids, all in ONE transaction with the services' rows; while replaying, the services' clock
reads the historical moment (``context.Clock``). 2,000 patients × 3 years take a few minutes on
SQLite; the 8-patient demo about a second. One Argon2id hash of the demo password is reused
for every account. The audit events of the bulk rows are back-dated to when they happened
and hash-chained onto the chain (after the services' own events) exactly as
``kapnotes.audit`` does, so ``python -m kapnotes verify-audit`` passes.

The pieces: ``demo`` (the fixed cast and name pools), ``context`` (the summary, ids, replay
clock and per-patient story), ``people`` (clinicians and care teams), ``history`` (one
patient's days), ``reviews`` (the engine runs, the team acts), ``signed_notes`` (dosing and
integration notes, addenda), ``writing`` (bulk inserts, the audit chain), ``clinic`` (``seed_demo``).
"""

from kapnotes.seed.clinic import seed_demo
from kapnotes.seed.context import SeedSummary
from kapnotes.seed.demo import DEMO_PASSWORD, DEMO_PATIENTS, DEMO_USERS, HEAVIEST_MRN
from kapnotes.seed.signed_notes import addendum_hash

__all__ = ["DEMO_PASSWORD", "DEMO_PATIENTS", "DEMO_USERS", "HEAVIEST_MRN", "SeedSummary", "addendum_hash", "seed_demo"]
