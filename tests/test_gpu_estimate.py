"""benchmarks/gpu_estimate.py: an experiment's projected GPU time from a gpu_throughput.py measurement."""
import importlib.util
import math

import pytest

from childtuning.errors import InputError
from helpers.paths import REPO

spec = importlib.util.spec_from_file_location("gpu_estimate", REPO / "benchmarks" / "gpu_estimate.py")
gpu_estimate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_estimate)


def measurement(**per_task):
    """A hand-made measurement: every task 160 training examples (10 steps of 16) unless given."""
    rates = {"train_size": 160, "dev_eval_s": 1.0, "fisher_s_per_batch": 0.5, "step_s_rows": 0.25, "step_s_padded": 0.1}
    return {"precision": "bf16", "multiple_of": 8, "per_task": {t: {**rates, **per_task.get(t, {})}
                                                                  for t in ("cola", "rte", "mrpc", "stsb")},
            "concurrency": [{"task": "cola", "jobs": 4, "speedup": 2.5}, {"task": "rte", "jobs": 4, "speedup": 2.0}]}


@pytest.mark.slow
def test_table1_estimate_is_the_benchmarks_own():
    """The estimator's arithmetic reproduces the Table 1 estimate gpu_throughput.py printed in the
    committed H200 run (480 runs, XLNet at the padded rate, a Fisher epoch per Child-Tuning_D run)."""
    run3 = gpu_estimate.read_measurement(gpu_estimate.MEASURED)
    got = gpu_estimate.estimate("table1", run3)
    assert got["runs"] == 480 and got["jobs"] == run3["best_jobs"]
    assert got["hours_one_process"] == run3["table1_estimate_h_one_process"]
    assert got["hours"] == run3["table1_estimate_h_with_jobs"]


def test_gpu_study_estimate_by_hand():
    """table1_minilm_gpu (padded, bf16, rounded to 8: the measurement's settings, so no note), one
    seed: per task 3 epochs x (10 steps x 0.1 s + 1 s dev) = 6 s per method, + 10 Fisher batches x
    0.5 s for Child-Tuning_D, + 2 s overhead per run; 4 processes: the smaller speed-up, 2.0."""
    got = gpu_estimate.estimate("table1_minilm_gpu", measurement(), jobs=4, overhead_s=2.0, overrides=["seed=1"])
    per_task = 3 * 6.0 + 5.0 + 3 * 2.0
    assert got["runs"] == 12 and got["notes"] == []
    assert got["hours_one_process"] == round(4 * per_task / 3600, 2)
    assert math.isclose(got["hours"], round(4 * per_task / 2.0 / 3600, 2))
    subset = gpu_estimate.estimate("table1_minilm_gpu", measurement(), jobs=1,
                                   overrides=["seed=1", "task.max_train_samples=32", "method=vanilla"])
    assert subset["runs"] == 4 and subset["speedup"] == 1.0          # 2 steps a epoch
    assert subset["hours_one_process"] == round(4 * 3 * (2 * 0.1 + 1.0) / 3600, 2)


@pytest.mark.slow
def test_what_the_measurement_cannot_answer_is_refused():
    m = measurement()
    del m["per_task"]["mrpc"]
    with pytest.raises(InputError, match="the measurement has no task mrpc"):
        gpu_estimate.estimate("table1_minilm_gpu", m, jobs=4, overrides=["seed=1"])
    with pytest.raises(InputError, match="at batch 16"):
        gpu_estimate.estimate("table1_minilm_gpu", measurement(), jobs=4, overrides=["seed=1", "trainer.batch_size=32"])
    with pytest.raises(InputError, match="no concurrency test with 8 processes"):
        gpu_estimate.estimate("table1_minilm_gpu", measurement(), jobs=8, overrides=["seed=1"])
    fp32 = gpu_estimate.estimate("table1_minilm_gpu", measurement(), jobs=1, overrides=["seed=1", "impl.precision=fp32"])
    assert any("measured at bf16" in n for n in fp32["notes"])
