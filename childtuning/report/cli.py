"""Turn an experiment's run records into tables (md, csv, tex), baseline comparisons and per-seed plots.

    python -m childtuning.aggregate <experiment> [--results DIR] [--experiment-file FILE]
    python -m childtuning.aggregate [--results DIR]      # lists the experiments it can aggregate

Reads `<DIR>/<experiment>/runs/*.json` (DIR: --results, else $CHILDTUNING_RESULTS, else "results")
and the table layout in `experiments/<experiment>.yaml` (its `table:` block; the expected grid is
its sweep), and writes `<DIR>/<experiment>/table.md`, `table.csv`, `table.tex` and `plots/<task>.png`.
An experiment without a file (run as `experiment=<name>`) gets a layout inferred from its records.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from ..errors import InputError
from ..record import RUNS, default_results, runs_dir
from . import family, registry
from .frames import load_records
from .spec import available_experiments, find_experiment_file, infer_spec, load_spec, pooled_with, unknown_experiment


def summarize(experiment: str, results: str | Path, experiment_file: str | Path | None = None, pool: bool = True):
    """Read the spec and records and compute every table (writes nothing). The summary's kind
    (table.kind) decides its type; every kind's summary has records, skipped, missing, n_expected
    and outside. Its comparisons are checked against the records' declaration and, with `pool`,
    Holm-adjusted over the family (with the experiments it joins or that join it)."""
    path = find_experiment_file(experiment, experiment_file)
    spec = load_spec(experiment, path) if path is not None else None
    records, skipped = load_records(experiment, results, *((spec.metric, spec.read) if spec else ()))
    for msg in skipped:
        print(f"warning: corrupt record, not counted: {msg}", file=sys.stderr)
    where = runs_dir(results, experiment)
    extra = f" ({len(skipped)} corrupt file(s) not counted)" if skipped else ""
    if spec is None:
        if records.empty:
            raise unknown_experiment(experiment, f" and no run record in {where}{extra}")
        spec = infer_spec(experiment, records)
    if records.empty:
        raise InputError(f"no run records for experiment {experiment!r} in {where}{extra}. Produce them with: "
                         f"python -m childtuning.train -m exp={experiment} paths.results={results}")
    spec.results = str(results)      # e.g. task_transfer also reads <results>/<experiment>/probes
    kind = registry.get(spec.kind)
    s = kind.summarize(spec, records, skipped)
    frames = kind.comparisons(s)
    if frames:
        s.provenance = family.check_records(spec, records) if spec.declared else None
        if pool:
            others = {name: pooled_frames(name, results) for name in pooled_with(experiment, spec.comparisons.joins)}
            s.family = family.adjust(experiment, frames, others)
    return s


def pooled_frames(experiment: str, results: str | Path) -> list[pd.DataFrame]:
    """The unadjusted comparisons of an experiment pooled into another's family; none while it has
    no records."""
    folder = runs_dir(results, experiment)
    if not folder.is_dir() or not any(folder.glob("*.json")):
        return []
    s = summarize(experiment, results, pool=False)
    return registry.get(s.spec.kind).comparisons(s)


def write_outputs(s, out: Path) -> dict[str, str]:
    """Write the summary's tables and plots into `out`; returns the tables' texts by file name."""
    out.mkdir(parents=True, exist_ok=True)
    kind = registry.get(s.spec.kind)
    files = kind.render(s)
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
    kind.plot(s, out / "plots")
    return files


def aggregate(experiment: str, results: str | Path, experiment_file: str | Path | None = None) -> pd.DataFrame:
    """Aggregate `<results>/<experiment>/runs`, write the tables and plots beside it, and return
    the per-cell frame that table.csv holds. Raises InputError for an unknown experiment or no records."""
    s = summarize(experiment, results, experiment_file)
    write_outputs(s, Path(results) / experiment)
    return s.cells


def listing(results: str | Path) -> str:
    """What can be aggregated: the experiments with run records under `results` (with their counts),
    then those declared in experiments/ that have none there yet."""
    counts = {d.parent.name: n for d in sorted(Path(results).glob(f"*/{RUNS}"))
              for n in [len(list(d.glob("*.json")))] if n}
    lines = [f"experiments with run records under {results} (python -m childtuning.aggregate <name> --results {results}):"]
    lines += [f"  {name} ({n} record(s))" for name, n in counts.items()] or ["  (none)"]
    waiting = [e for e in available_experiments() if e not in counts]
    if waiting:
        lines.append("declared in experiments/ with no records there yet (python -m childtuning.train -m exp=<name> "
                     "makes them): " + ", ".join(waiting))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m childtuning.aggregate", description=__doc__.split("\n")[0])
    parser.add_argument("experiment", nargs="?", help="experiment name (experiments/<name>.yaml, or the name its "
                                                      "runs used); without it, the experiments that can be aggregated")
    parser.add_argument("--results", default=default_results(),
                        help="results folder (default: $CHILDTUNING_RESULTS or 'results')")
    parser.add_argument("--experiment-file", default=None, help="read the table layout from this file instead")
    args = parser.parse_args(argv)
    if args.experiment is None:
        print(listing(args.results))
        return 0
    out = Path(args.results) / args.experiment
    try:
        s = summarize(args.experiment, args.results, args.experiment_file)
        files = write_outputs(s, out)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.experiment}: {len(s.records)} record(s), {len(s.skipped)} corrupt, "
          f"{len(s.missing)} of {s.n_expected} expected run(s) missing, {len(s.outside)} outside the grid; "
          f"wrote {out}/{', '.join(files)}, plots/\n")
    print(files["table.md"], end="")
    return 0
