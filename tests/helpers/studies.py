"""Small hand-made records of the real studies (minilm runs of their experiments), for the notebook
and family tests."""
from __future__ import annotations

import numpy as np

from childtuning import SCHEMA_VERSION
from helpers.records import MAIN_METRIC, declared_digest, write_runs


def study_record(experiment, task, method, seed, value, tag="", **config):
    """A minilm record of `experiment` with what the aggregator reads; `config`: dotted config
    paths written group__key, and their values."""
    metric = MAIN_METRIC[task]
    cfg = {"task": {"main_metric": metric}}
    for dotted, v in config.items():
        group, key = dotted.split("__")
        cfg.setdefault(group, {})[key] = v
    return {"schema_version": SCHEMA_VERSION, "run_id": f"minilm.{task}.{method}.s{seed}.{tag or '0'}",
            "experiment": experiment, "model": "minilm", "task": task, "method": method, "seed": seed, "status": "ok",
            "reason": None, "metrics": {metric: value}, "main_metric": {"name": metric, "value": value},
            "history": [{"epoch": 1, "metrics": {metric: value}, "train_loss": 0.5}], "train_seconds": 1.0,
            "method_stats": {}, "config": cfg}


PRIOR_METHODS = ("vanilla", "child_tuning_d", "wd_pretrained", "mixout", "child_tuning_d+wd_pretrained",
                 "child_tuning_d+mixout")
PRIOR_LR = {"vanilla": 1e-4, "wd_pretrained": 1e-4, "mixout": 1e-4}        # combinations and CT-D: 4e-4


def _method_stats(method, rng):
    distance = {"total": 1.0, "per_layer": {f"layer.{i}": float(0.1 * (i + 1) + rng.random()) for i in range(3)}}
    own = {"wd_pretrained": {"distance_to_pretrained": distance, "pulled_params": 1000},
           "mixout": {"mixed_fraction_of_model": 0.8}, "child_tuning_d": {"kept_fraction_of_eligible": 0.3}}
    parts = method.split("+")
    if len(parts) == 1:
        return own.get(method, {})
    return {"parts": {p: own.get(p, {}) for p in parts}}


def write_prior_methods_records(results):
    """Records of prior_methods_cpu (mrpc and stsb, PRIOR_METHODS, seeds 1-3; Child-Tuning_D adds
    about 2 points) and of its follow-up wd_pretrained_strength_cpu (three strengths λ)."""
    rng = np.random.default_rng(0)
    runs = []
    for task in ("mrpc", "stsb"):
        for method in PRIOR_METHODS:
            for seed in (1, 2, 3):
                value = 80.0 + 2.0 * ("child_tuning_d" in method) + rng.random()   # CT-D adds about 2
                r = study_record("prior_methods_cpu", task, method, seed, value, tag=method.replace("+", "_"),
                                 trainer__lr=PRIOR_LR.get(method, 4e-4))
                seconds = 100 * (1.3 if "mixout" in method else 1.0)
                r.update(method_stats=_method_stats(method, rng), started_at="2026-01-01T10:00:00+00:00",
                         finished_at=f"2026-01-01T10:0{int(seconds // 60)}:{int(seconds % 60):02d}+00:00")
                runs.append(r)
    write_runs(results, *runs, experiment="prior_methods_cpu")
    strength = []
    for task in ("mrpc", "stsb"):
        for lam in (0.01, 1, 100):
            for seed in (1, 2, 3):
                value = 80.0 - lam / 10 + rng.random()
                r = study_record("wd_pretrained_strength_cpu", task, "wd_pretrained", seed, value,
                                 tag=f"l{lam}", method__coupled_strength=lam, trainer__lr=1e-4)
                r["history"][-1].update(train_loss=0.5 + lam / 100, loss_terms={"l2_to_pretrained": lam / 100})
                r["comparisons_digest"] = declared_digest("wd_pretrained_strength_cpu")   # made under its declaration
                strength.append(r)
    write_runs(results, *strength, experiment="wd_pretrained_strength_cpu")
