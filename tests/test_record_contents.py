"""What a record says beyond its scores: how the predictions are distributed (near-constant runs)
and where its code came from (commit, dirty tree, a digest of the differences)."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from childtuning import record as record_mod
from childtuning.metrics import prediction_summary


def test_a_class_histogram_by_label_name_and_the_near_constant_flag():
    labels = np.array([0, 1, 2] * 100)
    mixed = prediction_summary(np.array([0] * 150 + [1] * 100 + [2] * 50), labels, False, ["e", "n", "c"])
    assert mixed["counts"] == {"e": 150, "n": 100, "c": 50} and mixed["majority_share"] == 0.5
    assert mixed["near_constant"] is False and mixed["n"] == 300
    at = prediction_summary(np.array([1] * 285 + [0] * 15), labels, False, ["e", "n", "c"])   # exactly 95%
    assert at["counts"] == {"e": 15, "n": 285, "c": 0} and at["near_constant"] is False
    above = prediction_summary(np.array([1] * 286 + [0] * 14), labels, False, ["e", "n", "c"])
    assert above["near_constant"] is True
    assert prediction_summary(np.array([1, 1]), np.array([0, 1]), False, None)["counts"] == {"0": 0, "1": 2}


def test_the_confusion_counts_by_gold_label():
    got = prediction_summary(np.array([0, 0, 1, 2, 2, 0]), np.array([0, 1, 1, 1, 2, 2]), False, ["e", "n", "c"])
    assert got["by_label"] == {"e": {"e": 1, "n": 0, "c": 0}, "n": {"e": 1, "n": 1, "c": 1},
                               "c": {"e": 1, "n": 0, "c": 1}}
    # a class no label name covers still gets its row and column, by index
    assert prediction_summary(np.array([2, 0]), np.array([0, 0]), False, ["a", "b"])["by_label"] == \
        {"a": {"a": 1, "b": 0, "2": 1}, "b": {"a": 0, "b": 0, "2": 0}, "2": {"a": 0, "b": 0, "2": 0}}


def test_a_regression_spread_against_the_labels_spread():
    labels = np.linspace(0, 5, 100)
    ok = prediction_summary(labels * 0.5 + 1, labels, True)
    assert ok["std"] == pytest.approx(0.5 * labels.std()) and ok["label_std"] == pytest.approx(labels.std())
    assert ok["near_constant"] is False
    flat = prediction_summary(2.5 + 0.04 * (labels - 2.5), labels, True)
    assert flat["near_constant"] is True and "counts" not in flat


def git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_provenance_sees_code_changes_tracked_or_not_and_tells_them_apart(tmp_path, monkeypatch):
    repo = tmp_path / "checkout"
    (repo / "childtuning").mkdir(parents=True)
    (repo / "results").mkdir()
    (repo / "childtuning" / "a.py").write_text("x = 1\n")
    (repo / "results" / "table.md").write_text("old\n")
    git(repo, "init", "-q")
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "first")
    monkeypatch.setattr(record_mod, "REPO_ROOT", repo)
    clean = record_mod.provenance()
    assert clean["git_dirty"] is False and clean["git_diff_sha256"] is None and len(clean["git_commit"]) == 40
    (repo / "results" / "table.md").write_text("new\n")          # results are not code a run executes
    assert record_mod.provenance()["git_dirty"] is False
    (repo / "childtuning" / "a.py").write_text("x = 2\n")
    one = record_mod.provenance()
    assert one["git_dirty"] is True and len(one["git_diff_sha256"]) == 64
    (repo / "childtuning" / "a.py").write_text("x = 3\n")
    assert record_mod.provenance()["git_diff_sha256"] != one["git_diff_sha256"]
    (repo / "childtuning" / "a.py").write_text("x = 1\n")
    (repo / "childtuning" / "new.py").write_text("y = 1\n")        # an untracked module can be imported
    untracked = record_mod.provenance()
    assert untracked["git_dirty"] is True and untracked["git_diff_sha256"] not in (None, one["git_diff_sha256"])


def test_outside_a_checkout_provenance_is_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(record_mod, "REPO_ROOT", tmp_path)
    assert record_mod.provenance() == {"git_commit": None, "git_dirty": None, "git_diff_sha256": None}


def test_the_confusion_counts_by_bin_of_a_number_per_example():
    from childtuning.metrics import by_bin
    preds, gold = np.array([0, 2, 2, 1, 0, 2]), np.array([0, 1, 1, 1, 0, 2])
    values = [1.0, 1.5, 2.0, 4.0, 5.0, 7.0]          # bins [1, 2) [2, 3) [3, 5]; 7 lies outside
    got = by_bin(preds, gold, values, "score", [1, 2, 3, 5], ["e", "n", "c"])
    assert got["column"] == "score" and got["edges"] == [1.0, 2.0, 3.0, 5.0] and got["outside"] == 1
    assert list(got["bins"]) == ["[1, 2)", "[2, 3)", "[3, 5]"]
    assert got["bins"]["[1, 2)"] == {"e": {"e": 1, "n": 0, "c": 0}, "n": {"e": 0, "n": 0, "c": 1},
                                     "c": {"e": 0, "n": 0, "c": 0}}
    assert got["bins"]["[2, 3)"]["n"] == {"e": 0, "n": 0, "c": 1}
    assert got["bins"]["[3, 5]"]["n"] == {"e": 0, "n": 1, "c": 0} and got["bins"]["[3, 5]"]["e"]["e"] == 1
