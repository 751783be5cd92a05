"""Rules 4–5 of the protocol: too little data to judge (too soon, too few doses, stale scores),
and adherence (too few of the planned doses taken: continue without a change). Pure.
"""

from __future__ import annotations

from fractions import Fraction

from kapnotes.dosing.rule_facts import CONTINUE, FIRED, INSUFFICIENT, NOT_EVALUABLE, PASSED, Reason, mg, pct, same_dose
from kapnotes.dosing.rule_window import Evaluation, Fired, doses_text
from kapnotes.vocab import days_text

# --- rule 4: insufficient data --------------------------------------------------------------------


def insufficient_rule(ev: Evaluation, facts) -> Fired | None:
    """Rule 4: the plan is too new, too few doses of it were taken, or a GAD-7 or PHQ-9 is stale."""
    p, plan, eff, as_of = ev.p, ev.plan, ev.eff, ev.as_of
    flags, reasons = [], []

    def fire(code: str, text: str) -> None:
        flags.append(code)
        reasons.append(Reason(code, text))
        ev.check(code, FIRED, text)

    since = (as_of - eff).days
    facts["days_since_plan_start"] = since
    if since < 0:
        fire("too_soon", f"The plan takes effect on {eff.isoformat()}, after {as_of.isoformat()}: it cannot be "
                         f"judged yet.")
    elif since < p.too_soon_days:
        fire("too_soon", f"The plan took effect on {eff.isoformat()}, {days_text(since)} before "
                         f"{as_of.isoformat()}: fewer than the {p.too_soon_days} days needed to judge it.")
    else:
        ev.check("too_soon", PASSED, f"The plan took effect on {eff.isoformat()}, {days_text(since)} before "
                                     f"{as_of.isoformat()} (at least {p.too_soon_days} needed).")

    at_dose = [d for d in ev.doses if d.day >= eff and same_dose(d.dose_mg, plan.dose_mg)]
    facts["doses_at_current_dose"] = len(at_dose)
    counted = (f"{doses_text(len(at_dose))} of {mg(plan.dose_mg)} taken since the plan took effect on "
               f"{eff.isoformat()}")
    if len(at_dose) < p.min_doses_at_current_dose:
        fire("too_few_doses", f"Only {counted}, fewer than the {p.min_doses_at_current_dose} needed to judge it.")
    else:
        ev.check("too_few_doses", PASSED, f"{counted[0].upper()}{counted[1:]} (at least "
                                          f"{p.min_doses_at_current_dose} needed).")

    for code, name, items, max_age in (("stale_assessment", "GAD-7", ev.gad, p.gad7_max_age_days),
                                       ("stale_phq9", "PHQ-9", ev.phq, p.phq9_max_age_days)):
        latest = items[-1] if items else None
        facts[f"latest_{name.lower().replace('-', '')}"] = (
            {"date": latest.date.isoformat(), "total": latest.total} if latest else None)
        if latest is None:
            fire(code, f"No {name} on record up to {as_of.isoformat()}; enter one (at most {max_age} days old "
                       f"is needed).")
            continue
        age = (as_of - latest.date).days
        if age > max_age:
            fire(code, f"The latest {name} ({latest.total} on {latest.date.isoformat()}) is {days_text(age)} old, "
                       f"older than the {max_age} days allowed; enter a new one.")
        else:
            ev.check(code, PASSED, f"The latest {name} ({latest.total} on {latest.date.isoformat()}) is "
                                   f"{days_text(age)} old, within the {max_age} days allowed.")
    if not flags:
        return None
    return Fired(INSUFFICIENT, flags, reasons)


# --- rule 5: adherence --------------------------------------------------------------------------


def adherence_rule(ev: Evaluation, facts) -> Fired | None:
    """Rule 5: fewer than the needed share of planned doses taken: continue without a dose change."""
    p, plan = ev.p, ev.plan
    planned, taken = ev.planned, ev.taken
    if planned < p.adherence_min_planned:
        ev.check("adherence", NOT_EVALUABLE,
                 f"Adherence not judged: {ev.pw_text} only {planned} dose{'s' if planned != 1 else ''} "
                 f"{'were' if planned != 1 else 'was'} planned at one every {days_text(ev.interval)}, fewer than "
                 f"the {p.adherence_min_planned} needed ({taken} taken).")
        return None
    fraction = Fraction(taken, planned)
    facts["plan_window"]["fraction"] = float(fraction)
    counted = f"{taken} of {planned} planned doses taken ({pct(fraction)}) {ev.pw_text}"
    if fraction >= p.adherence_min_fraction:
        ev.check("adherence", PASSED, f"{counted}, at least the {pct(p.adherence_min_fraction)} needed.")
        return None
    text = (f"{counted}, below the {pct(p.adherence_min_fraction)} needed: continue {mg(plan.dose_mg)} every "
            f"{plan.interval_days} days without a dose change.")
    ev.check("adherence", FIRED, f"{counted}, below the {pct(p.adherence_min_fraction)} needed.")
    return Fired(CONTINUE, ["adherence"], [Reason("adherence", text)])
