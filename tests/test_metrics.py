"""Every dev metric on hand-made predictions whose answers are worked out by hand (0-100 scale)."""
import math

import numpy as np
import pytest

from childtuning import data, metrics
from childtuning.config import validate
from helpers.configs import compose_cfg

# Classification: 6 positives, 4 negatives; TP=4, FN=2, FP=1, TN=3.
LABELS = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0])
PREDS = np.array([1, 1, 1, 1, 0, 0, 1, 0, 0, 0])
# Regression: y = x^2 on 1..5 is monotone (Spearman 1) but not linear (Pearson < 1).
X = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
Y = X ** 2

EXPECTED = {
    "accuracy": 100 * 7 / 10,
    "f1": 100 * 2 * 4 / (2 * 4 + 1 + 2),                           # positive class: 72.73 (negative: 66.67)
    "matthews_corrcoef": 100 * (4 * 3 - 1 * 2) / math.sqrt(5 * 6 * 4 * 5),   # 40.82, not the accuracy
    # sum((x-3)(y-11)) = 60, sum((x-3)^2) = 10, sum((y-11)^2) = 374
    "pearson": 100 * 60 / math.sqrt(10 * 374),                     # 98.11
    "spearman": 100.0,
}


def test_every_metric_has_a_hand_computed_case():
    assert set(EXPECTED) == set(metrics.METRICS)


@pytest.mark.parametrize("name", ["accuracy", "f1", "matthews_corrcoef"])
def test_classification_metrics(name):
    assert metrics.compute([name], PREDS, LABELS) == {name: pytest.approx(EXPECTED[name], abs=1e-9)}


def test_f1_is_of_the_positive_class():
    negative_f1 = 100 * 2 * 3 / (2 * 3 + 2 + 1)                    # class 0: TP=3, FP=2, FN=1
    assert metrics.compute(["f1"], PREDS, LABELS)["f1"] != pytest.approx(negative_f1)
    # swapping the classes swaps the answer: F1 is not symmetric in the labels
    assert metrics.compute(["f1"], 1 - PREDS, 1 - LABELS)["f1"] == pytest.approx(negative_f1)


@pytest.mark.parametrize("name", ["pearson", "spearman"])
def test_correlations_on_a_monotone_non_linear_relation(name):
    assert metrics.compute([name], X, Y) == {name: pytest.approx(EXPECTED[name], abs=1e-9)}


def test_pearson_and_spearman_differ_and_keep_their_sign():
    got = metrics.compute(["pearson", "spearman"], X, -Y)
    assert got == {"pearson": pytest.approx(-EXPECTED["pearson"]), "spearman": pytest.approx(-100.0)}


def test_constant_regression_predictions_are_undefined_and_labelled_degenerate():
    got = metrics.compute(["pearson", "spearman"], np.full(5, 2.5), Y)
    assert math.isnan(got["pearson"]) and math.isnan(got["spearman"])
    assert "constant" in metrics.degenerate_reason(np.full(5, 2.5), True, got)
    assert "class 1" in metrics.degenerate_reason(np.ones(10, dtype=int), False, {"accuracy": 60.0})
    assert metrics.degenerate_reason(PREDS, False, metrics.compute(["accuracy"], PREDS, LABELS)) is None


def test_mrpc_paraphrase_is_the_positive_class(tmp_path):
    """MRPC's F1 is of the paraphrase class: the file's label "1" must become class index 1."""
    task = validate(compose_cfg("task=mrpc")).task
    assert task.main_metric == "f1" and list(task.metrics) == ["f1", "accuracy"]
    folder = tmp_path / "MRPC"
    folder.mkdir()
    rows = [f"{y}\t{i}\t{i + 100}\ts{i} .\tt{i} ." for i, y in enumerate(LABELS)]
    (folder / "dev.tsv").write_text("\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n" + "\n".join(rows) + "\n")
    split = data.load_task(task, str(tmp_path), ("dev",))["dev"]
    assert split.labels == LABELS.tolist()
    assert metrics.compute(list(task.metrics), PREDS, np.array(split.labels))["f1"] == pytest.approx(EXPECTED["f1"])


def test_stsb_reports_pearson_first():
    task = compose_cfg("task=stsb").task
    assert task.regression and task.main_metric == "pearson" and list(task.metrics) == ["pearson", "spearman"]
