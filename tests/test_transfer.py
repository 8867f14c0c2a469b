"""Label mapping for evaluation targets: hand-built predictions with known answers (SciTail,
QQP and its literal switch, RTE as a 2-way target), and every bad input of the mapping check."""
import pytest

from childtuning.config import load_task_config
from childtuning.errors import InputError
from childtuning.label_maps import check_target, resolve

E, N, C = 0, 1, 2           # MNLI's class indices: entailment, neutral, contradiction
PREDICTIONS = [E, N, C, C, E, N, E, C]


@pytest.fixture(scope="module")
def mnli():
    return load_task_config("mnli")


def accuracy(predicted, gold):
    return sum(p == g for p, g in zip(predicted, gold)) / len(gold)


def test_scitail_reads_contradiction_as_neutral(mnli):
    target, mapping = check_target(mnli, "scitail")
    ent, neu = target.labels.index("entailment"), target.labels.index("neutral")
    assert mapping.name == "default"
    assert mapping.apply(PREDICTIONS) == [ent, neu, neu, neu, ent, neu, ent, neu]
    gold = [ent, neu, neu, ent, ent, ent, neu, neu]
    # right: 0 1 2 4 7 (a contradiction on a neutral pair counts); wrong: 3 5 6
    assert accuracy(mapping.apply(PREDICTIONS), gold) == 5 / 8
    assert mapping.as_record() == {"name": "default", "pairs": {"entailment": "entailment", "neutral": "neutral",
                                                                "contradiction": "neutral"}}


def test_qqp_default_and_literal(mnli):
    target, default = check_target(mnli, "qqp")
    dup, nodup = target.labels.index("duplicate"), target.labels.index("not_duplicate")
    assert default.apply(PREDICTIONS) == [dup, nodup, nodup, nodup, dup, nodup, dup, nodup]
    _, literal = check_target(mnli, "qqp", choice="literal")
    assert literal.apply(PREDICTIONS) == [dup, dup, nodup, nodup, dup, dup, dup, nodup]
    gold = [dup, dup, nodup, nodup, dup, dup, nodup, nodup]
    assert accuracy(default.apply(PREDICTIONS), gold) == 5 / 8      # right: 0 2 3 4 7
    assert accuracy(literal.apply(PREDICTIONS), gold) == 7 / 8      # right: all but 6
    assert default.apply([N]) != literal.apply([N])                 # the switch is what differs


def test_rte_as_a_two_way_target(mnli):
    target, mapping = check_target(mnli, "rte")
    ent, not_ent = target.labels.index("entailment"), target.labels.index("not_entailment")
    assert mapping.apply(PREDICTIONS) == [ent, not_ent, not_ent, not_ent, ent, not_ent, ent, not_ent]
    _, same = check_target(load_task_config("rte"), "rte")          # an RTE model on RTE: by name
    assert same.name == "by_name" and same.apply([0, 1, 1]) == [0, 1, 1]


def test_same_label_names_map_by_name_whatever_their_order(mnli):
    snli = load_task_config("snli")
    snli.labels = ["contradiction", "entailment", "neutral"]        # another order: mapped by name, not index
    mapping = resolve(mnli, snli)
    assert mapping.name == "by_name" and mapping.apply([E, N, C]) == [1, 2, 0]


def test_an_explicit_mapping_from_the_experiment(mnli):
    _, mapping = check_target(mnli, "qqp", choice={"entailment": "duplicate", "neutral": "duplicate",
                                                   "contradiction": "not_duplicate"})
    assert mapping.name == "explicit" and mapping.apply([N]) == [1]


@pytest.mark.parametrize("target, choice, split, message", [
    ("multinli", None, "dev", r"evaluation target 'multinli': unknown task 'multinli'.*known tasks"),
    ("mnli", None, "test", r"target mnli: no split 'test'; conf/task/mnli.yaml declares"),
    ("stsb", None, "dev", r"target stsb is a regression task; a classification source \(mnli\)"),
    ("qqp", "loose", "dev", r"target qqp: no label map 'loose'; choose by_name, one of its label_maps \['default', 'literal'\]"),
    ("qqp", {"entailment": "duplicate", "neutral": "not_duplicate", "contradiction": "maybe"}, "dev",
     r"maps to \['maybe'\], which qqp's labels"),
    ("qqp", {"entailment": "duplicate", "neutral": "not_duplicate", "contradiction": "not_duplicate",
             "unsure": "duplicate"}, "dev", r"maps from \['unsure'\], which mnli's labels"),
    ("qqp", {"duplicate": "entailment"}, "dev", r"maps from \['duplicate'\].*are qqp's labels: a map reads source labels"),
    ("qqp", {"entailment": "duplicate"}, "dev", r"predicted mnli label\(s\) \['neutral', 'contradiction'\] have no qqp label"),
    ("qqp", {"entailment": "not_duplicate", "neutral": "not_duplicate", "contradiction": "not_duplicate"}, "dev",
     r"no prediction can become qqp's \['duplicate'\]"),
    ("qqp", "by_name", "dev", r"maps to \['contradiction', 'entailment', 'neutral'\], which qqp's labels"),
])
def test_bad_targets_and_mappings(mnli, target, choice, split, message):
    with pytest.raises(InputError, match=message):
        check_target(mnli, target, split=split, choice=choice)


def test_a_regression_source_has_no_labels_to_map():
    with pytest.raises(InputError, match=r"source stsb is a regression task"):
        check_target(load_task_config("stsb"), "rte")


def test_every_nli_target_resolves_from_both_sources():
    """The task files' maps are consistent: MNLI and SNLI models reach every NLI-style target."""
    for source in ("mnli", "snli", "mnli_m_dev_split", "snli_test_split"):
        src = load_task_config(source)
        for target, split in (("mnli", "dev_mismatched"), ("snli", "dev"), ("sick", "dev"), ("scitail", "dev"),
                              ("qqp", "dev"), ("rte", "dev")):
            check_target(src, target, split)


@pytest.mark.parametrize("source, target, split", [("mnli_m_dev_split", "mnli", "dev"), ("snli_test_split", "snli", "test"),
                                                   ("mnli", "mnli", "train"), ("snli_test_split", "snli_test_split", "train")])
def test_a_target_that_is_the_sources_training_data(source, target, split):
    with pytest.raises(InputError, match=rf"target {target}:{split} reads the data {source} trains on"):
        check_target(load_task_config(source), target, split)
    check_target(load_task_config("mnli_m_dev_split"), "snli", "dev")      # other data: fine
