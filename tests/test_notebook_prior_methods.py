"""The prior-methods notebook executes headless on small hand-made records of prior_methods_cpu:
the table, what Child-Tuning_D adds to each method, distances to the pretrained weights, the
methods' own statistics and their cost; and of wd_pretrained_strength_cpu: score and loss split per λ."""
import pytest

from helpers.notebooks import run_notebook
from helpers.studies import write_prior_methods_records


@pytest.mark.slow
def test_prior_methods_notebook_runs_on_small_records(tmp_path, monkeypatch):
    results = tmp_path / "results"
    write_prior_methods_records(results)
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
