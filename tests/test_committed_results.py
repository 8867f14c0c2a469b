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
