"""An experiment's table spec: its `table:` block, checked, with the grid its sweep runs; or, for an
experiment without a file, a layout inferred from its records."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml
from omegaconf import OmegaConf

from .. import comparisons
from ..tuning import check_protocol, check_stand_in, read_protocol
from ..errors import InputError
from ..metrics import METRICS
from . import registry
from .. import sweep
from ..sweep import (available_experiments, axis_value, composer, find_experiment_file,  # noqa: F401
                     sweep_grid, unknown_experiment)

DEFAULT_KIND = "glue"


@dataclass
class TableSpec:
    """An experiment's `table:` block, with defaults filled in, and its expected grid."""
    experiment: str
    kind: str = DEFAULT_KIND
    rows: list[str] = field(default_factory=lambda: ["model", "method"])   # table row axes, in order
    columns: str = "task"
    metric: str = "main"          # "main" = each task's main metric, else a metric name
    statistic: str = "mean"
    baseline: str | None = None
    baseline_axis: str = "method"  # the row axis whose `baseline` value every other value is compared with
    expected: dict[str, list] = field(default_factory=dict)    # axis -> values, in sweep order
    paper_values: dict = field(default_factory=dict)
    paper_source: str | None = None
    notes: list[str] = field(default_factory=list)    # said under the title (e.g. that the layout is inferred)
    options: dict = field(default_factory=dict)   # the table block's kind-specific keys (e.g. a curve's `x`)
    protocol: dict | None = None  # the experiment's tuning protocol block (childtuning/protocol.py), if any
    caption: str | None = None    # table.caption: what differs from the paper's setting, said with the table
    file: str | None = None        # the experiment file read (None: a layout inferred from the records)
    results: str | None = None     # the results folder, set by the aggregator (a kind may read more than runs/)
    comparisons: comparisons.Declaration = field(default_factory=comparisons.Declaration)   # table.comparisons
    declared: bool = False         # the comparisons come from an experiment file (not a layout inferred from records)

    @property
    def extra(self) -> list[str]:
        """Row axes besides model and method: dotted config paths such as `trainer.lr`."""
        return [a for a in self.rows if a not in ("model", "method")]

    @property
    def read(self) -> list[str]:
        """Config paths each record's value is read for: the extra row axes, then the values a
        tuning protocol chose (shown beside the table)."""
        chosen = list((self.protocol or {}).get("select") or [])
        return self.extra + [k for k in chosen if k not in self.extra]

    @property
    def key(self) -> list[str]:
        """The axes that name a cell, in csv column order."""
        return ["model", "task", "method", *self.extra]


TABLE_KEYS = ("kind", "rows", "columns", "metric", "statistic", "baseline", "paper", "expected", "caption", "comparisons")


STATISTICS = ("mean",)    # what a cell reports over seeds; every table kind reads it


def check_metric_and_statistic(spec: TableSpec, where: str) -> None:
    """Shared by every table kind: a misspelt metric would otherwise leave every cell unscored."""
    if spec.statistic not in STATISTICS:
        raise InputError(f"{where}: table.statistic={spec.statistic!r} is not supported; use one of {list(STATISTICS)}")
    if spec.metric != "main" and spec.metric not in METRICS:
        raise InputError(f"{where}: table.metric={spec.metric!r} is not a metric; use `main` (each task's main "
                         f"metric) or one of {sorted(METRICS)}")


def own_comparisons(path: Path) -> dict:
    """The `table.comparisons` block written in file `path` itself (not composed: no defaults list)."""
    text = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    block = (text.get("table") or {}).get("comparisons") if isinstance(text, dict) else None
    return block if isinstance(block, dict) else {}


def joiners(parent: str) -> list[str]:
    """The experiments whose files declare `joins: <parent>` (experiments/*.yaml), sorted."""
    return sorted(p.stem for p in sweep.EXPERIMENTS_DIR.glob("*.yaml") if own_comparisons(p).get("joins") == parent)


def pooled_with(experiment: str, joins: str | None) -> list[str]:
    """The other experiments whose comparisons are adjusted together with `experiment`'s: the
    experiment it joins and that one's other joiners, or, for an experiment that joins none, its
    own joiners."""
    parent = joins or experiment
    return [e for e in [parent, *joiners(parent)] if e != experiment]


def check_joins(spec: TableSpec, path: Path) -> None:
    """`joins` names an existing experiment that joins none itself, and is written in the file itself
    (its joiners are found by reading the files, not by composing them)."""
    joins, where = spec.comparisons.joins, f"{path}: table.comparisons.joins"
    if own_comparisons(path).get("joins") != joins:
        raise InputError(f"{where} is {joins!r} only through the defaults list; state `joins: {joins}` in this file "
                         "itself (the joined experiment finds its joiners by reading their files)")
    if joins is None:
        return
    parent = sweep.EXPERIMENTS_DIR / f"{joins}.yaml"
    if joins == spec.experiment or not parent.is_file():
        raise InputError(f"{where}: {joins!r} must be another experiment with a file in {sweep.EXPERIMENTS_DIR} "
                         f"(available: {', '.join(available_experiments())})")
    if own_comparisons(parent).get("joins"):
        raise InputError(f"{where}: {joins} itself joins {own_comparisons(parent)['joins']}: join that family instead")


