"""Issue 16's method side: the ablation selection rules (bottom, random), pruning, the Fisher cache,
mask-only runs (trainer.epochs=0), and the identities that tie Child-Tuning to vanilla at keep ratio 1."""
from pathlib import Path

import numpy as np
import pytest
import torch

import childtuning.train as train_mod
from childtuning import fisher_cache, seeding
from childtuning.config import validate
from childtuning.errors import InputError
from childtuning.record import run_id
from childtuning.child_networks import SELECTIONS
from helpers.configs import compose_cfg


def tiny(results, glue, *extra):
    return compose_cfg("model=tiny_bert", "task=rte", "task.max_train_samples=24", "trainer.epochs=2",
                       "trainer.batch_size=8", "impl.progress_bar=false", "impl.num_threads=1",
                       f"paths.results={results}", f"paths.glue_dir={glue}", f"paths.cache={results}/cache", *extra)


def mask_bits(results, record) -> np.ndarray:
    with np.load(Path(results) / record["experiment"] / "artifacts" / record["run_id"] / "child_mask.npz") as f:
        return f["bits"].copy()


def spy_on_training(monkeypatch) -> dict:
    """Keep the model and method a run trains, with the weights it started training from."""
    seen = {}
    real = train_mod.train

    def spy(model, method, *args, **kwargs):
        original = method.prepare

        def prepare(m, loader, device):
            original(m, loader, device)
            seen["after_prepare"] = {n: p.detach().clone() for n, p in m.named_parameters()}
        method.prepare = prepare
        state = real(model, method, *args, **kwargs)
        seen.update(model=model, method=method)
        return state
    monkeypatch.setattr(train_mod, "train", spy)
    return seen


# ----------------------------------------------------------------------------- selection rules
def scores_with_ties():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(40, 25, generator=g)
    a.view(-1)[:30] = 0.0                              # exactly zero Fisher: weights that got no gradient
    a[5, :10] = 0.5                               # a block of equal scores
    b = torch.rand(300, generator=g)
    b[:7] = 0.5
    return [a, b]


@pytest.mark.parametrize("keep", [0.05, 0.3, 0.9, 1.0])
def test_bottom_keeps_as_many_as_top_and_only_the_lowest(keep):
    scores = scores_with_ties()
    top, _ = SELECTIONS["top"](scores, keep, torch.Generator())
    masks, info = SELECTIONS["bottom"](scores, keep, torch.Generator())
    k = sum(int(m.sum()) for m in top)
    flat = torch.cat([s.reshape(-1) for s in scores])
    chosen = torch.cat([m.reshape(-1) for m in masks])
    assert int(chosen.sum()) == k
    assert float(flat[chosen].max()) <= float(flat[~chosen].min()) if k < len(flat) else True
    # ties at the boundary value are taken in position order
    boundary = float(flat[chosen].max())
    at = (flat == boundary).nonzero().reshape(-1)
    taken = chosen[at]
    assert bool(taken[: int(taken.sum())].all())
    assert info["zero_fisher_weights"] == 30 and info["zero_fisher_kept"] == min(30, k)
    top_flat = torch.cat([t.reshape(-1) for t in top])
    assert info["shared_with_top"] == pytest.approx(float((chosen & top_flat).sum()) / k)


def test_bottom_breaks_ties_at_the_boundary_by_position():
    scores = [torch.tensor([0.0, 0.0, 0.0, 1.0]), torch.tensor([0.0, 2.0, 3.0, 4.0])]
    top, _ = SELECTIONS["top"](scores, 0.25, torch.Generator())
    assert [m.tolist() for m in top] == [[False] * 4, [False, False, True, True]]     # top keeps 2
    masks, info = SELECTIONS["bottom"](scores, 0.25, torch.Generator())
    # four weights share the lowest score (zero): the first two in position order are kept
    assert [m.tolist() for m in masks] == [[True, True, False, False], [False] * 4]
    assert info["zero_fisher_weights"] == 4 and info["zero_fisher_kept"] == 2 and info["shared_with_top"] == 0


def test_random_keeps_exactly_tops_count_from_its_own_stream():
    scores = scores_with_ties()
    top, _ = SELECTIONS["top"](scores, 0.3, torch.Generator())
    k = sum(int(m.sum()) for m in top)
    draw = lambda seed: SELECTIONS["random"](scores, 0.3, torch.Generator().manual_seed(seed))  # noqa: E731
    (m1, info), (m1_again, _), (m2, _) = draw(1), draw(1), draw(2)
    assert [m.shape for m in m1] == [s.shape for s in scores]          # one mask per eligible tensor
    assert sum(int(m.sum()) for m in m1) == sum(int(m.sum()) for m in m2) == k
    assert all(torch.equal(a, b) for a, b in zip(m1, m1_again))        # reproducible
    assert not all(torch.equal(a, b) for a, b in zip(m1, m2))          # and follows the stream
    # independent of the scores: about keep_ratio of it is in the top set, and each tensor gets its share
    assert 0.2 < info["shared_with_top"] < 0.4
    assert abs(int(m1[0].sum()) / k - 1000 / 1300) < 0.1


