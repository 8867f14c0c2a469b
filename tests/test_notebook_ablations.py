"""The child-network studies' notebook executes headless on small hand-made records of the real
experiments (tuning protocol, ablations, keep-ratio sweep, overlap with saved masks)."""
import json

import numpy as np
import pytest

from helpers.notebooks import run_notebook
from helpers.records import mask_record, write_runs
from helpers.studies import study_record


def build(results):
    rng = np.random.default_rng(0)
    lrs = {"vanilla": 1e-4, "child_tuning_f": 4e-4, "child_tuning_d": 4e-4}
    write_runs(results, *(study_record("table1_cpu_tuned", t, m, s, float(50 + 10 * rng.random()), trainer__lr=lr)
                          for t in ("cola", "rte") for m, lr in lrs.items() for s in (1, 2, 3)),
               experiment="table1_cpu_tuned")
    choices = [{"where": {"model": "minilm", "method": m}, "values": {"trainer.lr": lr}, "score": 55.0,
                "at_grid_edge": [], "candidates": [{"values": {"trainer.lr": v}, "score": 50.0 + 1e4 * v,
                                                    "per_task": {"cola": 50.0, "rte": 60.0}, "scored_of_runs": {}}
                                                   for v in (1e-4, 4e-4)]} for m, lr in lrs.items()]
    (results / "table1_cpu_tuned" / "selection.json").write_text(json.dumps(
        {"experiment": "table1_cpu_tuned", "rule": {"name": "best_mean_over_tasks", "statement": "the best average"},
         "select": ["trainer.lr"], "per": ["model", "method"], "reported_seeds": [1, 2, 3, 4, 5],
         "search": {"experiment": "lr_search_tuned_cpu", "seeds": [0]}, "choices": choices}))
    write_runs(results, *(study_record("ablation_cpu", t, "child_tuning_d", s, float(50 + 10 * rng.random()), tag=sel,
                                       method__selection=sel, trainer__lr=4e-4)
                          for t in ("cola", "rte") for sel in ("top", "random", "bottom") for s in (1, 2, 3)),
               experiment="ablation_cpu")
    write_runs(results, *(study_record("ablation_keep_ratio_cpu", t, m, s, float(40 + 30 * k + rng.random()), tag=str(k),
                                       method__keep_ratio=k, trainer__lr=4e-4)
                          for t in ("cola", "stsb") for m in ("child_tuning_f", "child_tuning_d")
                          for k in (0.1, 0.5, 1.0) for s in (1, 2)), experiment="ablation_keep_ratio_cpu")
    for task in ("rte", "mrpc"):
        for seed in (1, 2):
            mask_record(results, task, seed, rng.random(32) < 0.3, keep=0.3, experiment="overlap_cpu")


@pytest.mark.slow
def test_ablation_notebook_runs_on_small_records(tmp_path, monkeypatch):
    results = tmp_path / "results"
    build(results)
    text, images = run_notebook("inspect_ablations", monkeypatch, results=results, notebook_out=tmp_path / "out")
    assert "rule best_mean_over_tasks" in text and "## Tuning protocol" in text and "p_holm" in text
    assert "ablation_prune_cpu: nothing to show" in text                 # no records: said, not an error
    assert "same task, other seed" in text
    # EMP, ablation_cpu's paired differences, two keep-ratio curves, two overlap heat-maps
    assert len(images) >= 6
    assert (tmp_path / "out" / "overlap_cpu" / "plots" / "overlap.png").is_file()
