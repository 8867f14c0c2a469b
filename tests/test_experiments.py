"""Every experiment file composes as the runner composes it, is named by its file name, and the
grid its table expects is exactly the set of runs Hydra's basic sweeper launches from it."""
import itertools
import math

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from childtuning.report import available_experiments, load_spec
from childtuning.sweep import axis_value, config_path

from helpers.paths import REPO
FULL, SAMPLE = 24, 12    # a larger sweep is checked on an even sample of its jobs (a compose takes ~0.1 s)


def test_every_experiment_file_is_found():
    assert {"smoke", "demo", "table1", "table1_cpu"} <= set(available_experiments())


@pytest.mark.slow
@pytest.mark.parametrize("experiment", available_experiments())
def test_experiment_name_is_the_file_name(experiment):
    assert OmegaConf.load(REPO / "experiments" / f"{experiment}.yaml").experiment == experiment
    assert load_spec(experiment).experiment == experiment        # the loader checks the composed value too


@pytest.mark.slow
@pytest.mark.parametrize("experiment", available_experiments())
def test_table_grid_is_what_the_sweeper_launches(experiment):
    spec = load_spec(experiment)
    axes = spec.key + ["seed"]
    grid = set(itertools.product(*(spec.expected[a] for a in axes)))
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        params = compose("config", overrides=[f"exp={experiment}"], return_hydra_config=True).hydra.sweeper.params
        parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
        jobs = BasicSweeper.split_arguments(parsed, max_batch_size=None)[0]
        assert len(jobs) == len(grid) == math.prod(len(spec.expected[a]) for a in axes)
        sample = jobs if len(jobs) <= FULL else jobs[:: math.ceil(len(jobs) / SAMPLE)] + [jobs[-1]]
        launched = set()
        for job in sample:                          # each job composed as the runner composes it
            cfg = compose("config", overrides=[f"exp={experiment}", *job])
            launched.add(tuple(axis_value(a, OmegaConf.select(cfg, config_path(a))) for a in axes))
    assert len(launched) == len(sample), f"experiments/{experiment}.yaml: two jobs land in one cell and seed"
    assert launched <= grid, f"experiments/{experiment}.yaml launches {sorted(launched - grid)} outside its grid"
    if len(sample) == len(jobs):
        assert launched == grid, f"experiments/{experiment}.yaml never launches {sorted(grid - launched)}"
