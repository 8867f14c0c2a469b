"""Model families (childtuning/families/): each family's facts hold on its tiny model, every
consumer reads them, and a new family is one file plus a conf/model YAML."""
from __future__ import annotations

import re
import shutil

import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoConfig, AutoModelForSequenceClassification

import childtuning.train as train_mod
from childtuning import families, packing
from childtuning.config import validate
from childtuning.errors import InputError
from childtuning.methods.child_tuning import EligibleRule
from childtuning.methods.pretrained import is_pretrained

from helpers.configs import compose_cfg
from helpers.paths import REPO


def tiny(model_type: str):
    shipped = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "model" / f"tiny_{model_type}.yaml").config)
    return AutoModelForSequenceClassification.from_config(AutoConfig.for_model(model_type, vocab_size=60, **shipped))


@pytest.mark.parametrize("model_type", sorted(families.FAMILIES))
def test_each_family_describes_its_tiny_model(model_type):
    family, model = families.get(model_type), tiny(model_type)
    assert hasattr(model, family.encoder) and model.base_model_prefix == family.encoder
    named = [n for n, _ in model.named_parameters()]
    layers = {n for n in named if re.search(family.layer_pattern, n)}
    assert layers and all(is_pretrained(model, n) for n in layers)
    assert {int(re.search(family.layer_pattern, n).group(1)) for n in layers} == {0, 1}      # 2 layers each
    # the methods' defaults select by these same names: Top-K's layer pattern and Child-Tuning_D's eligible rule
    top_k = OmegaConf.load(REPO / "conf" / "method" / "top_k.yaml").layer_pattern
    assert {n for n in named if re.search(top_k, n) and is_pretrained(model, n)} == layers
    eligible = OmegaConf.load(REPO / "conf" / "method" / "child_tuning_d.yaml").eligible
    assert layers <= {n for n, _ in EligibleRule(**eligible).select(model)}
    assert packing.packable(model) == (family.packed is not None)
    shipped = OmegaConf.load(REPO / "conf" / "model" / f"tiny_{model_type}.yaml")
    assert shipped.padding_side == family.padding_side


def test_a_model_file_that_disagrees_with_its_family_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"padding_side 'right', but models of the xlnet family pad on the left"):
        validate(compose_cfg("model=tiny_xlnet", "model.padding_side=right", f"paths.results={tmp_path}"))


DISTILBERT = """\
# a fifth family, added by a test: DistilBERT (transformers model_type distilbert)
name: tiny_distilbert
source: tiny
architecture: distilbert
tokenizer: minilm
padding_side: right
config: {dim: 32, n_layers: 2, n_heads: 2, hidden_dim: 64, max_position_embeddings: 256}
"""


def distilbert_family():
    def head(model, first):
        # DistilBertForSequenceClassification: pre_classifier, ReLU, dropout, classifier on token 0.
        return model.classifier(model.dropout(torch.relu(model.pre_classifier(first[:, 0]))))[:, None, :]

    return families.Family(model_type="distilbert", encoder="distilbert",
                           reading=families.Reading("first", pooler=False), packed=None, padding_side="right",
                           layer_pattern=r"(?:^|\.)transformer\.layer\.(\d+)\.")


@pytest.mark.slow
def test_a_new_family_is_one_file_and_one_model_yaml(tmp_path, synthetic_glue, monkeypatch):
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf, ignore=shutil.ignore_patterns("exp"))
    (conf / "model" / "tiny_distilbert.yaml").write_text(DISTILBERT)
    args = ("model=tiny_distilbert", "task=rte", "task.max_train_samples=16", "trainer.epochs=1", "trainer.batch_size=8",
            "impl.progress_bar=false", f"paths.results={tmp_path}/results", f"paths.glue_dir={synthetic_glue}",
            f"paths.cache={tmp_path}/cache")
    # no file yet: refused with the file to add; without packed batches vanilla runs all the same
    with pytest.raises(InputError, match=r"add childtuning/families/distilbert.py"):
        validate(compose_cfg(*args, config_dir=conf))
    with pytest.raises(InputError, match=r"Top-K layer tuning needs the model's family.*families/distilbert.py"):
        validate(compose_cfg(*args, "method=top_k", "impl.packing=false", config_dir=conf))
    assert train_mod.run(compose_cfg(*args, "impl.packing=false", config_dir=conf))["status"] in ("ok", "degenerate")
    # the file (here registered by the test): Top-K and Child-Tuning_D now find its layers
    monkeypatch.setitem(families.FAMILIES, "distilbert", distilbert_family())
    for method in ("top_k", "child_tuning_d"):
        record = train_mod.run(compose_cfg(*args, f"method={method}", "method.top_k=1" if method == "top_k" else
                                           "seed=1", config_dir=conf))
        assert record["status"] in ("ok", "degenerate"), record["reason"]
    assert record["method_stats"]["kept_params"] > 0 and any("transformer.layer" in k or "layer." in k
                                                          for k in record["method_stats"]["kept_fraction_per_layer"])
