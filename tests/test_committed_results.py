"""The committed results are what the aggregator makes of the committed run records.

For every experiment under results/ that has both run records and a table.csv, re-aggregate a copy
of the records in a temporary folder and compare the tables byte for byte. A hand edit to a
table, a record added without re-aggregating, or an aggregator change that alters published
numbers all fail here.
"""
import shutil

import pytest

from childtuning.aggregate import aggregate

from conftest import REPO  # noqa: E402
COMMITTED = sorted(
    d.name for d in (REPO / "results").glob("*")
    if (d / "runs").is_dir() and (d / "table.csv").is_file() and (REPO / "experiments" / f"{d.name}.yaml").is_file()
)


@pytest.mark.skipif(not COMMITTED, reason="no aggregated experiment under results/")
@pytest.mark.parametrize("experiment", COMMITTED)
def test_tables_reproduce_from_records(experiment, tmp_path):
    src = REPO / "results" / experiment
    shutil.copytree(src / "runs", tmp_path / experiment / "runs")
    aggregate(experiment, tmp_path)
    for name in ("table.md", "table.csv", "table.tex"):
        assert (tmp_path / experiment / name).read_text() == (src / name).read_text(), (
            f"results/{experiment}/{name} differs from what `python -m childtuning.aggregate {experiment}` "
            f"makes of results/{experiment}/runs: re-run the aggregator and commit its output")
    plots = sorted(p.name for p in (src / "plots").glob("*.png"))
    assert plots == sorted(p.name for p in (tmp_path / experiment / "plots").glob("*.png"))


@pytest.mark.skipif(not COMMITTED, reason="no aggregated experiment under results/")
@pytest.mark.parametrize("experiment", COMMITTED)
def test_relaunch_finds_every_committed_run(experiment):
    """Each job the experiment's sweep launches composes, under today's configs and run-id rule, to
    the id of a committed record: a relaunch skips them all (a config change that silently moved
    run ids, such as a new default, fails here)."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from childtuning.config import validate
    from childtuning.record import run_id

    have = {p.stem for p in (REPO / "results" / experiment / "runs").glob("*.json")}
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        params = compose("config", overrides=[f"exp={experiment}"], return_hydra_config=True).hydra.sweeper.params
        parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
        jobs = BasicSweeper.split_arguments(parsed, max_batch_size=None)[0]
        ids = {run_id(validate(compose("config", overrides=[f"exp={experiment}", *job]))) for job in jobs}
    assert len(ids) == len(jobs) and ids <= have, f"no committed record for {sorted(ids - have)[:3]} ..."
