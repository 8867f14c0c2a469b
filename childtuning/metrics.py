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
