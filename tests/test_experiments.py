"""Every experiment file's sweep produces exactly the grid its table expects, so an experiment
cannot be launched that its table would report as incomplete (or vice versa)."""
import itertools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from childtuning.aggregate import _axis_value, available_experiments, load_spec

REPO = Path(__file__).resolve().parents[1]
CONFIG_VALUE = {"model": "model.name", "task": "task.name", "method": "method.name", "seed": "seed"}


def swept_values(params: dict) -> dict[str, list[str]]:
    """The values each swept key takes, as Hydra's basic sweeper expands them."""
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return {o.key_or_group: list(o.sweep_string_iterator()) if o.is_sweep_override()
            else [o.get_value_element_as_str()] for o in parsed}


@pytest.mark.parametrize("experiment", available_experiments())
def test_sweep_grid_matches_the_declared_table(experiment):
    spec = load_spec(experiment)
    params = OmegaConf.load(REPO / "experiments" / f"{experiment}.yaml").hydra.sweeper.params
    swept = swept_values(OmegaConf.to_container(params))
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"exp={experiment}"])
    axes = spec.key + ["seed"]
    values = {}
    for axis in axes:
        if axis in swept:
            values[axis] = swept[axis]
        else:                                           # not swept: the experiment's own setting
            values[axis] = [OmegaConf.select(cfg, CONFIG_VALUE.get(axis, axis))]
    grid = {tuple(_axis_value(a, v) for a, v in zip(axes, combo)) for combo in itertools.product(*values.values())}
    expected = set(itertools.product(*(spec.expected[a] for a in axes)))
    assert grid == expected, (f"experiments/{experiment}.yaml: the sweep makes {sorted(grid - expected)} that the "
                              f"table does not expect and misses {sorted(expected - grid)}")
    assert not set(swept) - set(axes), \
        f"experiments/{experiment}.yaml sweeps {set(swept) - set(axes)}, which the table's rows do not name"
