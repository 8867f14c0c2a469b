"""Reports of experiments: run records in, tables (md, csv, tex) and plots out, one module per job.

spec (the `table:` block and its grid), grid (compose the experiment, expand its sweep), records
(records into a DataFrame), stats (cells, tests, gaps), summary, markdown, latex, plots, registry
(table kinds by name), glue (the default kind), cli (`python -m childtuning.aggregate`).

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
    n_failed (every other status) and failed_by_status (e.g. "degenerate:2; diverged:1").
No run is dropped or invented: records outside the experiment's grid (its sweep) are aggregated
too (and listed), and runs of the grid without a record are listed as missing.

Comparisons with the baseline method (table.baseline), per model x task: the difference of
means (known when each side has a score), Welch's t-test p-value over seeds and a percentile
bootstrap 95% CI of the difference (10,000 resamples, numpy seed 0); the p-value and the CI are
unknown when either side has < 2 scores. Because a seed fixes the data order and the new head's
initialisation under every method, runs are also compared seed by seed: a paired t-test over the
seeds scored on both sides and the count of seeds where the method beats the baseline (both
left out when a cell holds two records for one seed).
The average over tasks (per model x method) is the mean of the per-task means, and unknown
unless every task has a mean.
Cost: a run's time is its record's finished_at - started_at (tokenizing, model load, any Fisher
pass, training and evaluation); the tables give the mean per cell and the sum over all records,
with the devices and thread counts the records name. Where records carry a fixed child network's
statistics (Child-Tuning_D's method_stats.kept_fraction_per_layer), table.md shows the mean kept
fraction per layer and cell. Outputs are sorted and carry no timestamps, so the same records
give byte-identical files.
"""
from . import curve, domain_transfer, glue, overlap, task_transfer  # noqa: F401  (register the table kinds)
from .cli import aggregate, main, summarize, write_outputs
from .records import load_records
from .registry import KINDS, TableKind, register
from .spec import TableSpec, available_experiments, infer_spec, load_spec
from .stats import bootstrap_ci, paired, welch_p
from .summary import Summary

__all__ = ["KINDS", "Summary", "TableKind", "TableSpec", "aggregate", "available_experiments", "bootstrap_ci",
           "infer_spec", "load_records", "load_spec", "main", "paired", "register", "summarize", "welch_p",
           "write_outputs"]
