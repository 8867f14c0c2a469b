"""A sweep checks every cell before any trains: each job's config composed and validated as the
runner will, its results folder writable and, for a cell that will run (not complete, not copied
from another experiment's record), its model files in the local Hugging Face cache and its data
readable: a local file present, or a hub dataset in the local `datasets` cache or a hub that
answers (hub.py: one probe per dataset; offline mode honoured). The launcher's own needs too
(SLURM's commands). One bad cell refuses the whole sweep, listing every bad cell and why, exit 2;
otherwise it prints what the sweep will do (cells to run, complete, leased by a live owner,
corrupt). preflight.dry_run=true prints each cell's fate and estimated cost (plan.py) and stops.

Registered as a Hydra callback in conf/config.yaml (hydra.callbacks.preflight), so it runs once,
in the launching process, before the launcher starts any job (local, joblib or SLURM); a single
run (no -m) gets the same checks before Hydra makes its run folder under paths.results. Kept fast
for large grids (table1: 480 cells): a config is composed once per distinct set of config-group
choices (model, task, method...) and the plain value overrides (seed=3) are applied to a copy;
validation runs once per config that differs in more than its seed; the model and data checks once
per model and task; data files are checked for existence only (each run still reads and checks
them in full). The runner's own checks stay as they were.
"""
from __future__ import annotations

import copy
import json
import shutil
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from . import hints, hub, integrity, lease, plan, storage, sweep
from .config import validate
from .errors import InputError
from .models import minilm_path
from .readers import locate, missing_file_message, source_split, unreadable_message
from .record import RUNS, leases_dir, run_id, runs_dir
from .tasks import load_task_config

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")


# ---------------------------------------------------------------- models
def fetch_hint(repo: str) -> str:
    return (f"Fetch it ahead of time on a machine with internet (compute nodes often have none), into the cache "
            f"the runs read (HF_HOME / HF_HUB_CACHE on the shared file system): `hf download {repo}` "
            f"(older huggingface_hub: `huggingface-cli download {repo}`), or "
            f"python -c \"from huggingface_hub import snapshot_download; snapshot_download('{repo}')\". "
            "Or let each run download it: preflight.allow_model_download=true (needs network on every node)")


