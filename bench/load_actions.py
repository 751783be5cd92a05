"""What one simulated clinician does, over Streamlit's protocol (``bench.st_client``): a therapist
opens the patients list, a dashboard, adds a dose, enters a GAD-7 and saves a draft note; a
prescriber opens the list, a dashboard and decides the next review-queue item. Every action is
timed from the message sent to the run finished; what the generator believes it saved goes into
``Ledger`` so the database can be checked against it afterwards."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from streamlit.proto.WidgetStates_pb2 import WidgetState

from bench.st_client import ProtocolError, Session

MARK = "bench-load"  # in every text the generator writes


@dataclass
class Ledger:
    doses: list[str] = field(default_factory=list)  # the notes text of every dose saved
    doses_in_doubt: list[str] = field(default_factory=list)  # sent, no answer (the socket dropped): saved or not
    gad7: int = 0
    drafts: dict[str, str] = field(default_factory=dict)  # draft marker -> the last plan text saved
    decisions: int = 0
    conflicts: int = 0  # refused because another clinician changed the item first (nothing written)


@dataclass
class Timings:
    samples: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def ok(self, action: str, seconds: float) -> None:
        self.samples.setdefault(action, []).append(seconds)

    def fail(self, action: str, why: str) -> None:
        self.errors.setdefault(action, []).append(why[:200])


def _text(value: str, wid: str) -> WidgetState:
    return WidgetState(id=wid, string_value=value)


def _dates(value: str, wid: str) -> WidgetState:
    s = WidgetState(id=wid)
    s.string_array_value.data.append(value)
    return s


def _says(screen, words: str) -> bool:
    return any(words in t for t in screen.texts)


class Clinician:
    """One browser tab of one clinician, for the whole run."""

    def __init__(self, n: int, role: str, session: Session, ledger: Ledger, timings: Timings, tz,
                 run_id: str, dose_mg: dict[int, float]):
        self.n, self.role, self.s, self.ledger, self.t = n, role, session, ledger, timings
        self.tz, self.run_id, self.dose_mg = tz, run_id, dose_mg
        self.rng = random.Random(n)
        self.patient_key = ""
        self.draft_open = False
        self.draft_saves = 0
        self.draft_generation = 0  # a new draft after a reconnect (the open editor was in the lost process)
        self.doses_saved = 0
        self.dose_pending: tuple[str, datetime] | None = None  # the dose being entered: kept for a retry
        self.faults: dict = {"in_flight_writes_found_saved": 0}
        self.deadline = float("inf")  # no new action starts after it (the run is bounded in time)

    async def timed(self, action: str, coro) -> object:
        try:
            seconds, screen = await coro
        except ProtocolError as exc:
            self.t.fail(action, str(exc))
            return None
        if screen.errors:
            self.t.fail(action, "; ".join(screen.errors))
            return None
        self.t.ok(action, seconds)
        return screen

    async def patients_list(self):
        screen = await self.timed("patients list", self.s.run(page="patients"))
        if screen is not None:
            keys = screen.keys("open_")
            if keys:
                self.patient_key = keys[self.n % len(keys)]
        return screen

    async def dashboard(self):
        if not self.patient_key:
            return None
        button = self.s.last.find(key=self.patient_key)
        return await self.timed("open dashboard", self.s.run(trigger=button.id))

    async def add_dose(self) -> None:
        await self.s.run(page="dose_log", query="dose_tab=Add+a+dose")
        form = self.s.last
        pid = int(self.patient_key.split("_")[1])
        if self.dose_pending is None:  # a retry re-enters the same dose: the time it was taken does not move
            when = datetime.now(self.tz) - timedelta(minutes=5 * (1 + self.n * 50 + self.doses_saved))
            self.dose_pending = (f"{MARK} {self.run_id} c{self.n} d{self.doses_saved}", when)
        note, when = self.dose_pending
        values = {w.id: v for w, v in [
            (form.find(key="add_date"), _dates(when.strftime("%Y-%m-%d"), form.find(key="add_date").id)),
            (form.find(key="add_time"), _text(when.strftime("%H:%M"), form.find(key="add_time").id)),
            (form.find(key="add_dose"), WidgetState(id=form.find(key="add_dose").id,
                                                     double_value=self.dose_mg.get(pid, 100.0))),
            (form.find(key="add_notes"), _text(note, form.find(key="add_notes").id)),
        ]}
        submit = form.find(label="Save dose").id
        try:
            screen = await self.timed("add dose", self.s.run(set_values=values, trigger=submit))
        except BaseException:  # no answer (dropped socket, run timeout): saved or not, the retry will tell
            if note not in self.ledger.doses_in_doubt:
                self.ledger.doses_in_doubt.append(note)
            raise
        if screen is not None and _says(screen, "Dose saved"):
            self.ledger.doses.append(note)
            self.doses_saved += 1
            self.dose_pending = None
        elif screen is not None and _says(screen, "already in the log"):
            # the same dose sent again after a dropped connection: the first try had been saved
            # before the process died (its answer was lost); the duplicate guard refused the second
            self.ledger.doses.append(note)
            self.doses_saved += 1
            self.dose_pending = None
            self.faults["in_flight_writes_found_saved"] += 1
        elif screen is not None:
            self.t.fail("add dose", "not saved: " + " | ".join(screen.texts[-3:])[:150])

    async def gad7(self) -> None:
        await self.s.run(page="measures")
        form = self.s.last
        values = {form.find(key="7").id: _dates(datetime.now(self.tz).strftime("%Y-%m-%d"), form.find(key="7").id)}
        for i in range(1, 8):
            w = form.find(key=f"7_item{i}")
            values[w.id] = _text(self.rng.choice(list(w.proto.options)), w.id)
        screen = await self.timed("GAD-7", self.s.run(set_values=values, trigger=form.find(label="Save score").id))
        if screen is not None and _says(screen, "Saved"):
            self.ledger.gad7 += 1
        elif screen is not None:
            self.t.fail("GAD-7", "not saved: " + " | ".join(screen.texts[-3:])[:150])

    async def save_draft(self) -> None:
        if not self.draft_open:
            await self.s.run(page="note_editor")
            await self.s.run(trigger=self.s.last.find(key="start_note").id)
            self.draft_open = True
            self.draft_generation += 1
        else:
            await self.s.run(page="note_editor")
        form = self.s.last
        marker = f"{MARK} {self.run_id} c{self.n} g{self.draft_generation}"
        self.draft_saves += 1
        plan = f"plan v{self.draft_saves}"
        now = datetime.now(self.tz)
        fields = {"h_session_date": _dates(now.strftime("%Y-%m-%d"), ""), "h_start_time": _text("09:00", ""),
                  "f_data": _text(marker, ""), "f_assessment": _text("steady", ""), "f_plan": _text(plan, "")}
        values = {}
        for suffix, state in fields.items():
            w = next((w for w in form.widgets.values() if w.id.endswith(suffix)), None)
            if w is None:
                self.t.fail("save draft", f"no field {suffix}")
                return
            state.id = w.id
            values[w.id] = state
        screen = await self.timed("save draft", self.s.run(set_values=values, trigger=form.find(key="save_draft").id))
        if screen is not None:
            self.ledger.drafts[marker] = plan

    async def decide(self) -> None:
        await self.s.run(page="review_queue")
        queue = self.s.last
        try:
            submit = queue.find(label="Record decision")
        except ProtocolError:
            self.t.ok("queue empty (nothing to decide)", 0.0)
            return
        rationale = next(w for w in queue.widgets.values() if w.id.endswith("_rationale"))
        decision = next(w for w in queue.widgets.values() if w.id.endswith("_decision"))
        values = {rationale.id: _text(f"{MARK} {self.run_id} c{self.n}: reviewed", rationale.id),
                  decision.id: _text("Approve", decision.id)}  # no decision is preselected
        seconds, screen = await self.s.run(set_values=values, trigger=submit.id)
        if _says(screen, "Decision recorded"):
            self.t.ok("decide queue item", seconds)
            self.ledger.decisions += 1
        elif any("changed" in e.lower() or "already" in e.lower() or "not saved" in e.lower() for e in screen.errors
                 + screen.texts):
            self.ledger.conflicts += 1
            self.t.ok("decide queue item", seconds)
        else:
            self.t.fail("decide queue item", "; ".join(screen.errors + screen.texts[-2:])[:200] or "no confirmation")

    async def one_round(self) -> None:
        if await self.patients_list() is None or time.perf_counter() > self.deadline:
            return
        if await self.dashboard() is None:
            return
        steps = (self.decide,) if self.role == "prescriber" else (self.add_dose, self.gad7, self.save_draft)
        for step in steps:
            if time.perf_counter() > self.deadline:
                return
            try:
                await step()
            except ProtocolError as exc:
                self.t.fail(step.__name__.replace("_", " "), str(exc))
