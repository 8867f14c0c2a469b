"""The shared loop's evaluation: dropout off on the dev set, on again for the next epoch's training."""
import numpy as np
import torch

from childtuning import loop
from childtuning.data import BatchLoader
from helpers.configs import loop_cfg, resolved_method_cfg
from helpers.models import collate, rte_method, tiny_bert_model, tiny_loader

CPU = torch.device("cpu")
NO_AUTOCAST, _ = loop.autocast_for("fp32", CPU)


def test_evaluation_ignores_the_training_mode_it_finds():
    """Dev predictions of a model left in training mode (heavy dropout) are the same twice over,
    and equal a plain eval-mode forward pass."""
    model = tiny_bert_model(dropout=0.5)
    dev = BatchLoader(tiny_loader(n=24).features, 8, collate)       # file order, as the runner's dev loader
    task = loop_cfg().task
    logits, scores = [], []
    for _ in range(2):
        model.train()
        logits.append(loop.predict(model, dev, CPU, NO_AUTOCAST, regression=True, progress=False)[0])
        model.train()
        scores.append(loop.evaluate(model, dev, task, CPU, NO_AUTOCAST)[0])
    assert np.array_equal(logits[0], logits[1]) and scores[0] == scores[1]
    model.eval()
    with torch.no_grad():
        plain = torch.cat([model(**{k: v for k, v in b.items() if k != "labels"}).logits for b in dev]).numpy()
    np.testing.assert_array_equal(logits[0], plain)


def test_loop_trains_with_dropout_and_evaluates_without():
    """Every training forward pass (with gradients) runs in training mode, every dev pass in eval
    mode, in every epoch: evaluation leaves the model as the next epoch needs it."""
    model = tiny_bert_model(dropout=0.5)
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append((torch.is_grad_enabled(), m.training)))
    loop.train(model, rte_method(resolved_method_cfg("vanilla"), seed=1), tiny_loader(n=8), tiny_loader(n=4),
               loop_cfg(epochs=3), CPU)
    assert seen == [(True, True)] * 2 + [(False, False)] + [(True, True)] * 2 + [(False, False)] + \
        [(True, True)] * 2 + [(False, False)]                         # 2 steps, then 1 dev batch, per epoch