def model_problem(model_cfg, allow_download: bool = False) -> str | None:
    """Why the model of `model_cfg` cannot be loaded offline, or None. Hub models must be in the
    local Hugging Face cache (config and weights) unless downloads are allowed."""
    if model_cfg.source == "minilm_pip" or (model_cfg.source == "tiny" and model_cfg.get("tokenizer") == "minilm"):
        try:
            minilm_path()
        except InputError as e:
            return f"model {model_cfg.name}: {e}"
        return None
    if model_cfg.source != "hub" or allow_download:
        return None
    name = str(model_cfg.pretrained)
    local = Path(name).expanduser()
    if local.is_dir():                       # a local folder, not a hub id
        return None if (local / "config.json").is_file() else \
            f"model {model_cfg.name}: folder {local} has no config.json (save the model there with save_pretrained)"
    from huggingface_hub import constants, snapshot_download

    cache = constants.HF_HUB_CACHE
    try:
        folder = Path(snapshot_download(name, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure means: not usable offline
        return f"model {model_cfg.name}: {name} is not in the local Hugging Face cache {cache}. {fetch_hint(name)}"
    missing = [f for f in ("config.json",) if not (folder / f).is_file()]
    if not any((folder / w).is_file() for w in WEIGHTS):
        missing.append("weights (" + " or ".join(WEIGHTS[:2]) + ")")
    if missing:
        return (f"model {model_cfg.name}: the cached copy of {name} in {cache} lacks {', '.join(missing)} "
                f"(a partial download). {fetch_hint(name)}")
    return None


def check_model(cfg) -> None:
    """The runner's check (a validated run config): raise InputError before any data is read."""
    problem = model_problem(cfg.model, cfg.preflight.allow_model_download)
    if problem:
        raise InputError(problem)


# ---------------------------------------------------------------- data
def data_problems(cfg) -> list[str]:
    """Data a validated run config reads that cannot be read here: its task's train and dev (or
    the split they are cut from) and each target's split. A local file must exist (reading and
    checking it is the run's); a split with no local copy must come from the hub, so the hub
    dataset must be cached or fetchable (childtuning/hub.py: one probe per dataset)."""
    wanted = [(cfg.task, source_split(cfg.task, s)) for s in ("train", "dev")]
    wanted += [(task, source_split(task, e["split"])) for e in cfg.targets or [] for task in [load_task_config(e["task"])]]
    problems, from_hub = [], {}     # task name -> (task, its splits to read from the hub, where local copies were looked for)
    for task, split in wanted:
        try:
            path, looked_in = locate(task, split, cfg.paths.glue_dir)
        except InputError as e:
            problems.append(str(e))
            continue
        if path is None:
            entry = from_hub.setdefault(task.name, (task, [], looked_in))
            if split not in entry[1]:
                entry[1].append(split)
        elif not path.is_file():
            problems.append(missing_file_message(task, path, split))
    for task, splits, looked_in in from_hub.values():
        cause = hub.dataset_problem(task.hub.path, task.hub.name)
        if cause:
            problems.append(unreadable_message(task, splits, looked_in, cause))
    return problems


def check_data(cfg) -> None:
    """The runner's check (a validated run config): raise InputError before any data is read."""
    problems = data_problems(cfg)
    if problems:
        raise InputError("\n".join(problems))


# ---------------------------------------------------------------- the grid
def sweep_jobs(config: DictConfig) -> list[list[str]]:
    """Each job's overrides, as Hydra's basic sweeper splits the sweep of the composed `config`."""
    params = OmegaConf.select(config, "hydra.sweeper.params")
    params = OmegaConf.to_container(params, resolve=True) if params is not None else {}
    return sweep.jobs(params, OmegaConf.select(config, "hydra.overrides.task") or [])


class CellComposer:
    """Compose job configs fast. A config is composed once per distinct choice of config groups
    (and any override that is not a plain `key=value`); the plain value overrides are applied to a
    copy, as Hydra applies command-line values after composing the files, once per distinct set
    of them; the seed is returned apart (a sweep's seeds share one config: check_cells applies it)."""

    def __init__(self, compose_with, groups: set[str]):
        from hydra.core.override_parser.overrides_parser import OverridesParser

        self.compose_with, self.groups = compose_with, set(groups)
        self.parser = OverridesParser.create()
        self.bases: dict[tuple, DictConfig] = {}
        self.configs: dict[tuple, DictConfig] = {}

    def __call__(self, overrides: list[str]) -> tuple[DictConfig, object]:
        """(the job's config without its seed override, that seed or None)."""
        base, values, seed = [], [], None
        for text, o in zip(overrides, self.parser.parse_overrides(list(overrides))):
            plain = not (o.is_add() or o.is_force_add() or o.is_delete()) and o.package is None
            if plain and o.key_or_group == "seed":
                seed = o.value()
            elif plain and o.key_or_group not in self.groups and "/" not in o.key_or_group:
                values.append((o.key_or_group, o.value()))
            else:
                base.append(text)
        key = (tuple(base), tuple((k, json.dumps(v, sort_keys=True, default=str)) for k, v in values))
        if key not in self.configs:
            if key[0] not in self.bases:
                self.bases[key[0]] = self.compose_with(base)
            cfg = copy.deepcopy(self.bases[key[0]])
            for k, v in values:
                if OmegaConf.select(cfg, k, default=_ABSENT) is _ABSENT:   # let Hydra say what is wrong
                    cfg = self.compose_with([o for o in overrides if not o.startswith("seed=")])
                    break
                OmegaConf.update(cfg, k, v, merge=True)
            self.configs[key] = cfg
        return self.configs[key], seed


def with_seed(cfg: DictConfig, seed) -> DictConfig:
    out = copy.deepcopy(cfg)
    OmegaConf.update(out, "seed", seed, merge=True)
    return out


def seed_free(resolved: dict) -> dict:
    return {k: v for k, v in resolved.items() if k != "seed"}


_ABSENT = object()


@dataclass
class Report:
    """What pre-flight found: bad cells by reason, and what the good ones will do."""
    cells: int = 0
    bad: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))   # reason -> cell labels
    complete: int = 0
    corrupt: int = 0
    leased: int = 0
    reused: int = 0
    duplicates: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    run_ids: list[str | None] = field(default_factory=list)    # per job, in order (None: a bad cell)
    # Per job, in order: {"cell", "status", "detail", and for a good cell "run_id" and its model, task,
    # method, examples (task.max_train_samples) and epochs}. Status: refused, duplicate, complete,
    # reused, leased, corrupt (set aside and rerun) or run. The dry run prints them (childtuning/plan.py).
    entries: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def bad_cells(self) -> int:
        return len({c for cells in self.bad.values() for c in cells})

    def summary(self) -> str:
        to_run = self.cells - self.complete - self.leased - self.reused - self.bad_cells() - len(self.duplicates)
        reused = f", {self.reused} identical to another experiment's record (copied, not rerun)" if self.reused else ""
        return (f"pre-flight: {self.cells} cell(s) checked in {self.seconds:.1f} s: {to_run} to run, {self.complete} "
                f"complete (skipped), {self.leased} leased by a live owner (skipped), {self.corrupt} corrupt record(s) "
                f"(to be set aside and rerun){reused}")

    def refusal(self) -> str:
        lines = [f"the sweep is refused before any run starts: {self.bad_cells()} of {self.cells} cell(s) cannot run."]
        for reason, cells in self.bad.items():
            lines.append(f"* {reason}")
            lines += [f"    - {c}" for c in cells]
        lines.append("Fix these (or drop the cells from the sweep) and launch again; preflight.enabled=false "
                     "skips this check.")
        return "\n".join(lines)


