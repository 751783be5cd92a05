"""kapnotes.vocab: one home for the words; the old names still answer."""

from kapnotes import models, vocab
from kapnotes.dosing import suggestions
from kapnotes.notes import templates as note_templates


def test_every_interval_reads_as_words():
    assert vocab.every(1) == "every day" and vocab.every(7) == "every 7 days" and vocab.every(None) == ""


def test_decision_verbs_past_tense():
    assert [vocab.decision_past(v) for v in ("approve", "modify", "reject")] == ["approved", "modified", "rejected"]
    assert vocab.decision_past("modified") == "modified"


def test_tags_words_round_trip_and_cover_every_source():
    for tag in vocab.ADVERSE_EVENT_TAGS:
        word = vocab.adverse_event_word(tag)
        assert "_" not in word and vocab.adverse_event_tag(word) == tag
    assert set(vocab.PATIENT_SIDE_EFFECTS.values()) <= set(vocab.ADVERSE_EVENT_TAGS)
    assert "fall" in vocab.SERIOUS_ADVERSE_EVENTS and set(note_templates.ADVERSE_EVENT_TAGS) <= set(
        vocab.ADVERSE_EVENT_TAGS)
    assert vocab.adverse_events_text("chest_pain;fall") == "chest pain, fall"


def test_code_words_are_never_snake_case():
    for table in (vocab.CONTEXT_WORDS, vocab.FORMULATION_WORDS, vocab.ADMINISTRATION_WORDS, vocab.NOTE_TYPE_WORDS,
                  vocab.ACTION_WORDS, vocab.RULE_LABELS, vocab.DOSE_SOURCE_WORDS, vocab.ADJUSTMENT_STATUS_WORDS):
        assert all("_" not in w for w in table.values())
    assert vocab.NOTE_TYPE_WORDS["dosing"] == "KAP dosing session"


def test_old_names_are_re_exports():
    assert suggestions.RULE_LABELS is vocab.RULE_LABELS and suggestions.rule_label is vocab.rule_label
    assert models.DOSE_SOURCE_WORDS is vocab.DOSE_SOURCE_WORDS
    assert note_templates.DOSING.title == "KAP dosing session"


def test_urgency_label_has_one_home():
    assert vocab.urgency_label(True, 0) == "Urgent · HOLD" and vocab.urgency_label(True, 2) == "Urgent"
    assert vocab.urgency_label(False, 1) == "Decrease" and vocab.urgency_label(False, 2) == "Routine"
    assert vocab.urgency_word(False) == vocab.urgency_label(False, 2)


def test_decision_choice_maps_a_label_back_to_its_verb():
    assert [vocab.decision_choice(w) for w in vocab.DECISION_VERBS.values()] == ["approve", "modify", "reject"]
    assert vocab.decision_choice(None) is None and vocab.decision_choice("Maybe") is None
