"""GAD-7 and PHQ-9: item wording, scoring, bands, LOINC codes, the suicidality flag.

Totals and bands are always computed here, never typed by a user.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapnotes.errors import ValidationError
from kapnotes.models import Instrument

STEM = "Over the last 2 weeks, how often have you been bothered by the following problems?"
ANSWERS = ("Not at all", "Several days", "More than half the days", "Nearly every day")
ANSWER_LOINC = ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9")


@dataclass(frozen=True)
class Scale:
    instrument: str
    items: tuple[str, ...]
    item_loinc: tuple[str, ...]
    loinc_panel: str
    loinc_total: str
    bands: tuple[tuple[int, int, str], ...]  # (low, high, label), inclusive

    @property
    def max_total(self) -> int:
        return 3 * len(self.items)

    def band(self, total: int) -> str:
        for low, high, label in self.bands:
            if low <= total <= high:
                return label
        raise ValidationError({"total": f"{self.instrument} total must be 0–{self.max_total}, got {total}."})


GAD7 = Scale(
    Instrument.gad7.value,
    (
        "Feeling nervous, anxious, or on edge",
        "Not being able to stop or control worrying",
        "Worrying too much about different things",
        "Trouble relaxing",
        "Being so restless that it is hard to sit still",
        "Becoming easily annoyed or irritable",
        "Feeling afraid, as if something awful might happen",
    ),
    ("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"),
    "69737-5",
    "70274-6",
    ((0, 4, "minimal"), (5, 9, "mild"), (10, 14, "moderate"), (15, 21, "severe")),
)

PHQ9 = Scale(
    Instrument.phq9.value,
    (
        "Little interest or pleasure in doing things",
        "Feeling down, depressed, or hopeless",
        "Trouble falling or staying asleep, or sleeping too much",
        "Feeling tired or having little energy",
        "Poor appetite or overeating",
        "Feeling bad about yourself — or that you are a failure or have let yourself or your family down",
        "Trouble concentrating on things, such as reading the newspaper or watching television",
        "Moving or speaking so slowly that other people could have noticed? Or the opposite — being so "
        "fidgety or restless that you have been moving around a lot more than usual",
        "Thoughts that you would be better off dead or of hurting yourself in some way",
    ),
    ("44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"),
    "44249-1",
    "44261-6",
    (
        (0, 4, "minimal"),
        (5, 9, "mild"),
        (10, 14, "moderate"),
        (15, 19, "moderately severe"),
        (20, 27, "severe"),
    ),
)

SCALES = {GAD7.instrument: GAD7, PHQ9.instrument: PHQ9}


@dataclass(frozen=True)
class Score:
    instrument: str
    items: list[int] | None
    total: int
    band: str
    item9: int | None
    loinc_panel: str
    loinc_total: str

    @property
    def suicidality(self) -> bool:
        return bool(self.item9)


def get_scale(instrument: str) -> Scale:
    try:
        return SCALES[instrument]
    except KeyError:
        raise ValidationError({"instrument": f"Unknown instrument {instrument!r}; use GAD-7 or PHQ-9."}) from None


def score(instrument: str, items: list[int] | None = None, total: int | None = None) -> Score:
    """Score from item answers (preferred) or a reported total; both given must agree."""
    scale = get_scale(instrument)
    item9 = None
    if items is not None:
        items = list(items)
        if len(items) != len(scale.items):
            raise ValidationError({"items": f"{instrument} has {len(scale.items)} items, got {len(items)}."})
        for i, v in enumerate(items, start=1):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 3:
                raise ValidationError({f"item{i}": f"Item {i} must be 0, 1, 2 or 3, got {v!r}."})
        computed = sum(items)
        if total is not None and total != computed:
            raise ValidationError({"total": f"The items add up to {computed}, not {total}."})
        total = computed
        if scale is PHQ9:
            item9 = items[8]
    elif total is None:
        raise ValidationError({"items": f"Give the {instrument} item answers or its total."})
    if isinstance(total, bool) or not isinstance(total, int) or not 0 <= total <= scale.max_total:
        raise ValidationError(
            {"total": f"{instrument} total must be a whole number 0–{scale.max_total}, got {total!r}."})
    return Score(instrument, items, total, scale.band(total), item9, scale.loinc_panel, scale.loinc_total)


# --- added for the measures and the dashboard ------------------------------------------------

RESPONSE_FRACTION = 0.5  # response: at least 50 % below the baseline
REMISSION_BELOW = 5  # remission: total below 5


def check_item9_with_total(item9: int | None, total: int) -> None:
    """A PHQ-9 entered as a total must still answer item 9 (the safety question)."""
    if item9 is None:
        raise ValidationError({"item9": "A PHQ-9 entered as a total still needs the answer to item 9 "
                                        "(thoughts of self-harm), 0–3."})
    if isinstance(item9, bool) or not isinstance(item9, int) or not 0 <= item9 <= 3:
        raise ValidationError({"item9": f"Item 9 must be 0, 1, 2 or 3, got {item9!r}."})
    if item9 > total:
        raise ValidationError({"item9": f"Item 9 ({item9}) cannot be more than the total ({total})."})


def response_line(baseline: int | float) -> float:
    """The total at which a patient counts as a responder (50 % below baseline)."""
    return baseline * (1 - RESPONSE_FRACTION)


def status(baseline: int | None, current: int | None) -> str:
    """'remission', 'response', 'partial response', 'no response' or '' when unknown."""
    if baseline is None or current is None:
        return ""
    if current < REMISSION_BELOW:
        return "remission"
    if baseline <= 0:
        return ""
    improvement = (baseline - current) / baseline
    if improvement >= RESPONSE_FRACTION:
        return "response"
    if improvement >= 0.25:
        return "partial response"
    return "no response"
