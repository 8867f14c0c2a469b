"""Projected GPU time of an experiment's sweep, from a measurement made by benchmarks/gpu_throughput.py.

Every run of the sweep is composed as the runner composes it, and costs, in one process:

    epochs x (steps per epoch x step time + one dev evaluation)
    + one Fisher pass over the training set (Child-Tuning_D and its combinations)
    + --run-overhead-s (model load, tokenisation, record; 0 by default, as the benchmark's own estimate)

with the step, Fisher and dev-evaluation times of the run's task as measured. The measurement's
model shape stands for every model of the sweep (the BERT-large-shaped H200 runs under
benchmarks/results/ stand for the four large models); a run on padded batches (impl.packing=false,
or a model that cannot pack, XLNet) takes the padded step time, any other the fastest packed layout
measured. Runs that share the GPU: the one-process total divided by the smallest speed-up the
measurement's concurrency test found for --jobs processes. A method's extra work (R3F's second
forward pass, Mixout's swap) and evaluation targets are not counted: such runs are listed in `notes`.

    python benchmarks/gpu_estimate.py low_resource ablation_prune     # the committed H200 measurement
    python benchmarks/gpu_estimate.py table1_minilm_gpu --throughput OUT/probe.log --run-overhead-s 3

The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))   # the checkout, without installing it
from childtuning.errors import InputError  # noqa: E402

MEASURED = Path(__file__).resolve().parent / "results" / "gpu_throughput_h200_run3.log"
BATCH, MAX_LENGTH = 16, 128          # what gpu_throughput.py measures with


def read_measurement(path: str | Path) -> dict:
    """The JSON object gpu_throughput.py printed last in `path` (its log or the bare line)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no measurement file {path}: run benchmarks/gpu_throughput.py and keep its output")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("{")]
    if not lines:
        raise InputError(f"{path} holds no JSON line: is it the output of benchmarks/gpu_throughput.py?")
    return json.loads(lines[-1])


def speedup(measurement: dict, jobs: int | None) -> tuple[int, float]:
    """(processes, the smallest speed-up over the tasks tried with that many): `jobs`, or the
    measurement's best; (1, 1.0) when it has no concurrency test."""
    by_jobs: dict[int, float] = {}
    for c in measurement.get("concurrency") or []:
        by_jobs[c["jobs"]] = min(by_jobs.get(c["jobs"], math.inf), c["speedup"])
    if jobs is None:
        jobs = max(by_jobs, key=by_jobs.get, default=1)
    if jobs == 1:
        return 1, 1.0
    if jobs not in by_jobs:
        raise InputError(f"the measurement has no concurrency test with {jobs} processes (it has "
                         f"{sorted(by_jobs) or 'none'}): pass one of those to --jobs, or 1")
    return jobs, by_jobs[jobs]


def step_seconds(rates: dict, padded: bool) -> float:
    """The padded step time, or the fastest packed layout's (`step_s_<layout>`; older logs: `packed`)."""
    if padded:
        return rates["step_s_padded"]
    return min(v for k, v in rates.items() if k.startswith("step_s_") and k != "step_s_padded")


def run_seconds(cfg: dict, measurement: dict, overhead_s: float) -> tuple[float, list[str]]:
    """(seconds of one run in one process, notes on what the estimate leaves out).
    `cfg`: a validated run config, resolved to a dict."""
    from childtuning.record import uses_packing

    task, tr = cfg["task"], cfg["trainer"]
    rates = measurement["per_task"].get(task["name"])
    if rates is None:
        raise InputError(f"the measurement has no task {task['name']} (it has {sorted(measurement['per_task'])}): "
                         "measure it with benchmarks/gpu_throughput.py first")
    if tr["batch_size"] != BATCH or tr["max_length"] != MAX_LENGTH:
        raise InputError(f"a run with batch {tr['batch_size']} / max length {tr['max_length']}: the measurement is "
                         f"at batch {BATCH}, max length {MAX_LENGTH}; measure that setting first")
    n = rates["train_size"] if task["max_train_samples"] is None else min(task["max_train_samples"], rates["train_size"])
    steps = math.ceil(n / BATCH)
    seconds = tr["epochs"] * (steps * step_seconds(rates, not uses_packing(cfg)) + rates["dev_eval_s"])
    parts = cfg["method"]["name"].split("+")
    if "child_tuning_d" in parts:
        seconds += steps * rates["fisher_s_per_batch"]
    extra = [p for p in parts if p not in ("vanilla", "child_tuning_f", "child_tuning_d")]
    notes = [f"{cfg['method']['name']}: the extra work of {', '.join(extra)} is not counted"] if extra else []
    if cfg.get("targets"):
        notes.append(f"{task['name']}: its evaluation targets are not counted")
    impl = cfg["impl"]
    if (impl["precision"], impl["pad_to_multiple_of"]) != (measurement["precision"], measurement["multiple_of"]):
        notes.append(f"runs at impl.precision={impl['precision']} impl.pad_to_multiple_of={impl['pad_to_multiple_of']}, "
                     f"measured at {measurement['precision']} / {measurement['multiple_of']}: pass those on the "
                     "command line to run at the measured rate")
    return seconds + overhead_s, notes


def sweep_configs(experiment: str, overrides: list[str]) -> list[dict]:
    """Each run of the experiment's sweep (plus `overrides`, as on the command line), validated and
    resolved, composed as pre-flight composes them (once per choice of config groups)."""
    from omegaconf import OmegaConf, open_dict

    from childtuning.config import validate
    from childtuning.preflight import CellComposer
    from childtuning.sweep import EXPERIMENTS_DIR, composer
    from childtuning.sweep import jobs

    with composer(EXPERIMENTS_DIR / f"{experiment}.yaml") as compose_with:
        master = compose_with()             # the sweep's own parameters; `overrides` apply per job
        params = OmegaConf.to_container(OmegaConf.select(master, "hydra.sweeper.params") or {}, resolve=True)
        groups = set(OmegaConf.select(master, "hydra.runtime.choices") or {})
        def run_config(overrides):       # a job's config as the runner sees it: without Hydra's own node
            cfg = compose_with(list(overrides))
            with open_dict(cfg):
                del cfg["hydra"]
            return cfg

        cells = CellComposer(run_config, groups)
        resolved: dict[int, dict] = {}
        out = []
        for job in jobs(params, overrides):
            cfg, _ = cells(job)            # a run's cost does not depend on its seed
            if id(cfg) not in resolved:
                resolved[id(cfg)] = OmegaConf.to_container(validate(cfg), resolve=True)
            out.append(resolved[id(cfg)])
    return out


def estimate(experiment: str, measurement: dict, jobs: int | None = None, overhead_s: float = 0.0,
             overrides: list[str] = ()) -> dict:
    configs = sweep_configs(experiment, list(overrides))
    per_task: dict[str, float] = {}
    notes: set[str] = set()
    for cfg in configs:
        seconds, said = run_seconds(cfg, measurement, overhead_s)
        per_task[cfg["task"]["name"]] = per_task.get(cfg["task"]["name"], 0.0) + seconds
        notes.update(said)
    n_jobs, factor = speedup(measurement, jobs)
    total = sum(per_task.values())
    return {"experiment": experiment, "runs": len(configs), "hours_one_process": round(total / 3600, 2),
            "jobs": n_jobs, "speedup": factor, "hours": round(total / factor / 3600, 2),
            "seconds": round(total / factor, 1),
            "hours_by_task_one_process": {t: round(s / 3600, 2) for t, s in per_task.items()},
            "run_overhead_s": overhead_s, "notes": sorted(notes)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiments", nargs="+", help="experiment names (experiments/<name>.yaml)")
    ap.add_argument("--throughput", default=str(MEASURED), help="gpu_throughput.py's output (default: %(default)s)")
    ap.add_argument("--jobs", type=int, default=None, help="processes sharing the GPU (default: the measurement's best)")
    ap.add_argument("--run-overhead-s", type=float, default=0.0, help="seconds added to every run (default 0)")
    ap.add_argument("--override", action="append", default=[], help="a command-line override of the sweep (repeatable)")
    args = ap.parse_args()
    try:
        measurement = read_measurement(args.throughput)
        results = [estimate(e, measurement, args.jobs, args.run_overhead_s, args.override) for e in args.experiments]
    except InputError as e:
        sys.exit(f"error: {e}")
    basis = {k: measurement.get(k) for k in ("device", "torch", "params", "precision", "multiple_of", "steps_timed")}
    shown = Path(args.throughput).resolve()
    shown = shown.relative_to(REPO) if shown.is_relative_to(REPO) else shown
    print(f"basis: {shown} ({basis['device']}, {basis['params']} weights, {basis['precision']}, "
          f"lengths rounded to {basis['multiple_of']})")
    print("| experiment | runs | hours, one process | processes | speed-up | hours |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['experiment']} | {r['runs']} | {r['hours_one_process']} | {r['jobs']} | {r['speedup']} | {r['hours']} |")
        for note in r["notes"]:
            print(f"  note: {note}")
    print(json.dumps({"basis": {"file": str(shown), **basis}, "estimates": results}))


if __name__ == "__main__":
    main()
