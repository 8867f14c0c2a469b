"""Score evaluation targets from the kept models of finished runs, without training.

    python -m childtuning.evaluate exp=domain_transfer_cpu 'targets=[sick:dev]'
    python -m childtuning.evaluate exp=domain_transfer_cpu          # only the declared targets still missing

The arguments are the runner's overrides: the experiment's sweep gives the runs (a command-line
value narrows or widens it as for `python -m childtuning.train -m`), and each run's targets are the
experiment's (`targets`, `targets_by_task`) plus any given here. For every run, each target without
a target record is scored from the run's kept model (artifacts/<run_id>/model, checked against the
sha256 sums its record names) and written as a target record (childtuning/targets.py). Nothing is
trained and no run record changes. Every run is checked first: one without a complete record, or
without a kept model, stops the command before anything is scored, naming the fix.
"""
from __future__ import annotations

import sys

from . import saved_models, sweep, targets
from .config import validate
from .errors import InputError
from .integrity import read_complete
from .record import run_id, runs_dir
from .train import score_from_kept_model


def plan(overrides: list[str]) -> list[tuple]:
    """(config, record, targets to score) per run of the sweep that has targets left to score."""
    jobs = sweep.experiment_jobs(overrides) if any(o.startswith("exp=") for o in overrides) else [list(overrides)]
    work, unrun, unkept = [], [], []
    for job in jobs:
        cfg = validate(sweep.compose(job))
        rid = run_id(cfg)
        record = read_complete(runs_dir(cfg.paths.results, cfg.experiment) / f"{rid}.json")
        if record is None:
            unrun.append(rid)
            continue
        todo = targets.missing(cfg.paths.results, cfg.experiment, rid, cfg.targets)
        if not todo or record["status"] not in ("ok", "degenerate"):    # a failed run has no model to score
            continue
        try:
            saved_models.resolve(cfg.paths.results, f"{cfg.experiment}/{rid}")
        except InputError as e:
            unkept.append(str(e))
            continue
        work.append((cfg, record, todo))
    if unrun:
        raise InputError(f"{len(unrun)} run(s) of the sweep have no complete record, e.g. {unrun[0]}: run the sweep "
                         "first (python -m childtuning.train -m with the same arguments); it scores the declared "
                         "targets at each run's end")
    if unkept:
        raise InputError(f"{len(unkept)} run(s) cannot be scored without training: {unkept[0]}")
    return work


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0 if argv else 2
    try:
        work = plan(argv)
        scored = sum(len(score_from_kept_model(cfg, record, todo)) for cfg, record, todo in work)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"done: {scored} target record(s) written from kept models ({len(work)} run(s)); no run was trained")
    return 0


if __name__ == "__main__":
    sys.exit(main())
