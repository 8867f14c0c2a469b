"""The prior-methods notebook executes headless on small hand-made records of prior_methods_cpu:
the table, what Child-Tuning_D adds to each method, distances to the pretrained weights, the
methods' own statistics and their cost; and of wd_pretrained_strength_cpu: score and loss split per λ."""
import numpy as np
import pytest

from conftest import declared_digest, run_notebook
from test_aggregate import write
from test_notebook_ablations import record

METHODS = ("vanilla", "child_tuning_d", "wd_pretrained", "mixout", "child_tuning_d+wd_pretrained", "child_tuning_d+mixout")
LR = {"vanilla": 1e-4, "wd_pretrained": 1e-4, "mixout": 1e-4}        # combinations and CT-D: 4e-4


def stats_of(method, rng):
    distance = {"total": 1.0, "per_layer": {f"layer.{i}": float(0.1 * (i + 1) + rng.random()) for i in range(3)}}
    own = {"wd_pretrained": {"distance_to_pretrained": distance, "pulled_params": 1000},
           "mixout": {"mixed_fraction_of_model": 0.8}, "child_tuning_d": {"kept_fraction_of_eligible": 0.3}}
    parts = method.split("+")
    if len(parts) == 1:
        return own.get(method, {})
    return {"parts": {p: own.get(p, {}) for p in parts}}


def build(results):
    rng = np.random.default_rng(0)
    runs = []
    for task in ("mrpc", "stsb"):
        for method in METHODS:
            for seed in (1, 2, 3):
                value = 80.0 + 2.0 * ("child_tuning_d" in method) + rng.random()   # CT-D adds about 2
                r = record("prior_methods_cpu", task, method, seed, value, tag=method.replace("+", "_"),
                           trainer__lr=LR.get(method, 4e-4))
                seconds = 100 * (1.3 if "mixout" in method else 1.0)
                r.update(method_stats=stats_of(method, rng), started_at="2026-01-01T10:00:00+00:00",
                         finished_at=f"2026-01-01T10:0{int(seconds // 60)}:{int(seconds % 60):02d}+00:00")
                runs.append(r)
    write(results, *runs, experiment="prior_methods_cpu")
    strength = []
    for task in ("mrpc", "stsb"):
        for lam in (0.01, 1, 100):
            for seed in (1, 2, 3):
                r = record("wd_pretrained_strength_cpu", task, "wd_pretrained", seed, 80.0 - lam / 10 + rng.random(),
                           tag=f"l{lam}", method__coupled_strength=lam, trainer__lr=1e-4)
                r["history"][-1].update(train_loss=0.5 + lam / 100, loss_terms={"l2_to_pretrained": lam / 100})
                r["comparisons_digest"] = declared_digest("wd_pretrained_strength_cpu")   # made under its declaration
                strength.append(r)
    write(results, *strength, experiment="wd_pretrained_strength_cpu")


@pytest.mark.slow
def test_prior_methods_notebook_runs_on_small_records(tmp_path, monkeypatch):
    results = tmp_path / "results"
    build(results)
    out = tmp_path / "out"
    text, images = run_notebook("prior_methods", monkeypatch, results=results, notebook_out=out)
    assert "learning rate" in text and "0.0004" in text                    # the rates the runs used
    assert "child_tuning_d+mixout" in text and "p_holm" in text
    assert "mixed_fraction_of_model" in text and "kept_fraction_of_eligible" in text
    assert "nothing to show" not in text
    assert "task loss" in text and "method.coupled_strength" in text           # the coupled pull's section
    assert len(images) == 4                  # CT-D's gains, distances per layer, score against λ per task (2)
    assert (out / "wd_pretrained_strength_cpu" / "table.md").is_file()
    assert (out / "prior_methods_cpu" / "table.md").is_file()
    md = (out / "prior_methods_cpu" / "table.md").read_text()
    assert "## What each part of a combination adds" in md


@pytest.mark.slow
def test_prior_methods_notebook_says_when_there_is_nothing(tmp_path, monkeypatch):
    text, images = run_notebook("prior_methods", monkeypatch, results=tmp_path / "empty")
    assert "prior_methods_cpu: nothing to show" in text and "wd_pretrained_strength_cpu: nothing to show" in text
    assert not images
