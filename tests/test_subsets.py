"""Training subsets: stratified counts with known answers, determinism, one subset for every
method and seed by default, the first release's random rule unchanged, resplits, run ids."""
import collections

import pytest
import torch

import childtuning.train as train_mod
from childtuning import data, seeding
from childtuning.readers import Split
from childtuning.subsets import resplit, stratified_counts, stratified_subsample, subsample, training_subset
from helpers.configs import compose_cfg
from helpers.nli import write_transfer_sets


@pytest.mark.parametrize("counts, n, expected", [
    ([3479, 3123, 3213], 5000, [1772, 1591, 1637]),  # MNLI dev matched: quotas 1772.29, 1590.93, 1636.78
    ([5, 0, 5], 3, [2, 0, 1]),                       # quotas 1.5, 0, 1.5: the tie goes to the earlier label
    ([1, 1, 1], 2, [1, 1, 0]),
    ([10, 30], 8, [2, 6]),                           # exact quotas need no rounding
    ([7, 2], 20, [7, 2]),                            # more than there is: all of it
    ([9, 1], 5, [5, 0]),                             # quotas 4.5, 0.5: the tie goes to the earlier label
])
def test_stratified_counts_known_answers(counts, n, expected):
    got = stratified_counts(counts, n)
    assert got == expected
    assert sum(got) == min(n, sum(counts)) and all(g <= c for g, c in zip(got, counts))


def pool(counts):
    labels = [y for y, c in enumerate(counts) for _ in range(c)]
    labels = [labels[i] for i in torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    return Split([(f"text {i}",) for i in range(len(labels))], labels, "synthetic")


def test_stratified_subsample_exact_counts_deterministic_file_order():
    split = pool([300, 120, 80])
    sub = stratified_subsample(split, 50, seeding.generator(0, "subsample"))
    assert collections.Counter(sub.labels) == {0: 30, 1: 12, 2: 8}
    again = stratified_subsample(split, 50, seeding.generator(0, "subsample"))
    assert sub.texts == again.texts
    other = stratified_subsample(split, 50, seeding.generator(1, "subsample"))
    assert sub.texts != other.texts and collections.Counter(other.labels) == {0: 30, 1: 12, 2: 8}
    positions = [int(t[0].split()[1]) for t in sub.texts]
    assert positions == sorted(positions)                    # file order kept


def test_the_first_release_random_rule_is_unchanged():
    """What made the committed table1_cpu records: randperm from the run seed's "subsample"
    stream, first n positions, in file order."""
    split = pool([60, 40])
    expected = sorted(torch.randperm(100, generator=seeding.generator(3, "subsample"))[:25].tolist())
    got = subsample(split, 25, seeding.generator(3, "subsample"))
    assert [int(t[0].split()[1]) for t in got.texts] == expected


class Task:   # the keys training_subset reads
    def __init__(self, **kw):
        self.max_train_samples, self.subsample_seed, self.stratified_subsample = 20, None, False
        self.__dict__.update(kw)


def test_training_subset_seeds():
    split = pool([60, 40])
    ids = lambda task, seed: [t[0] for t in training_subset(split, task, seed).texts]  # noqa: E731
    fixed = Task(subsample_seed=0, stratified_subsample=True)
    assert ids(fixed, 1) == ids(fixed, 2)                                   # one subset for every run seed
    follows = Task(subsample_seed=None, stratified_subsample=True)          # the switch: follows the run seed
    assert ids(follows, 1) != ids(follows, 2) and ids(follows, 0) == ids(fixed, 5)
    assert collections.Counter(training_subset(split, fixed, 1).labels) == {0: 12, 1: 8}
    old = Task()                                                            # random, run seed: as before
    assert ids(old, 4) == [t[0] for t in subsample(split, 20, seeding.generator(4, "subsample")).texts]


def test_resplit_is_a_stratified_partition():
    split = pool([300, 120, 80])
    train, dev = resplit(split, 100, seed=0)
    assert collections.Counter(train.labels) == {0: 60, 1: 24, 2: 16} and len(dev) == 400
    assert sorted(train.texts + dev.texts) == sorted(split.texts) and not set(train.texts) & set(dev.texts)
    assert resplit(split, 100, seed=0)[0].texts == train.texts and resplit(split, 100, seed=1)[0].texts != train.texts
    from childtuning.errors import InputError
    with pytest.raises(InputError, match=r"resplit.train_size=500 leaves no dev set"):
        resplit(split, 500, seed=0, task_name="x")


@pytest.mark.slow
def test_same_subset_for_every_method_and_seed(tmp_path):
    """snli_test_split by default: 5,000 (here 24) label-stratified pairs of SNLI test, the same
    for every method and seed; task.subsample_seed=null makes it follow the run seed."""
    glue = tmp_path / "glue"
    write_transfer_sets(glue, n=60)

    def train_set(*extra):
        cfg = train_mod.validate(compose_cfg("model=tiny_bert", "task=snli_test_split", "task.max_train_samples=24",
                                             f"paths.glue_dir={glue}", *extra))
        return train_mod.load_data(cfg)["train"]

    runs = {(m, s): train_set(f"method={m}", f"seed={s}")
            for m in ("vanilla", "child_tuning_f", "child_tuning_d") for s in (1, 2)}
    prints = {data.fingerprint(split) for split in runs.values()}
    assert len(prints) == 1
    assert collections.Counter(runs["vanilla", 1].labels) == {0: 8, 1: 8, 2: 8}     # 20 of each label in the pool
    follow = [data.fingerprint(train_set("task.subsample_seed=null", f"seed={s}")) for s in (1, 2)]
    assert follow[0] != follow[1]


@pytest.mark.slow
def test_new_keys_leave_old_run_ids_alone_and_change_them_when_set():
    from childtuning.record import run_id
    ids = lambda *o: run_id(train_mod.validate(compose_cfg("model=tiny_bert", "task=rte", *o)))  # noqa: E731
    base = ids()
    from childtuning.record import outcome
    from omegaconf import OmegaConf
    hashed = outcome(OmegaConf.to_container(train_mod.validate(compose_cfg("model=tiny_bert", "task=rte")), resolve=True))
    assert not {"stratified_subsample", "resplit", "label_maps"} & set(hashed["task"])   # as before these keys existed
    assert ids("task.stratified_subsample=false") == base           # the old behaviour's value: not in the id
    assert ids("task.label_maps.default.entailment=entailment") == base   # how others read this task: not outcome
    assert ids("task.stratified_subsample=true") != base
    assert ids("task.subsample_seed=0") != base
    assert ids("+task.resplit={source: train, train_size: 100}") != base
