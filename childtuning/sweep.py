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