@pytest.mark.slow
def test_random_masks_are_uniform_over_positions():
    scores = [torch.rand(50), torch.rand(30)]
    hits = torch.zeros(80)
    for seed in range(400):
        masks, _ = SELECTIONS["random"](scores, 0.25, torch.Generator().manual_seed(seed))
        hits += torch.cat(masks).float()
    k = sum(int(m.sum()) for m in SELECTIONS["top"](scores, 0.25, torch.Generator())[0])
    # each position is kept with probability k/80: 400 draws, binomial sd ~ 8.7
    assert float((hits - 400 * k / 80).abs().max()) < 5 * (400 * k / 80 * (1 - k / 80)) ** 0.5


# ----------------------------------------------------------------------------- runs: ids, pruning
def test_new_d_keys_at_their_old_value_leave_run_ids_alone():
    base = run_id(validate(compose_cfg("model=tiny_bert", "method=child_tuning_d")))
    assert run_id(validate(compose_cfg("model=tiny_bert", "method=child_tuning_d", "method.prune=none"))) == base
    assert run_id(validate(compose_cfg("model=tiny_bert", "method=child_tuning_d", "method.prune=before_training"))) != base
    assert run_id(validate(compose_cfg("model=tiny_bert", "method=child_tuning_d", "method.selection=random"))) != base
    with pytest.raises(InputError, match="method.prune='later'"):
        validate(compose_cfg("model=tiny_bert", "method=child_tuning_d", "method.prune=later"))


def test_prune_zeroes_the_non_child_weights_which_stay_zero(tmp_path, synthetic_glue, monkeypatch):
    seen = spy_on_training(monkeypatch)
    rec = train_mod.run(tiny(tmp_path, synthetic_glue, "method=child_tuning_d", "method.prune=before_training",
                             "method.keep_ratio=0.3", "trainer.lr=1e-3"))
    method, model = seen["method"], seen["model"]
    params = dict(model.named_parameters())
    dropped = sum(int((~m).sum()) for m in method.masks)
    assert rec["method_stats"]["pruned_params"] == dropped > 0 and rec["method_stats"]["prune"] == "before_training"
    for name, mask in zip(method.names, method.masks):
        assert int(torch.count_nonzero(seen["after_prepare"][name][~mask])) == 0     # zero before training
        assert int(torch.count_nonzero(params[name].detach()[~mask])) == 0           # and after it
    moved = sum(int((params[n].detach() != seen["after_prepare"][n])[m].sum()) for n, m in zip(method.names, method.masks))
    assert moved > 0                                                                  # the child network trained


# ----------------------------------------------------------------------------- Fisher cache
@pytest.mark.slow
def test_fisher_cache_hit_gives_the_bit_identical_mask(tmp_path, synthetic_glue):
    first = train_mod.run(tiny(tmp_path, synthetic_glue, "method=child_tuning_d", "experiment=a"))
    # another learning rate, keep ratio and rule: the same Fisher pass
    second = train_mod.run(tiny(tmp_path, synthetic_glue, "method=child_tuning_d", "experiment=b", "trainer.lr=1e-3"))
    third = train_mod.run(tiny(tmp_path, synthetic_glue, "method=child_tuning_d", "experiment=c", "trainer.lr=1e-3",
                               "impl.fisher_cache=false", "force=true"))
    assert [r["method_stats"]["fisher_cache"] for r in (first, second, third)] == ["miss", "hit", "off"]
    assert second["method_stats"]["fisher_cache_key"] == first["method_stats"]["fisher_cache_key"]
    assert np.array_equal(mask_bits(tmp_path, first), mask_bits(tmp_path, second))
    assert np.array_equal(mask_bits(tmp_path, second), mask_bits(tmp_path, third))
    assert second["method_stats"]["child_mask_sha256"] == third["method_stats"]["child_mask_sha256"]
    assert second["history"] == third["history"]               # the hit changed nothing downstream
    assert len(list((tmp_path / "cache" / "fisher").glob("*.pt"))) == 1