def label(overrides: list[str], varying: set[str]) -> str:
    """A cell as the overrides that differ between cells (all of them if none differ)."""
    shown = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in varying]
    return " ".join(shown or overrides)


def recorded_elsewhere(results: str, rid: str, out: Path) -> str | None:
    """The experiment under `results` whose complete record of run `rid` a run would copy (train.reuse_record)."""
    for other in sorted(Path(results).glob(f"*/{RUNS}/{rid}.json")):
        if other != out / f"{rid}.json" and integrity.read(other)[0] is not None:
            return other.parent.parent.name
    return None


def check_cells(jobs: list[list[str]], composer) -> Report:
    """Compose, validate and check each job's config. `composer(overrides)` -> (config, seed
    override or None), e.g. a CellComposer. A cell that will not run (complete, or copied from
    another experiment's record) needs a writable folder but not its model or data."""
    started = time.perf_counter()
    report = Report(cells=len(jobs))
    values = defaultdict(set)
    for job in jobs:
        for o in job:
            k, _, v = o.partition("=")
            values[k].add(v)
    varying = {k for k, v in values.items() if len(v) > 1}
    validated: dict[int, tuple] = {}       # id(config) -> (validated, resolved, error, seed-dependent)
    checked: dict[tuple, list[str]] = {}   # (what, key) -> problems
    ids: dict[str, str] = {}

    def validated_of(cfg):
        try:
            good = validate(cfg)
            return good, OmegaConf.to_container(good, resolve=True), None
        except InputError as e:
            return None, None, str(e)

    def once(what: tuple, check) -> list[str]:
        if what not in checked:
            checked[what] = check()
        return checked[what]

    def refuse(cell: str, problems: list[str]) -> None:
        for p in problems:
            report.bad[p].append(cell)
        report.entries.append({"cell": cell, "status": "refused", "detail": "; ".join(problems)})

    def run_problems(good, resolved) -> list[str]:
        """What a cell that runs needs beyond a writable folder: its model and its data."""
        m, allow = good.model, good.preflight.allow_model_download
        return once(("model", m.source, str(m.pretrained), str(m.get("tokenizer")), allow),
                    lambda: [p for p in [model_problem(m, allow)] if p]) + \
            once(("data", json.dumps(resolved["task"], sort_keys=True), str(good.paths.glue_dir),
                  json.dumps(resolved["targets"], sort_keys=True)), lambda: data_problems(good))

    def folder_problems(out: Path) -> list[str]:
        try:
            storage.probe(out)
            return []
        except InputError as e:
            return [str(e)]

    for job in jobs:
        cell = label(job, varying)
        report.run_ids.append(None)
        try:
            cfg, seed = composer(job)
        except Exception as e:  # noqa: BLE001 - Hydra's composition errors name the override
            refuse(cell, [f"cannot compose: {e}".split("\n")[0]])
            continue
        if id(cfg) not in validated:
            good, resolved, error = validated_of(cfg)
            # Does any value follow the seed (e.g. an interpolation of ${seed})? Then each seed is composed in full.
            dependent = error is None and seed_free(OmegaConf.to_container(cfg, resolve=True)) != \
                seed_free(OmegaConf.to_container(with_seed(cfg, resolved["seed"] + 1), resolve=True))
            validated[id(cfg)] = (good, resolved, error, dependent)
        good, resolved, error, dependent = validated[id(cfg)]
        seed = resolved["seed"] if seed is None and resolved else seed
        if dependent and seed is not None:
            good, resolved, error = validated_of(with_seed(cfg, seed))
        if error is not None:
            refuse(cell, [error])
            continue
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            refuse(cell, [f"seed={seed!r}: a seed is a non-negative integer"])
            continue
        out = runs_dir(good.paths.results, good.experiment)
        unwritable = once(("folder", str(out)), lambda: folder_problems(out))
        rid = report.run_ids[-1] = run_id({**resolved, "seed": seed})
        entry = {"cell": cell, "run_id": rid, "model": good.model.name, "task": good.task.name,
                 "method": good.method.name, "examples": good.task.max_train_samples, "epochs": good.trainer.epochs}
        record, corrupt = integrity.read(out / f"{rid}.json")
        if unwritable:      # refused; a cell that would run is also checked for what running needs
            report.run_ids[-1] = None
            refuse(cell, unwritable + (run_problems(good, resolved) if record is None or good.force else []))
            continue
        if rid in ids:
            report.duplicates.append(f"{cell} is the same run as {ids[rid]} ({rid}): it runs once")
            report.entries.append({**entry, "status": "duplicate", "detail": f"same run as {ids[rid]}"})
            continue
        ids[rid] = cell
        if record is not None and not good.force:
            report.complete += 1
            report.entries.append({**entry, "status": "complete", "detail": str(out / f"{rid}.json")})
            continue
        source = recorded_elsewhere(good.paths.results, rid, out) if good.reuse and not good.force else None
        if source is not None:
            report.reused += 1
            report.entries.append({**entry, "status": "reused", "detail": f"record of experiment {source} copied"})
            continue
        problems = run_problems(good, resolved)
        if problems:
            report.run_ids[-1] = None
            refuse(cell, problems)
            continue
        report.corrupt += bool(corrupt)
        status, detail = ("corrupt", f"record set aside ({corrupt}) and rerun") if corrupt else ("run", "")
        if good.lease.enabled and lease.live_owner(leases_dir(out), rid, good.lease.timeout_s) is not None:
            report.leased += 1
            status, detail = "leased", "another sweep runs it now"
        report.entries.append({**entry, "status": status, "detail": detail})
    report.seconds = time.perf_counter() - started
    return report


