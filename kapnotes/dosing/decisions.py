"""The prescriber's decision on an item: approve, modify or reject, always with a rationale.

A change toward more drug while a rule of 1–4 fires, or off the protocol's steps, intervals
or above its ceiling, needs an explicit override with its own rationale; nothing exceeds the
hard maximum. A decision that changes the plan appends the next plan version naming the
prescriber and the item. Only a prescriber can change a plan. Two prescribers deciding the
same item at once: ``DoseAdjustment.version`` (optimistic locking) lets exactly one win; the
other gets ``ConflictError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from kapnotes import audit, vocab
from kapnotes.access import require_patient, require_role
from kapnotes.actor import Actor
from kapnotes.dosing import plans, protocol_settings
from kapnotes.dosing.adjustments import (
    DECISIONS,
    OPEN_STATES,
    PLAN_CHANGING_ACTIONS,
    check_version,
    flush,
    get_adjustment,
    parse_number,
    user_names,
)
from kapnotes.dosing.facts import current_safety_codes
from kapnotes.dosing.loop import run_for_patient
from kapnotes.dosing.plans import PlanInput, current_plan
from kapnotes.dosing.rules import HOLD, mg, same_dose
from kapnotes.dosing.staleness import stale_reason
from kapnotes.errors import ConflictError, ValidationError
from kapnotes.models import AdjustmentStatus, DoseAdjustment, PlanStatus, Role, TreatmentPlan
from kapnotes.timeutil import utcnow

rule_label = vocab.rule_label
DECIDED_STATUS = {"approve": AdjustmentStatus.approved, "modify": AdjustmentStatus.modified,
                  "reject": AdjustmentStatus.rejected}
RATIONALE_MISSING = {"approve": "Give the rationale for approving.",
                     "modify": "Give the reason for the modification.",
                     "reject": "Give the reason for rejecting."}


def _plan_input(plan: TreatmentPlan, dose: float, interval: int) -> PlanInput:
    return PlanInput(formulation=plan.formulation, dose_mg=dose, interval_days=interval,
                     minutes_in_mouth=plan.minutes_in_mouth, administration=plan.administration,
                     fasting_instructions=plan.fasting_instructions, instructions=plan.instructions)


@dataclass(frozen=True)
class DecisionRequirements:
    """What a decision needs before it can be saved, for the page to show before submit."""

    override_rules: tuple[str, ...] = ()
    conditions: tuple[str, ...] = ()  # the same, in plain words
    stale: str | None = None
    dose_mg: float | None = None
    interval_days: int | None = None

    @property
    def override_needed(self) -> bool:
        return bool(self.override_rules)

    def message(self) -> str:
        return ("This decision needs an explicit override with its own rationale: "
                + "; ".join(self.conditions) + ".")


def _override_conditions(session: Session, row: DoseAdjustment, plan: TreatmentPlan, new_dose: float,
                         new_interval: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The conditions under which this change needs an override: toward more drug while a rule of
    1–4 fires; a dose off the protocol's steps or above its ceiling; an interval off its intervals."""
    proto = protocol_settings.in_force(session)
    codes: list[str] = []
    texts: list[str] = []
    dose_changed = not same_dose(new_dose, plan.dose_mg)
    more = (new_dose > plan.dose_mg and dose_changed) or new_interval < plan.interval_days
    if more:
        fired = current_safety_codes(session, row.patient_id, plan, proto)
        if fired:
            codes.extend(fired)
            texts.append("it moves toward more drug while safety rules fire for this patient ("
                         + ", ".join(rule_label(c) for c in fired) + ")")
    if dose_changed and not any(same_dose(new_dose, step) for step in proto.steps_mg):
        codes.append("off_steps")
        texts.append(f"{mg(new_dose)} is not one of the protocol's steps ("
                     + ", ".join(mg(x) for x in proto.steps_mg) + ")")
    if new_interval != plan.interval_days and new_interval not in proto.intervals_days:
        codes.append("off_intervals")
        texts.append(f"{vocab.every(new_interval)} is not one of the protocol's intervals ("
                     + ", ".join(str(x) for x in proto.intervals_days) + " days)")
    if new_dose > proto.ceiling_mg and not same_dose(new_dose, proto.ceiling_mg) and (dose_changed or more):
        codes.append("above_ceiling")
        texts.append(f"{mg(new_dose)} is above the protocol's ceiling of {mg(proto.ceiling_mg)}")
    return tuple(codes), tuple(texts)


