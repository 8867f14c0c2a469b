"""A sweep's jobs as Hydra's basic sweeper launches them: the experiment's `hydra.sweeper.params`,
then the command line's overrides (a later value of a key replaces an earlier one in its place;
`a,b` lists and range() expand), one override list per job, in launch order. Used wherever a
sweep must be known before it runs: pre-flight checks, the probe's source runs, the tests."""
from __future__ import annotations

from collections.abc import Mapping, Sequence


def jobs(params: Mapping | None, overrides: Sequence[str] = ()) -> list[list[str]]:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = [f"{k}={v}" for k, v in (params or {}).items()] + list(overrides)
    return BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(args), None)[0]


def compose(overrides: Sequence[str], with_hydra: bool = False):
    """The run config for command-line `overrides` as the runner composes it (`with_hydra`: with
    its hydra node, where the experiment's sweep is); not yet validated."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from . import REPO_ROOT

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=with_hydra)


def experiment_jobs(overrides: Sequence[str]) -> list[list[str]]:
    """Each job's overrides for a command line such as `exp=X key=value`: the experiment's sweep
    (hydra.sweeper.params) with the command line's overrides, expanded as the runner expands it."""
    from omegaconf import OmegaConf

    params = OmegaConf.select(compose(overrides, with_hydra=True), "hydra.sweeper.params") or {}
    params = OmegaConf.to_container(params, resolve=True) if OmegaConf.is_config(params) else dict(params)
    return jobs(params, overrides)
