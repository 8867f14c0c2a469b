"""The grid an experiment runs: its file composed with conf/ as the runner composes it, and its
sweep (hydra.sweeper.params) expanded as Hydra's basic sweeper expands it."""
from __future__ import annotations

import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..errors import InputError
from ..record import REPO_ROOT

CONF_DIR = REPO_ROOT / "conf"
EXPERIMENTS_DIR = REPO_ROOT / "experiments"      # conf/exp links here: the runner's `exp=<name>`
GROUP_AXES = ("model", "task", "method")        # swept as config groups; a record names them by `<group>.name`
FILE_OPTION = "__experiment_file__"             # the `exp` option a file outside experiments/ is composed as
SWEEPS = (ValueType.SIMPLE_CHOICE_SWEEP, ValueType.CHOICE_SWEEP, ValueType.RANGE_SWEEP)
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
        if path.resolve().parent == EXPERIMENTS_DIR.resolve():
            base = [f"exp={path.stem}"]
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            (tmp / "exp").mkdir()
            (tmp / "exp" / f"{FILE_OPTION}.yaml").write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
            base = [f"exp={FILE_OPTION}", f"hydra.searchpath=[file://{tmp}]"]
        stack.enter_context(initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"))

        def compose_with(overrides=()):
            try:
                return compose("config", overrides=[*base, *overrides], return_hydra_config=True)
            except (HydraException, OmegaConfBaseException, ValueError) as e:
                extra = f" with {' '.join(overrides)}" if overrides else ""
                raise InputError(f"{path}: cannot be composed with conf/{extra} as the runner composes it: {e}") from e
        yield compose_with


def sweep_grid(compose_with, cfg, axes: list[str], where: str) -> dict[str, list]:
    """The values each axis takes in the experiment's sweep, in sweep order: a swept axis takes
    its swept values (a swept group, its options' `name`s), any other axis the value `cfg`
    (the composed experiment) holds. Raises InputError for a swept key that is not an axis:
    its runs would fall into one cell as duplicate seeds."""
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    params = OmegaConf.to_container(params, resolve=True) if OmegaConf.is_config(params) else dict(params)
    try:
        parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    except HydraException as e:
        raise InputError(f"{where}: hydra.sweeper.params cannot be parsed: {e}") from e
    swept = {}
    for o in parsed:
        key = o.key_or_group
        if key not in axes:
            raise InputError(f"{where} sweeps {key}, which the table does not name, so runs that differ in it "
                             f"would share a cell: add {key} to table.rows (table axes: {', '.join(axes)})")
        if o.value_type in SWEEPS:
            values = list(o.sweep_iterator())
        elif o.value_type == ValueType.ELEMENT:
            values = [o.value()]
        else:
            raise InputError(f"{where}: cannot expand the sweep {key}={params[key]} (use a list a,b,c or range())")
        if key in GROUP_AXES:     # an option's file name need not be its `name`: ask the composed config
            values = [OmegaConf.select(compose_with([f"{key}={v}"]), config_path(key)) for v in values]
        swept[key] = values
    grid = {}
    for axis in axes:
        if axis in swept:
            values = swept[axis]
        else:
            value = OmegaConf.select(cfg, config_path(axis), default=_ABSENT)
            if value is _ABSENT:
                raise InputError(f"{where}: the table names {axis}, which the composed config does not have "
                                 f"(no {config_path(axis)})")
            values = [value]
        grid[axis] = list(dict.fromkeys(axis_value(axis, v) for v in values))
    return grid