def _decision_target(row: DoseAdjustment, plan: TreatmentPlan, decision: str, dose_mg, interval_days,
                     errors: dict[str, str]):
    """The plan values (dose, interval, status) a decision leads to; (None, None, status) when none."""
    new_dose = new_interval = None
    new_status = plan.status
    if decision == "modify":
        dose = parse_number(dose_mg, "dose_mg", False, errors)
        interval = parse_number(interval_days, "interval_days", True, errors)
        if dose is None and interval is None and "dose_mg" not in errors and "interval_days" not in errors:
            errors["dose_mg"] = "Give another dose or interval (or approve or reject as it is)."
        new_dose = dose if dose is not None else (row.proposed_dose_mg or plan.dose_mg)
        new_interval = interval if interval is not None else (row.proposed_interval_days or plan.interval_days)
        if not errors and plan.status == PlanStatus.active and same_dose(new_dose, plan.dose_mg) \
                and new_interval == plan.interval_days:
            errors["dose_mg"] = "That is the current plan; reject the item with your rationale instead."
        new_status = PlanStatus.active.value
    elif decision == "approve":
        if row.action == HOLD:
            new_status = PlanStatus.held.value
            new_dose, new_interval = plan.dose_mg, plan.interval_days
        elif row.action in PLAN_CHANGING_ACTIONS:
            # a value the item leaves out stays as the plan has it (services fill both; older
            # or imported rows may not, and must not approve into a silent no-op or a crash)
            new_dose = row.proposed_dose_mg if row.proposed_dose_mg is not None else plan.dose_mg
            new_interval = row.proposed_interval_days or plan.interval_days
            new_status = PlanStatus.active.value
    return new_dose, new_interval, new_status


def decision_requirements(session: Session, actor: Actor, adjustment_id: int, decision: str | None,
                          dose_mg=None, interval_days=None) -> DecisionRequirements:
    """Before submit: whether this decision needs an override and why, and whether the item is stale."""
    require_role(actor, Role.prescriber.value)
    row = get_adjustment(session, actor, adjustment_id)
    require_patient(session, actor, row.patient_id, Role.prescriber.value)
    plan = current_plan(session, row.patient_id)
    if plan is None:
        return DecisionRequirements()
    stale = stale_reason(session, row, plan)
    if decision not in ("approve", "modify"):
        return DecisionRequirements(stale=stale)
    errors: dict[str, str] = {}
    new_dose, new_interval, _ = _decision_target(row, plan, decision, dose_mg, interval_days, errors)
    if new_dose is None or "dose_mg" in errors or "interval_days" in errors:
        return DecisionRequirements(stale=stale)
    codes, texts = _override_conditions(session, row, plan, float(new_dose), int(new_interval))
    return DecisionRequirements(codes, texts, stale, float(new_dose), int(new_interval))


def _open_item(session: Session, actor: Actor, adjustment_id: int, decision: str | None,
               expected_version: int | None) -> DoseAdjustment:
    """The item to decide, still open or pending and still the version the prescriber saw."""
    require_role(actor, Role.prescriber.value)
    if decision not in DECISIONS:
        raise ValidationError({"decision": "Choose a decision: approve, modify or reject."
                                           + (f" ({decision!r} is not one.)" if decision else "")})
    row = get_adjustment(session, actor, adjustment_id)
    require_patient(session, actor, row.patient_id, Role.prescriber.value)
    check_version(row, expected_version)
    if row.status == AdjustmentStatus.superseded.value:
        raise ConflictError("This item was superseded by a newer evaluation of the rules; your decision was not "
                            "saved. Decide on the newer item.")
    if row.status not in OPEN_STATES:
        who = user_names(session, [row.decided_by_id]).get(row.decided_by_id, "someone")
        raise ConflictError(f"This item was already {row.status} by {who}; your decision was not saved.")
    return row


def _target_errors(session: Session, row: DoseAdjustment, plan: TreatmentPlan, new_dose, new_interval,
                   override: bool, override_rationale: str, errors: dict[str, str]) -> tuple[str, ...]:
    """Check the values a decision leads to: the hard maximum for every path, then whether the
    change needs an override (and has one). Returns the override's rule codes."""
    try:
        _plan_input(plan, new_dose, new_interval).validate()  # the hard maximum, for every path
    except ValidationError as exc:
        errors.update(exc.errors)
    if "dose_mg" in errors or "interval_days" in errors:
        return ()
    codes, texts = _override_conditions(session, row, plan, float(new_dose), int(new_interval))
    if codes and not (override and override_rationale):
        need = DecisionRequirements(codes, texts).message()
        errors["override_rationale"] = (
            need + (" Give the rationale for the override." if override
                    else " Tick \u201cOverride the safety check\u201d and give its rationale."))
    return codes