# ---------------------------------------------------------------- the launcher
def launcher_problem(config: DictConfig) -> str | None:
    """Why the sweep's launcher cannot start here, or None: the SLURM launcher needs SLURM's commands."""
    target = str(OmegaConf.select(config, "hydra.launcher._target_") or "")
    if not target.endswith("SlurmLauncher"):
        return None
    missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
    if not missing:
        return None
    return (f"hydra/launcher=slurm submits each run as a SLURM job, but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not on PATH here: launch from a SLURM login node, or run "
            "the sweep on this machine without the launcher (drop hydra/launcher=slurm; with make: LAUNCHER=local "
            "or LAUNCHER=parallel)")


def experiment_problem(config: DictConfig) -> str | None:
    """exp=<name> with no experiment file: Hydra skips a missing optional config without a word, so
    the launch would run the defaults (a full run of the default model and task) under no experiment."""
    choice = OmegaConf.select(config, "hydra.runtime.choices.exp")
    sources = [s for s in OmegaConf.select(config, "hydra.runtime.config_sources") or [] if s.schema == "file"]
    if not choice or not sources or any((Path(s.path) / "exp" / f"{choice}.yaml").is_file() for s in sources):
        return None
    conf = next((s.path for s in sources if s.provider == "main"), sources[0].path)
    return (f"{hints.missing_option('exp', choice, Path(conf))}. Hydra skips a missing optional config file, so "
            "this would run the default model and task instead of an experiment")


