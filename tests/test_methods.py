"""The method interface: named random streams, the check at validation, the optimizer hook, extra
loss terms in the record, and Child-Tuning_D's pluggable selection rule."""
import pytest
import torch

import childtuning.train as train_mod
from childtuning import seeding
from childtuning.errors import InputError
from childtuning.methods import REGISTRY, Method, register
from childtuning.child_networks import SELECTIONS, selection
from helpers.configs import compose_cfg

# stream_seed(7, name) as the first release computed it (before streams were opened to any name):
# committed records reproduce only if these never change.
FIRST_RELEASE_SEEDS = {"init": 4474668370826950401, "data": 793649811123725967, "dropout": 2167195393923510900,
                       "mask": 7443599362937997628, "fisher": 7163391018960965222, "subsample": 2153077621588806562}


def test_first_release_streams_keep_their_seeds():
    assert {s: seeding.stream_seed(7, s) for s in FIRST_RELEASE_SEEDS} == FIRST_RELEASE_SEEDS


def test_any_new_stream_name_gets_its_own_stable_seed():
    new = {name: seeding.stream_seed(7, name) for name in ("mixout", "child_network", "r3f_noise")}
    assert len(set(new.values()) | set(FIRST_RELEASE_SEEDS.values())) == len(new) + len(FIRST_RELEASE_SEEDS)
    assert new == {name: seeding.stream_seed(7, name) for name in new}          # deterministic
    assert seeding.stream_seed(8, "mixout") != new["mixout"]                    # and follows the run seed
    with pytest.raises(ValueError, match="non-empty name"):
        seeding.stream_seed(7, "")


def tiny(tmp_path, glue, *extra):
    return compose_cfg("model=tiny_bert", "task=rte", "task.max_train_samples=16", "trainer.epochs=2",
                       "trainer.batch_size=8", "impl.progress_bar=false", f"paths.results={tmp_path}",
                       f"paths.glue_dir={glue}", f"paths.cache={tmp_path}/cache", *extra)


def as_method(cfg, name):
    cfg.method.name = name          # a test method takes vanilla's config keys
    return cfg


@register
class ExtraTerms(Method):
    """Adds a second loss term and reports it (as R3F reports its KL term)."""
    name = "_test_extra_terms"

    def loss(self, model, batch, outputs):
        penalty = outputs.logits.pow(2).mean()
        return outputs.loss + 0.0 * penalty, {"penalty": penalty.detach(), "constant": torch.tensor(2.0)}


@register
class FrozenBySGD(Method):
    """Supplies its own optimizer (plain SGD at lr 0): nothing may move."""
    name = "_test_own_optimizer"

    def configure_optimizer(self, model, trainer, total_steps):
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        self.calls = getattr(self, "calls", 0) + 1
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)


@register
class Refuses(Method):
    name = "_test_refuses"

    @classmethod
    def check(cls, run_cfg):
        super().check(run_cfg)
        if run_cfg.trainer.epochs > 1:
            raise InputError("this method needs trainer.epochs=1")


@pytest.mark.slow
def test_loss_terms_are_averaged_per_epoch_into_the_history(tmp_path, synthetic_glue):
    rec = train_mod.run(as_method(tiny(tmp_path, synthetic_glue), "_test_extra_terms"))
    terms = [h["loss_terms"] for h in rec["history"]]
    assert len(terms) == 2 and all(t["constant"] == 2.0 and t["penalty"] > 0 for t in terms)
    vanilla = train_mod.run(tiny(tmp_path, synthetic_glue))
    assert all("loss_terms" not in h for h in vanilla["history"])        # no terms, no key


def test_a_method_can_supply_its_own_optimizer(tmp_path, synthetic_glue, monkeypatch):
    snapshots = {}
    real_train = train_mod.train

    def spy(model, method, *args, **kwargs):
        snapshots["before"] = {n: p.detach().clone() for n, p in model.named_parameters()}
        state = real_train(model, method, *args, **kwargs)
        snapshots["after"], snapshots["calls"] = dict(model.named_parameters()), method.calls
        return state
    monkeypatch.setattr(train_mod, "train", spy)
    rec = train_mod.run(as_method(tiny(tmp_path, synthetic_glue), "_test_own_optimizer"))
    assert rec["steps"] == 4 and snapshots["calls"] == 1
    assert all(torch.equal(snapshots["before"][n], p) for n, p in snapshots["after"].items())


def test_a_methods_check_refuses_before_any_data_is_read(tmp_path):
    cfg = as_method(tiny(tmp_path, tmp_path / "no_such_folder"), "_test_refuses")
    with pytest.raises(InputError, match="needs trainer.epochs=1"):
        train_mod.run(cfg)                        # the data folder does not exist: the check came first


def test_registered_methods_have_configs_that_validate():
    from childtuning.config import validate
    shipped = {"vanilla", "child_tuning_f", "child_tuning_d"}
    assert shipped <= set(REGISTRY)
    for name in shipped:
        assert validate(compose_cfg(f"method={name}")).method.name == name


@pytest.mark.slow
def test_d_uses_the_selection_rule_it_names(tmp_path, synthetic_glue):
    @selection("_test_first_tensor_only")
    def first_only(scores, keep_ratio, generator, **options):
        return [torch.ones_like(s, dtype=torch.bool) if i == 0 else torch.zeros_like(s, dtype=torch.bool)
                for i, s in enumerate(scores)], {"rule": "first tensor"}
    try:
        rec = train_mod.run(tiny(tmp_path, synthetic_glue, "method=child_tuning_d",
                                 "method.selection=_test_first_tensor_only"))
    finally:
        del SELECTIONS["_test_first_tensor_only"]
    stats = rec["method_stats"]
    assert stats["rule"] == "first tensor" and stats["selection"] == "_test_first_tensor_only"
    first = next(v for k, v in stats["kept_fraction_per_layer"].items() if k == "layer.0")
    assert 0 < stats["kept_params"] < stats["eligible_params"] and first > 0
    assert all(v == 0 for k, v in stats["kept_fraction_per_layer"].items() if k != "layer.0")
    with pytest.raises(InputError, match="method.selection='nope'"):
        train_mod.run(tiny(tmp_path, synthetic_glue, "method=child_tuning_d", "method.selection=nope"))