def test_combinations_do_not_use_the_cache():
    from childtuning import methods

    cfg = validate(compose_cfg("model=tiny_bert", "method=child_tuning_d+mixout"))
    combined = methods.build(cfg.method, 1, methods.TaskInfo.of(cfg.task), cache_dir="somewhere")
    alone = methods.build(validate(compose_cfg("model=tiny_bert", "method=child_tuning_d")).method, 1,
                          methods.TaskInfo.of(cfg.task), cache_dir="somewhere")
    assert alone.cache_dir == "somewhere"
    assert combined.parts["child_tuning_d"].cache_dir is None and combined.parts["mixout"].cache_dir is None


@pytest.mark.slow
def test_a_changed_training_example_misses_the_cache(tmp_path, synthetic_glue):
    every = ("method=child_tuning_d", "task.max_train_samples=null", "reuse=false")   # the whole (changed) file
    first = train_mod.run(tiny(tmp_path, synthetic_glue, *every, "experiment=a"))
    path = synthetic_glue / "RTE" / "train.tsv"
    lines = path.read_text().splitlines()
    i, s1, s2, label = lines[1].split("\t")
    lines[1] = "\t".join([i, s1, s2.replace(" .", " fox ."), label])     # same size, one sentence changed
    path.write_text("\n".join(lines) + "\n")
    changed = train_mod.run(tiny(tmp_path, synthetic_glue, *every, "experiment=b"))
    fresh = train_mod.run(tiny(tmp_path, synthetic_glue, *every, "experiment=c", "impl.fisher_cache=false"))
    assert changed["data"]["train"]["fingerprint"] != first["data"]["train"]["fingerprint"]
    assert changed["method_stats"]["fisher_cache"] == "miss"
    assert np.array_equal(mask_bits(tmp_path, changed), mask_bits(tmp_path, fresh))


def test_cache_key_changes_with_every_input(tmp_path, synthetic_glue):
    from childtuning.models import build_model

    cfg = validate(tiny(tmp_path, synthetic_glue, "method=child_tuning_d"))
    splits = train_mod.load_data(cfg)
    tokenizer, features = train_mod.tokenize_splits(cfg, splits)
    loader, _ = train_mod.build_loaders(cfg, tokenizer, features)
    model = train_mod.init_model(cfg, tokenizer, torch.device("cpu"))
    named = [(n, p) for n, p in model.named_parameters() if "layer" in n]
    names, params = [n for n, _ in named], [p for _, p in named]
    fc = dict(cfg.method.fisher)
    key = lambda **kw: fisher_cache.key(fisher_cache.describe(  # noqa: E731
        kw.get("model", model), names, params, kw.get("loader", loader), kw.get("fc", fc), kw.get("seed", 1),
        torch.device("cpu"), seeding.generator(kw.get("order", 1), "fisher")))
    base = key()
    assert key() == base                                                  # deterministic
    assert key(seed=2) != base
    assert key(order=2) != base                                           # another order of the same examples
    assert key(fc={**fc, "batch_size": 4}) != base
    assert key(fc={**fc, "dropout": False}) != base
    assert key(fc={**fc, "max_samples": 8}) != base
    assert key(loader=loader.reshuffled(loader.generator, 4)) == base     # the pass's batch size is a setting
    short = train_mod.data.BatchLoader(loader.features[:-1], 8, loader.collate)
    assert key(loader=short) != base
    padded = train_mod.data.BatchLoader(loader.features, 8, train_mod.data.Collator(tokenizer, False))
    assert key(loader=padded) != base                                     # another batch layout
    assert train_mod.packing.is_varlen(next(iter(loader)))               # the default packed layout ...
    rows = train_mod.data.BatchLoader(loader.features, 8, train_mod.packing.PackedCollator(tokenizer, False, 128))
    assert key(loader=rows) != base                                       # ... and the other one
    other = build_model(cfg.model, 2, False, tokenizer)                   # another head initialisation
    assert key(model=other) != base
    with torch.no_grad():
        params[0][0, 0] += 1e-6
    assert key() != base                                                  # one weight moved
    torch.set_num_threads(torch.get_num_threads() + 1)
    try:
        with torch.no_grad():
            params[0][0, 0] -= 1e-6
        assert key() != base                                              # another thread count
    finally:
        torch.set_num_threads(1)


