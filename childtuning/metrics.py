"""Dev-set metrics (scikit-learn / scipy; `evaluate` would need the hub) and run status."""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

METRICS = {
    "accuracy": lambda p, y: float(accuracy_score(y, p)),
    "f1": lambda p, y: float(f1_score(y, p)),
    "matthews_corrcoef": lambda p, y: float(matthews_corrcoef(y, p)),
    "pearson": lambda p, y: float(pearsonr(p, y)[0]) if np.std(p) > 0 else math.nan,
    "spearman": lambda p, y: float(spearmanr(p, y)[0]) if np.std(p) > 0 else math.nan,
}


def compute(names: list[str], predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Metrics on a 0-100 scale (as the paper reports them)."""
    return {n: 100.0 * METRICS[n](predictions, labels) for n in names}


# A run is flagged near-constant (and counted so in the tables) when its predictions carry almost no
# spread: the most frequent predicted class takes more than this share of the predictions, or (a
# regression task) the predictions' standard deviation is below this fraction of the labels'.
NEAR_CONSTANT_SHARE = 0.95
NEAR_CONSTANT_SPREAD = 0.05


def prediction_summary(predictions: np.ndarray, labels: np.ndarray, regression: bool,
                       label_names: list[str] | None = None) -> dict:
    """How a split's predictions are distributed, for the record: the class histogram (by label
    name), the majority class's share and the confusion counts (`by_label`: gold label -> predicted
    label -> count), or for regression the predictions' mean and std beside the labels' std;
    `near_constant` by the thresholds above."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if regression:
        spread, label_spread = float(np.std(predictions)), float(np.std(labels))
        return {"n": int(len(predictions)), "mean": float(np.mean(predictions)), "std": spread,
                "label_std": label_spread, "near_constant": bool(spread < NEAR_CONSTANT_SPREAD * label_spread)}
    by_label = confusion_counts(predictions, labels, label_names)
    counts = {pred: sum(row[pred] for row in by_label.values()) for pred in by_label}
    n = sum(counts.values())
    share = max(counts.values()) / n if n else float("nan")
    return {"n": n, "counts": counts, "majority_share": share, "near_constant": bool(share > NEAR_CONSTANT_SHARE),
            "by_label": by_label}


def confusion_counts(predictions: np.ndarray, labels: np.ndarray, label_names: list[str] | None = None) -> dict:
    """Gold label -> predicted label -> count, by label name (a class index no name covers by its
    number), every class present in both directions."""
    names = list(label_names or [])
    predictions, labels = np.asarray(predictions).astype(np.int64), np.asarray(labels).astype(np.int64)
    k = max(len(names), int(predictions.max(initial=-1)) + 1, int(labels.max(initial=-1)) + 1)
    name = lambda i: names[i] if i < len(names) else str(i)       # noqa: E731
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    return {name(g): {name(i): int(c) for i, c in enumerate(row)} for g, row in enumerate(confusion)}


def by_bin(predictions: np.ndarray, labels: np.ndarray, values: list[float], column: str, edges: list[float],
           label_names: list[str]) -> dict:
    """The confusion counts (as prediction_summary's `by_label`) within each bin of `values`, one
    number per example: bins [edges[i], edges[i+1]), the last closed; examples outside every bin
    are counted as `outside`."""
    predictions, labels, values = np.asarray(predictions), np.asarray(labels), np.asarray(values, dtype=float)
    bins, edges = {}, [float(e) for e in edges]
    for i, (lo, hi) in enumerate(zip(edges, edges[1:])):
        last = i == len(edges) - 2
        inside = (values >= lo) & ((values <= hi) if last else (values < hi))
        name = f"[{lo:g}, {hi:g}{']' if last else ')'}"
        bins[name] = confusion_counts(predictions[inside], labels[inside], label_names)
    outside = int(((values < edges[0]) | (values > edges[-1])).sum())
    return {"column": column, "edges": edges, "bins": bins, "outside": outside}


def degenerate_reason(predictions: np.ndarray, regression: bool, metrics: dict[str, float]) -> str | None:
    """Why a run's predictions carry no signal, or None. Such runs are kept and labelled."""
    if not regression and len(np.unique(predictions)) == 1:
        return f"constant predictions (every dev example predicted class {int(predictions[0])})"
    if regression and np.std(predictions) == 0:
        return "constant predictions (correlation undefined)"
    nan = [k for k, v in metrics.items() if math.isnan(v)]
    if nan:
        return f"undefined metric(s): {', '.join(nan)}"
    return None
