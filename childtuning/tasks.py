"""A task's config read and checked on its own: the run's task, or another task scored as an
evaluation target (conf/task/<name>.yaml)."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from . import REPO_ROOT, hints
from .errors import check
from .metrics import METRICS
from .schemas import TaskConfig, merge_error


def check_task(t: DictConfig) -> None:
    """The checks of one task's config (a run's task, or a task evaluated as a target)."""
    at = f"task {t.name} (conf/task/{t.name}.yaml)"     # where the fix goes
    unknown = [x for x in t.metrics if x not in METRICS]
    check(not unknown, f"{at}: unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    check(t.main_metric in t.metrics, f"{at}: main_metric {t.main_metric!r} is not in metrics {list(t.metrics)}")
    check(t.regression == (t.labels is None), f"{at}: a regression task has labels: null, a classification task a list of labels")
    check(bool(t.text_fields), f"{at}: text_fields is empty")
    if t.local.files:
        for f_ in list(t.text_fields) + [t.label_field]:
            check(f_ in t.local.columns, f"{at}: field {f_!r} is not in local.columns {list(t.local.columns)}")
        odd = sorted(set(t.local.rename.values()) - set(t.local.columns))
        check(not odd, f"{at}: local.rename maps to {odd}, which local.columns {list(t.local.columns)} lacks")
    labels = set(t.labels or [])
    for where, codes in (("local.label_codes", t.local.label_codes), ("hub.label_codes", t.hub.label_codes)):
        bad = sorted({v for v in (codes or {}).values()} - labels)
        check(not bad, f"{at}: {where} maps to {bad}, which are not among its labels {sorted(labels)}")
    for name, pairs in t.label_maps.items():
        bad = sorted(set(pairs.values()) - labels)
        check(not bad, f"{at}: label_maps.{name} maps to {bad}, which are not among its labels "
                       f"{list(t.labels or [])} (a map reads another task's predictions as this task's labels)")
    if t.breakdown is not None:
        edges = list(t.breakdown.edges)
        check(len(edges) >= 2 and all(a < b for a, b in zip(edges, edges[1:])),
              f"{at}: breakdown.edges={edges} must be at least two numbers, strictly ascending (the bins' bounds)")
        check(not t.local.files or t.breakdown.column in t.local.columns,
              f"{at}: breakdown.column={t.breakdown.column!r} is not in local.columns {list(t.local.columns)}")
        check(not t.regression, f"{at}: a breakdown counts predictions per gold label; it needs a classification task")
    declared = set(t.local.files) | set(t.hub.splits)
    if t.resplit is not None:
        check(t.resplit.source in declared, f"{at}: resplit.source={t.resplit.source!r} is not a declared split "
                                            f"{sorted(declared)} (local.files or hub.splits)")
        check(t.resplit.train_size > 0, f"{at}: resplit.train_size={t.resplit.train_size}; use a positive number")
        check(not t.regression, f"{at}: resplit draws a label-stratified train set; it needs a classification task")
        check(t.resplit.group is None or t.resplit.group in t.text_fields,
              f"{at}: resplit.group={t.resplit.group!r} must be one of its text_fields {list(t.text_fields)} "
              "(the text that related examples share, e.g. premise)")
        declared |= {"train", "dev"}
    for split in ("train", "dev"):
        check(split in declared, f"{at}: no {split} split; declare its file in local.files or its hub "
                                 f"name in hub.splits (declared: {sorted(declared)})")
    check(t.max_train_samples is None or t.max_train_samples > 0,
          f"task.max_train_samples={t.max_train_samples}: use a positive number, or null for the whole training set")
    check(not (t.stratified_subsample and t.regression),
          f"{at}: stratified_subsample needs class labels; a regression task takes a random subset "
          "(task.stratified_subsample=false)")


def load_task_config(name: str, config_dir=None) -> DictConfig:
    """Task `name` as conf/task/<name>.yaml declares it, merged onto its schema and checked: how a
    task that is not the run's own (an evaluation target) is read."""
    folder = Path(config_dir or REPO_ROOT / "conf") / "task"
    path = folder / f"{name}.yaml"
    known = sorted(p.stem for p in folder.glob("*.yaml"))
    check(path.is_file(), f"unknown task {name!r}: no file {path}; known tasks: {known}")
    try:
        task = OmegaConf.merge(OmegaConf.structured(TaskConfig), OmegaConf.load(path))
    except OmegaConfBaseException as e:
        known = hints.flat_keys(OmegaConf.to_container(OmegaConf.structured(TaskConfig)), "task.")
        raise merge_error(e, "task.", known, {"task": str(path)}) from None
    missing = sorted(OmegaConf.missing_keys(task))
    check(not missing, f"{path}: value(s) missing: {', '.join(missing)}")
    check_task(task)
    return task