# ----------------------------------------------------------------------------- mask-only runs
@pytest.mark.slow
def test_mask_only_run_records_the_child_network_of_a_trained_run(tmp_path, synthetic_glue):
    trained = train_mod.run(tiny(tmp_path, synthetic_glue, "method=child_tuning_d", "experiment=a",
                                 "impl.fisher_cache=false"))
    only = train_mod.run(tiny(tmp_path, synthetic_glue, "method=child_tuning_d", "experiment=b",
                              "trainer.epochs=0", "impl.fisher_cache=false"))
    assert only["status"] == "ok" and only["steps"] == 0 and only["history"] == [] and only["metrics"] == {}
    assert only["main_metric"]["value"] is None and "epochs=0" in only["main_metric"]["checkpoint"]
    assert only["run_id"] != trained["run_id"]
    assert np.array_equal(mask_bits(tmp_path, only), mask_bits(tmp_path, trained))
    with pytest.raises(InputError, match="prepares nothing"):
        train_mod.run(tiny(tmp_path, synthetic_glue, "method=vanilla", "trainer.epochs=0"))


# ----------------------------------------------------------------------------- identities
def outcome(record):
    return record["metrics"], record["history"], record["steps"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["child_tuning_f", "child_tuning_d"])
def test_keep_ratio_one_with_vanillas_settings_is_vanilla(tmp_path, synthetic_glue, name):
    """Child-Tuning at keep ratio 1 with vanilla's warm-up, no-decay rule and optimizer settings is
    vanilla to the last bit: its masks keep everything, and D's Fisher pass (fresh or cached)
    draws nothing from the training's random streams."""
    common = ("trainer.lr=1e-3", "trainer.epochs=3")
    vanilla = train_mod.run(tiny(tmp_path, synthetic_glue, *common))
    same = ("method.keep_ratio=1.0", "method.warmup_ratio=null", "method.no_decay=by_module_type")
    fresh = train_mod.run(tiny(tmp_path, synthetic_glue, *common, f"method={name}", *same))
    assert fresh["method_stats"]["keep_ratio"] == 1.0
    assert outcome(fresh) == outcome(vanilla)
    assert len({h["metrics"]["accuracy"] for h in vanilla["history"]} | {h["train_loss"] for h in vanilla["history"]}) > 1
    if name == "child_tuning_d":
        assert fresh["method_stats"]["kept_fraction_of_eligible"] == 1.0
        cached = train_mod.run(tiny(tmp_path, synthetic_glue, *common, f"method={name}", *same, "experiment=again",
                                    "reuse=false"))
        assert cached["method_stats"]["fisher_cache"] == "hit" and outcome(cached) == outcome(vanilla)
    # on BERT-type models the two no-decay rules pick the same weights: the fair warm-up preset alone is enough
    preset = train_mod.run(tiny(tmp_path, synthetic_glue, *common, f"method={name}", "method.keep_ratio=1.0",
                                "preset=fair_warmup"))
    assert outcome(preset) == outcome(vanilla)
    # and the official setting (no warm-up) is not vanilla: the identity above is not vacuous
    official = train_mod.run(tiny(tmp_path, synthetic_glue, *common, f"method={name}", "method.keep_ratio=1.0"))
    assert outcome(official) != outcome(vanilla)


OVERLAP_EXPERIMENT = """\
# @package _global_
defaults:
  - override /model: tiny_bert
  - override /method: child_tuning_d
experiment: ovt
task: {max_train_samples: 24}
method: {keep_ratio: 0.3}
trainer: {epochs: 0, batch_size: 8}
impl: {progress_bar: false, num_threads: 1}
hydra:
  sweeper:
    params:
      task: rte,mrpc
      seed: 1,2
table:
  kind: overlap
  rows: [model, method]
  columns: task
"""


@pytest.mark.slow
def test_mask_only_runs_feed_the_overlap_table(tmp_path, synthetic_glue):
    from omegaconf import open_dict

    from childtuning.aggregate import aggregate
    from childtuning.sweep import composer

    path = tmp_path / "ovt.yaml"
    path.write_text(OVERLAP_EXPERIMENT)
    results = tmp_path / "results"
    with composer(path) as compose_with:
        jobs = [compose_with([f"task={t}", f"seed={s}", f"paths.results={results}", f"paths.glue_dir={synthetic_glue}",
                              f"paths.cache={tmp_path}/cache"]) for t in ("rte", "mrpc") for s in (1, 2)]
    for job in jobs:
        with open_dict(job):
            del job["hydra"]
        assert train_mod.run(job)["steps"] == 0
    cells = aggregate("ovt", results, experiment_file=path)
    whole = cells[cells["layer"] == "all"].set_index(["task_a", "task_b"])
    assert len(whole) == 4 and whole["n_pairs"].tolist() == [2, 2, 2, 2]     # pairs of different seeds
    assert whole["chance_mean"].between(0.29, 0.35).all() and whole["overlap_mean"].between(0, 1).all()
    assert (results / "ovt" / "mask_overlap_counts.json").is_file()
    assert "keep ratio 0.3, 24 training examples" in (results / "ovt" / "table.md").read_text()