def protocol_of(block, where: str) -> dict | None:
    """The experiment's `protocol:` block, checked (childtuning/protocol.py); None without one. A
    block that borrows another experiment's selection (`selection_from`) gets that one's protocol,
    with its own stand-ins (`stand_in`) if it declares any."""
    if block is None:
        return None
    proto = check_protocol(where, OmegaConf.to_container(block, resolve=True))
    if "selection_from" in proto:
        source = proto["selection_from"]
        borrowed = check_protocol(f"experiments/{source}.yaml", read_protocol(source))
        if "selection_from" in borrowed:
            raise InputError(f"{where}: protocol.selection_from names {source}, which borrows its own selection "
                             f"from {borrowed['selection_from']}: name that experiment instead")
        own = proto.get("stand_in")
        proto = {**{k: v for k, v in borrowed.items() if k != "stand_in"}, "selection_from": source}
        if own:
            check_stand_in(where, own, proto["per"])
            proto["stand_in"] = own
    return proto


def load_spec(experiment: str, path: str | Path | None = None) -> TableSpec:
    """The table of `experiment`, from file `path`, else experiments/<experiment>.yaml. The file is
    composed with conf/ as the runner composes it; the expected grid is its sweep."""
    path = find_experiment_file(experiment, path)
    if path is None:
        raise unknown_experiment(experiment)
    with composer(path) as compose_with:
        cfg = compose_with()
        name = OmegaConf.select(cfg, "experiment")
        if name != path.stem:
            raise InputError(f"{path} sets experiment: {name!r}, but an experiment's name is its file name "
                             f"({path.stem!r}; its runs go to <results>/<experiment>/runs): set "
                             f"`experiment: {path.stem}` in the file, or rename the file to {name}.yaml")
        if name != experiment:
            raise InputError(f"{path} is the file of experiment {name!r}, not of {experiment!r}")
        table = OmegaConf.select(cfg, "table")
        if not OmegaConf.is_dict(table):
            raise InputError(f"{path} has no `table:` block (kind, rows, columns, metric, baseline, paper)")
        table = OmegaConf.to_container(table, resolve=True)
        if "expected" in table:
            raise InputError(f"{path}: table.expected is no longer read: the expected grid is the sweep "
                             "(hydra.sweeper.params) and the experiment's settings; delete table.expected")
        paper = table.get("paper") or {}
        rows = [str(a) for a in table.get("rows") or ["model", "method"]]
        baseline, baseline_axis = table.get("baseline"), "method"
        if isinstance(baseline, dict):           # e.g. {trainer.optimizer: adamw_torch}: compare along that axis
            if len(baseline) != 1 or next(iter(baseline)) not in rows:
                raise InputError(f"{path}: table.baseline {baseline} must be one method name, or one row axis "
                                 f"and its value, e.g. {{trainer.lr: 1.0e-4}} (row axes: {', '.join(rows)})")
            (baseline_axis, baseline), = baseline.items()
            baseline = axis_value(baseline_axis, baseline)
        protocol = OmegaConf.select(cfg, "protocol")
        spec = TableSpec(experiment=name, kind=str(table.get("kind", DEFAULT_KIND)), rows=rows,
                         columns=table.get("columns", "task"), metric=str(table.get("metric", "main")),
                         statistic=table.get("statistic", "mean"), baseline=baseline, baseline_axis=baseline_axis,
                         paper_values=paper.get("values") or {}, paper_source=paper.get("source"),
                         options={k: v for k, v in table.items() if k not in TABLE_KEYS},
                         caption=table.get("caption"), file=str(path),
                         comparisons=comparisons.read(table.get("comparisons"), f"{path}: table.comparisons"),
                         declared=True)
        check_joins(spec, path)
        check_metric_and_statistic(spec, str(path))
        registry.get(spec.kind, str(path)).check(spec, str(path))
        spec.expected = sweep_grid(compose_with, cfg, spec.key + ["seed"], str(path))
    spec.protocol = protocol_of(protocol, str(path))      # outside: it may compose another experiment
    return spec


def infer_spec(experiment: str, records: pd.DataFrame) -> TableSpec:
    """The layout of an experiment that has records but no file (`experiment=<name>` on the command
    line): rows model x method, columns task, the main metric, vanilla as baseline if it ran, and
    as expected grid every combination of the models, tasks, methods and seeds found."""
    methods = sorted(set(records["method"]))
    baseline = "vanilla" if "vanilla" in methods else None
    expected = {a: sorted(set(records[a])) for a in ("model", "task", "seed")}
    expected["method"] = [m for m in methods if m == baseline] + [m for m in methods if m != baseline]
    note = (f"Layout inferred from the records: no experiments/{experiment}.yaml. Rows model × method, "
            f"columns task, baseline {baseline or 'none (no vanilla run)'}; the expected grid is every "
            "combination of the models, tasks, methods and seeds found, so a missing run is a combination "
            "no record has. Runs that differ in another setting share a cell (see the notes).")
    return TableSpec(experiment=experiment, baseline=baseline, expected=expected, notes=[note])