def _record(session: Session, actor: Actor, row: DoseAdjustment, plan: TreatmentPlan, decision: str,
            rationale: str, target: tuple, codes: tuple[str, ...], override_rationale: str) -> bool:
    """Write the decision, then the plan version it produces (when it changes anything); audit it.
    Returns whether the plan changed."""
    new_dose, new_interval, new_status = target
    # 1. the decision itself: the first write, so a concurrent decider blocks here and then loses
    row.status = DECIDED_STATUS[decision].value
    row.decided_by_id, row.decided_at = actor.id, utcnow()
    row.decision_rationale = rationale
    if codes:
        row.override_rules, row.override_rationale = list(codes), override_rationale
    if new_dose is not None:
        row.decided_dose_mg, row.decided_interval_days = float(new_dose), int(new_interval)
    session.add(row)
    flush(session)
    # 2. the plan version it produces (when it changes anything)
    changes_plan = new_dose is not None and (
        not same_dose(new_dose, plan.dose_mg) or new_interval != plan.interval_days or new_status != plan.status)
    if changes_plan:
        text = rationale
        if codes:
            text += f"\nOverride ({', '.join(rule_label(c) for c in codes)}): {override_rationale}"
        new_plan = plans.new_plan_version(session, actor, row.patient_id, _plan_input(plan, new_dose, new_interval),
                                          text, status=new_status, adjustment_id=row.id)
        row.resulting_plan_id = new_plan.id
        session.add(row)
        flush(session)
    audit.record(session, actor, f"adjustment.{decision}", "dose_adjustment", row.id, row.patient_id,
                 detail=(f"kind={row.kind} action={row.action}"
                         + (f" plan={row.resulting_plan_id}" if row.resulting_plan_id else "")
                         + (f" override=1 rules={','.join(codes)}" if codes else ""))[:255])
    return changes_plan


def decide(session: Session, actor: Actor, adjustment_id: int, decision: str | None, rationale: str = "",
           dose_mg=None, interval_days=None, expected_version: int | None = None, override: bool = False,
           override_rationale: str = "") -> DoseAdjustment:
    """Approve, modify (another dose and/or interval) or reject an item; a rationale always.

    No decision is assumed: ``decision`` must be given. A stale item (the plan or the record
    changed since it was made) cannot be approved as it stands. A change toward more drug while
    a rule of 1–4 fires, or to a dose off the protocol's steps or above its ceiling, or an
    interval off its intervals, needs ``override`` and its own rationale, recorded on the item,
    in the plan version and (codes only) in the audit. Nothing crosses the hard maximum.

    Approval of a plan-changing item, or a modification, appends the next plan version naming
    this prescriber and the item; approving a hold holds the plan. The adjustment row is
    written first, so of two prescribers deciding at once exactly one wins (the other's
    UPDATE finds a newer version: ``ConflictError``).
    """
    row = _open_item(session, actor, adjustment_id, decision, expected_version)
    rationale = (rationale or "").strip()
    override_rationale = (override_rationale or "").strip()
    errors: dict[str, str] = {}
    plan = current_plan(session, row.patient_id)
    if plan is None:
        raise ValidationError({"plan": "The patient has no treatment plan to change."})
    if not rationale:
        errors["rationale"] = RATIONALE_MISSING[decision]
    target = _decision_target(row, plan, decision, dose_mg, interval_days, errors)
    if decision == "approve":
        stale = stale_reason(session, row, plan)
        if stale:
            raise ConflictError(f"{stale} It cannot be approved as it stands; modify it with explicit values "
                                "or reject it.")
    codes: tuple[str, ...] = ()
    if target[0] is not None and "dose_mg" not in errors and "interval_days" not in errors:
        codes = _target_errors(session, row, plan, target[0], target[1], override, override_rationale, errors)
    if errors:
        raise ValidationError(errors)
    if _record(session, actor, row, plan, decision, rationale, target, codes, override_rationale):
        run_for_patient(session, actor, row.patient_id)  # every new plan version re-evaluates
    return row


def set_plan_status(session: Session, actor: Actor, patient_id: int, status: str, rationale: str) -> TreatmentPlan:
    """A prescriber holds, ends or resumes the current plan (a new plan version with that status)."""
    require_role(actor, Role.prescriber.value)
    require_patient(session, actor, patient_id, Role.prescriber.value)
    if status not in {s.value for s in PlanStatus}:
        raise ValidationError({"status": f"Choose active, held or ended, not {status!r}."})
    plan = current_plan(session, patient_id)
    if plan is None:
        raise ValidationError({"status": "The patient has no treatment plan yet."})
    if plan.status == status:
        raise ValidationError({"status": f"The plan is already {status}."})
    if plan.status == PlanStatus.ended and status != PlanStatus.ended:
        raise ValidationError({"status": "An ended plan cannot be resumed; set a new plan instead."})
    if not (rationale or "").strip():
        raise ValidationError({"rationale": f"Give the reason for setting the plan to {status}."})
    row = plans.new_plan_version(session, actor, patient_id, _plan_input(plan, plan.dose_mg, plan.interval_days),
                                 rationale, status=status)
    run_for_patient(session, actor, patient_id)
    return row
