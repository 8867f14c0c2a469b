"""Reports of experiments: run records in, tables (md, csv, tex) and plots out, one module per job.

spec (the `table:` block and its grid, composed and expanded by childtuning/sweep.py), frames
(records, with their target records, into a DataFrame), stats (cells and gaps), inference (one comparison: interval, test,
Holm), family (the Holm family, pooled with joined experiments, and the records against the
declaration), coverage (the intervals' coverage by simulation), summary, markdown, latex, plots,
registry (table kinds by name), glue (the default kind), cli (`python -m childtuning.aggregate`).

A cell is one model x task x method (x any further row axis the table declares, such as
`trainer.lr`, read from each record's resolved config); its runs are the seeds.
Which runs enter a cell's statistics:
  * every run whose score (the task's main metric at the last epoch) is a finite number enters
    the mean, the sample std (ddof=1) and the max. That is status "ok" and also "degenerate":
    a degenerate run (say, constant predictions, MCC 0) is a real outcome of that seed, and
    leaving it out would flatter the method;
  * runs without a finite score (status "diverged" or "failed", value null or NaN) cannot be
    averaged and are left out of the statistics, but never out of the counts;
  * every cell reports n (all records), n_scored (the runs in the mean), n_ok (status "ok"),
    n_failed (every other status), failed_by_status (e.g. "degenerate:2; diverged:1") and how
    many runs the records flag `near_constant` (unknown for records made before the flag).
No run is dropped or invented: records outside the experiment's grid (its sweep) are aggregated
too (and listed), and runs of the grid without a record are listed as missing.

Comparisons with the baseline (table.baseline), per model x task and on the task average, follow
the experiment's declaration (`table.comparisons`, childtuning/comparisons.py; docs/statistics.md):
  * seed-paired by default (a seed fixes the data subset, order and the new head's initialisation
    under every method): Δ is the mean over the seeds scored on both sides of the paired
    difference; its interval Student's t (n - 1 df) or, declared, a paired BCa bootstrap (10,000
    resamples, numpy seed 0); its test the paired t-test or, declared, a sign-flip permutation
    test (exact for up to 10 pairs); unpaired: the difference of means, Welch-Satterthwaite
    interval and Welch's test. p and the interval are unknown with fewer than 2 pairs;
  * one p column and its Holm adjustment over one family: every comparison the table reports
    (per cell, Avg rows, combinations), pooled with the experiments it joins or that join it;
  * with a declared margin, whether each interval lies inside it ("equivalent");
  * "seeds better": on how many of the seeds scored on both sides the row scored higher.
Each record names the declaration it ran under (`comparisons_digest`); records made under another
or none are refused unless the file states an amendment, which the table repeats.
The average over tasks in the main table (per model x method) is the mean of the per-task means,
and unknown unless every task has a mean.
Cost: a run's time is its record's finished_at - started_at (tokenizing, model load, any Fisher
pass, training and evaluation); the tables give the mean per cell and the sum over all records,
with the devices and thread counts the records name. Where records carry a fixed child network's
statistics (Child-Tuning_D's method_stats.kept_fraction_per_layer), table.md shows the mean kept
fraction per layer and cell. Outputs are sorted and carry no timestamps, so the same records
give byte-identical files.
"""
import importlib
import pkgutil

from .cli import aggregate, main, summarize, write_outputs
from .frames import load_records
from .registry import KINDS, TableKind, register
from .spec import TableSpec, available_experiments, infer_spec, load_spec
from .inference import compare, holm
from .summary import Summary

__all__ = ["KINDS", "Summary", "TableKind", "TableSpec", "aggregate", "available_experiments", "compare", "holm",
           "infer_spec", "load_records", "load_spec", "main", "register", "summarize", "write_outputs"]

for _module in pkgutil.iter_modules(__path__):     # every table kind registers itself (@register), as methods do
    importlib.import_module(f"{__name__}.{_module.name}")
