"""Training subsets and resplits: a uniform random subset (the first release's rule) or a
label-stratified one with exact per-label counts, and a split cut into train and the rest.

Stratified counts: the n examples are shared out in proportion to each label's count in the pool,
rounded by largest remainder: every label gets the floor of its exact quota n * n_label / N, and
the examples still missing (fewer than the number of labels) go one each to the labels with the
largest remainders, the earlier label in task.labels first on a tie. So the counts sum to n
exactly, each is within one of its exact quota, and none exceeds what the pool has.
"""
from __future__ import annotations

import torch

from . import seeding
from .errors import InputError
from .readers import Split


def _take(split: Split, idx: list[int], source: str | None = None) -> Split:
    return Split([split.texts[i] for i in idx], [split.labels[i] for i in idx], source or split.source,
                 extra={k: [v[i] for i in idx] for k, v in split.extra.items()})


def subsample(split: Split, n: int | None, generator: torch.Generator) -> Split:
    """A seeded uniform random subset of `n` examples (order kept as in the file); None = all.
    The first release's rule: the committed records of table1_cpu and lr_search_* used it."""
    if n is None or n >= len(split):
        return split
    idx = sorted(torch.randperm(len(split), generator=generator)[:n].tolist())
    return _take(split, idx)


def stratified_counts(label_counts: list[int], n: int) -> list[int]:
    """How many examples of each label an `n`-example stratified subset takes (module docstring)."""
    total = sum(label_counts)
    if n >= total:
        return list(label_counts)
    floors = [n * c // total for c in label_counts]
    remainders = [n * c % total for c in label_counts]
    for k in sorted(range(len(label_counts)), key=lambda k: (-remainders[k], k))[: n - sum(floors)]:
        floors[k] += 1
    return floors


def stratified_indices(labels: list[int], n: int, generator: torch.Generator) -> list[int]:
    """Positions of a stratified `n`-subset of `labels` (class indices), in file order: per label
    (in index order), its count of positions drawn by one seeded permutation each."""
    by_label: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_label.setdefault(int(y), []).append(i)
    order = sorted(by_label)
    counts = stratified_counts([len(by_label[y]) for y in order], n)
    chosen = []
    for y, count in zip(order, counts):
        pool = by_label[y]
        chosen += [pool[j] for j in torch.randperm(len(pool), generator=generator)[:count].tolist()]
    return sorted(chosen)


def stratified_subsample(split: Split, n: int | None, generator: torch.Generator) -> Split:
    """A label-stratified subset of `n` examples with exact per-label counts; None = all."""
    if n is None or n >= len(split):
        return split
    return _take(split, stratified_indices(split.labels, n, generator))


def training_subset(train: Split, task, run_seed: int) -> Split:
    """The run's training set: task.max_train_samples examples (null: all), drawn from the
    "subsample" stream of task.subsample_seed (null: the run's seed, so each seed its own subset;
    a number: one subset for every method and seed), stratified when task.stratified_subsample.
    A number above the set's size is refused: it would run the whole set under another run id."""
    n = task.max_train_samples
    if n is not None and 0 < len(train) < n:      # (an empty set gets its own message from the runner)
        raise InputError(f"task {task.name}: task.max_train_samples={n} is more than the {len(train)} examples of its "
                         f"training set ({train.source}); use at most {len(train)}, or null for the whole set")
    seed = run_seed if task.subsample_seed is None else task.subsample_seed
    draw = stratified_subsample if task.stratified_subsample else subsample
    return draw(train, task.max_train_samples, seeding.generator(seed, "subsample"))


def held_out(train: Split, task, run_seed: int) -> Split:
    """The examples of the training split that the run's training subset (training_subset) leaves
    out, in file order: data the run never trains on and no table reports, for choosing settings
    (a tuning protocol's search stage). Refused for a run that trains on the whole split."""
    used = training_subset(train, task, run_seed)
    if len(used) >= len(train):
        raise InputError(f"task {task.name}: a held-out split needs a run that trains on a subset of its "
                         f"{len(train)} training examples (task.max_train_samples={task.max_train_samples}); "
                         "set task.max_train_samples below that, or score the choice on another split")
    seen = set(used.texts)            # a row whose text the subset holds (a duplicate row too) is not held out
    keep = [i for i, text in enumerate(train.texts) if text not in seen]
    return _take(train, keep, f"{train.source} (held out: the {len(keep)} training examples whose text is not in "
                              f"this run's {len(used)}-example subset)")


def grouped_indices(groups: list, n: int, generator: torch.Generator) -> list[int] | None:
    """Positions of exactly `n` examples made of whole groups (examples sharing a `groups` value),
    in file order; None when no set of whole groups has `n` examples. The groups are visited in
    one seeded random order and each is taken when it fits and the groups after it can still
    complete `n` exactly (a subset-sum table of the later groups' sizes, as bit masks)."""
    members: dict = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    keys = list(members)              # first-appearance order, so the draw depends on the file only
    order = [keys[j] for j in torch.randperm(len(keys), generator=generator).tolist()]
    sizes = [len(members[k]) for k in order]
    full = (1 << (n + 1)) - 1
    reachable = [0] * len(order) + [1]         # reachable[j]: bit s set when groups j.. can sum to s
    for j in range(len(order) - 1, -1, -1):
        reachable[j] = (reachable[j + 1] | (reachable[j + 1] << sizes[j])) & full
    if not reachable[0] >> n & 1:
        return None
    chosen, left = [], n
    for j, key in enumerate(order):
        if left == 0:
            break
        if sizes[j] <= left and reachable[j + 1] >> (left - sizes[j]) & 1:
            chosen += members[key]
            left -= sizes[j]
    return sorted(chosen)


def resplit(pool: Split, train_size: int, seed: int, task_name: str = "", group_field: int | None = None,
            group_name: str = "") -> tuple[Split, Split]:
    """(train, dev): `train_size` examples of `pool` drawn from the "resplit" stream of `seed`,
    and every other example of `pool` (both in file order). Without a group the draw is
    label-stratified. With `group_field` (the position of a text field, e.g. MNLI's premise) it
    takes whole groups of examples that share that text, so train and dev never share one (MNLI
    writes three hypotheses per premise, one per label, so the labels stay close to balanced; the
    draw is not stratified)."""
    if not 0 < train_size < len(pool):
        raise InputError(f"task {task_name}: resplit.train_size={train_size} leaves no dev set from {pool.source} "
                         f"({len(pool)} examples); use a size below {len(pool)}")
    generator = seeding.generator(seed, "resplit")
    if group_field is None:
        chosen = stratified_indices(pool.labels, train_size, generator)
        how = f"{train_size} label-stratified, seed {seed}"
    else:
        groups = [t[group_field] for t in pool.texts]
        chosen = grouped_indices(groups, train_size, generator)
        if chosen is None:
            raise InputError(f"task {task_name}: resplit.train_size={train_size} cannot be made of whole "
                             f"{group_name} groups of {pool.source}; choose another size")
        how = f"{train_size} in {len({groups[i] for i in chosen})} whole {group_name} groups, seed {seed}"
    taken = set(chosen)
    rest = [i for i in range(len(pool)) if i not in taken]
    return (_take(pool, chosen, f"{pool.source} (resplit: {how})"),
            _take(pool, rest, f"{pool.source} (resplit: the other {len(rest)})"))
