"""Experiments and their sweeps, as the runner composes and launches them: an experiment file
composed with conf/ (`composer`), its sweep expanded by Hydra's basic sweeper (`jobs`: the
experiment's `hydra.sweeper.params`, then the command line's overrides; a later value of a key
replaces an earlier one in its place; `a,b` lists and range() expand; one override list per job,
in launch order), and the values each axis takes (`sweep_grid`). The one expansion used
wherever a sweep must be known before it runs: pre-flight, the probe's source runs, the tables'
expected grid, the tests."""
from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from . import REPO_ROOT
from .errors import InputError

CONF_DIR = REPO_ROOT / "conf"
EXPERIMENTS_DIR = REPO_ROOT / "experiments"      # conf/exp links here: the runner's `exp=<name>`
GROUP_AXES = ("model", "task", "method")        # swept as config groups; a record names them by `<group>.name`
FILE_OPTION = "__experiment_file__"             # the `exp` option a file outside experiments/ is composed as
_ABSENT = object()


def config_path(axis: str) -> str:
    """Where a table axis lives in a composed config (and in a record's `config`)."""
    return f"{axis}.name" if axis in GROUP_AXES else axis


def axis_value(axis: str, value):
    """A grid value as the tables compare and show it: seeds as ints, numbers in one spelling
    (so 2e-5 in a sweep matches 2.0e-05 in a record), everything else as text."""
    if axis == "seed":
        try:
            return int(value)
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(float(value), ".12g")
    return "null" if value is None else str(value)


@contextmanager
def composer(path: Path):
    """Yields `compose_with(overrides)`: the config of experiment file `path` plus `overrides`,
    composed from conf/ with `exp=<option>` exactly as `python -m childtuning.train -m` does
    (hydra config included, so the sweep is where the runner finds it). A file outside
    experiments/ is composed from a temporary copy added to Hydra's search path."""
    path = Path(path)
    with ExitStack() as stack:
        if path.resolve().parent == (CONF_DIR / "exp").resolve():     # where Hydra finds `exp=<name>`
            base = [f"exp={path.stem}"]
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            (tmp / "exp").mkdir()
            (tmp / "exp" / f"{FILE_OPTION}.yaml").write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
            base = [f"exp={FILE_OPTION}", f"hydra.searchpath=[file://{tmp}]"]
        stack.enter_context(initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"))

        def compose_with(overrides=()):
            try:
                return hydra_compose("config", overrides=[*base, *overrides], return_hydra_config=True)
            except (HydraException, OmegaConfBaseException, ValueError) as e:
                extra = f" with {' '.join(overrides)}" if overrides else ""
                raise InputError(f"{path}: cannot be composed with conf/{extra} as the runner composes it: {e}") from e
        yield compose_with


def sweep_grid(compose_with, cfg, axes: list[str], where: str) -> dict[str, list]:
    """The values each axis takes in the experiment's sweep, in sweep order (from `jobs`, the one
    expansion): a swept axis takes its swept values (a swept group, its options' `name`s), any
    other axis the value `cfg` (the composed experiment) holds. Raises InputError for a swept key
    that is not an axis: its runs would fall into one cell as duplicate seeds."""
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    params = OmegaConf.to_container(params, resolve=True) if OmegaConf.is_config(params) else dict(params)
    try:
        launched = jobs(params)
        parsed = [OverridesParser.create().parse_overrides(job) for job in launched]
    except HydraException as e:
        raise InputError(f"{where}: hydra.sweeper.params cannot be expanded: {e}") from e
    swept: dict[str, list] = {}
    for job in parsed:
        for o in job:
            swept.setdefault(o.key_or_group, []).append(o.value())
    for key in swept:
        if key not in axes:
            raise InputError(f"{where} sweeps {key}, which the table does not name, so runs that differ in it "
                             f"would share a cell: add {key} to table.rows (table axes: {', '.join(axes)})")
    grid = {}
    for axis in axes:
        if axis in swept:
            values = list(dict.fromkeys(swept[axis]))
            if axis in GROUP_AXES:     # an option's file name need not be its `name`: ask the composed config
                values = [OmegaConf.select(compose_with([f"{axis}={v}"]), config_path(axis)) for v in values]
        else:
            value = OmegaConf.select(cfg, config_path(axis), default=_ABSENT)
            if value is _ABSENT:
                raise InputError(f"{where}: the table names {axis}, which the composed config does not have "
                                 f"(no {config_path(axis)})")
            values = [value]
        grid[axis] = list(dict.fromkeys(axis_value(axis, v) for v in values))
    return grid


def available_experiments() -> list[str]:
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))


def find_experiment_file(experiment: str, path: str | Path | None = None) -> Path | None:
    """`path` (which must exist), else experiments/<experiment>.yaml if there is one, else None."""
    if path is not None:
        if not Path(path).is_file():
            raise InputError(f"experiment file {path} does not exist")
        return Path(path)
    default = EXPERIMENTS_DIR / f"{experiment}.yaml"
    return default if default.is_file() else None


def unknown_experiment(experiment: str, why: str = "") -> InputError:
    return InputError(f"unknown experiment {experiment!r}: there is no {EXPERIMENTS_DIR / f'{experiment}.yaml'}"
                      f"{why}. Available experiments: {', '.join(available_experiments()) or '(none)'}")


def combination_node(parts: tuple[str, ...]) -> dict:
    """The config of the combination of methods `parts` (methods/composite.py says how their hooks
    combine): each part's conf/method file, per-task and per-model files under parts.<name>, as a
    Hydra defaults list (${task} and ${model} resolve there: conf/config.yaml lists `method` first)."""
    defaults = []
    for part in parts:
        defaults += [f"{part}@parts.{part}", {f"optional /method_task@parts.{part}": f"{part}_${{task}}"},
                     {f"optional /method_model@parts.{part}": f"{part}_${{model}}"}]
    return {"defaults": defaults + ["_self_"], "name": "+".join(parts)}


def register_combinations(conf_dir: Path | None = None) -> None:
    """Put `method/<a>+<b>` in Hydra's config store for every ordered pair of methods with a file
    in conf/method (vanilla aside), so a combination composes with no file of its own."""
    store = ConfigStore.instance()
    singles = sorted(p.stem for p in Path(conf_dir or CONF_DIR, "method").glob("*.yaml")
                     if p.stem != "vanilla" and "+" not in p.stem)
    for a in singles:
        for b in singles:
            if a != b:
                store.store(group="method", name=f"{a}+{b}", node=combination_node((a, b)))


register_combinations()        # every composition from conf/ (the runner's, the report's) sees them


def jobs(params: Mapping | None, overrides: Sequence[str] = ()) -> list[list[str]]:
    """Each job's override list, as Hydra's basic sweeper launches `params` and `overrides`."""
    args = [f"{k}={v}" for k, v in (params or {}).items()] + list(overrides)
    return BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(args), None)[0]


def compose(overrides: Sequence[str], with_hydra: bool = False):
    """The run config for command-line `overrides` as the runner composes it (`with_hydra`: with
    its hydra node, where the experiment's sweep is); not yet validated."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=with_hydra)


def experiment_jobs(overrides: Sequence[str]) -> list[list[str]]:
    """Each job's overrides for a command line such as `exp=X key=value`: the experiment's sweep
    (hydra.sweeper.params) with the command line's overrides, expanded as the runner expands it."""
    params = OmegaConf.select(compose(overrides, with_hydra=True), "hydra.sweeper.params") or {}
    params = OmegaConf.to_container(params, resolve=True) if OmegaConf.is_config(params) else dict(params)
    return jobs(params, overrides)