# ---------------------------------------------------------------- the Hydra callback
def run_config(config: DictConfig) -> DictConfig:
    """The run's own config, without Hydra's node (what a job receives)."""
    return OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])


class SweepPreflight(Callback):
    """conf/config.yaml registers this: on `-m`, check every cell before the launcher starts; on a
    single run, check the run before Hydra makes its folder in the results folder (so a read-only
    results folder or a bad config leaves nothing behind). preflight.dry_run=true prints the plan
    (childtuning/plan.py) and stops."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        if not OmegaConf.select(config, "preflight.enabled", default=True):
            return
        problem = experiment_problem(config)
        if problem:
            print(f"error: {problem}", file=sys.stderr, flush=True)
            sys.exit(2)
        cfg = run_config(config)
        report = check_cells([list(OmegaConf.select(config, "hydra.overrides.task") or [])], lambda _: (cfg, None))
        if report.bad:
            for reason in report.bad:
                print(f"error: {reason}", file=sys.stderr, flush=True)
            sys.exit(2)
        if OmegaConf.select(config, "preflight.dry_run", default=False):
            self.print_plan(report, cfg)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        if not OmegaConf.select(config, "preflight.enabled", default=True):
            print("pre-flight: skipped (preflight.enabled=false)", flush=True)
            return
        problem = experiment_problem(config) or launcher_problem(config)
        if problem:
            print(f"error: the sweep is refused before any run starts: {problem}", file=sys.stderr, flush=True)
            sys.exit(2)
        sweeper = OmegaConf.select(config, "hydra.sweeper._target_")
        if sweeper != BASIC_SWEEPER:
            print(f"pre-flight: the sweeper {sweeper} is not Hydra's basic sweeper; cells are not checked at launch")
            return
        from hydra import compose

        config_name = kwargs.get("config_name") or "config"
        groups = set(OmegaConf.select(config, "hydra.runtime.choices") or {})
        composer = CellComposer(lambda overrides: compose(config_name, overrides=list(overrides)), groups)
        report = check_cells(sweep_jobs(config), composer)
        dry_run = OmegaConf.select(config, "preflight.dry_run", default=False)
        if report.bad:
            if dry_run:
                self.print_plan(report, config, exit_code=None)
            print(f"error: {report.refusal()}", file=sys.stderr, flush=True)
            sys.exit(2)
        if dry_run:
            self.print_plan(report, config)
        for line in report.duplicates + report.notes:
            print(f"pre-flight: note: {line}")
        print(report.summary(), flush=True)

    @staticmethod
    def print_plan(report: Report, config: DictConfig, exit_code: int | None = 0) -> None:
        """Print what the launch would do, then exit with `exit_code` (None: return)."""
        print(plan.render(report, str(OmegaConf.select(config, "paths.results"))), flush=True)
        if exit_code is not None:
            sys.exit(exit_code)
