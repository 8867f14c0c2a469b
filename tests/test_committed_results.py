"""The committed results are what the aggregator makes of the committed run records.

For every experiment under results/ that has both run records and a table.csv, re-aggregate a copy
of the records in a temporary folder and compare the tables byte for byte. A hand edit to a
table, a record added without re-aggregating, or an aggregator change that alters published
numbers all fail here.
"""
import shutil
from pathlib import Path

import pytest

from childtuning.aggregate import aggregate

REPO = Path(__file__).resolve().parents[1]
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


def _grid_overrides(experiment: str) -> list[list[str]]:
    """One override list per grid point of `experiment`'s sweep, as Hydra's basic sweeper expands it."""
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    params = OmegaConf.to_container(OmegaConf.load(REPO / "experiments" / f"{experiment}.yaml").hydra.sweeper.params)
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    axes = [[f"{o.key_or_group}={v}" for v in (o.sweep_string_iterator() if o.is_sweep_override()
                                                 else [o.get_value_element_as_str()])] for o in parsed]
    return [[f"exp={experiment}", *combo] for combo in itertools.product(*axes)]


@pytest.mark.skipif(not COMMITTED, reason="no aggregated experiment under results/")
@pytest.mark.parametrize("experiment", COMMITTED)
def test_composed_grid_gives_the_committed_run_ids(experiment):
    """Composing the experiment's grid today gives exactly the run ids of its committed records: a
    change to the config schema, a task file or the run-id rule that would orphan them fails here."""
    from hydra import compose, initialize_config_dir

    from childtuning.config import validate
    from childtuning.record import run_id

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        ids = {run_id(validate(compose("config", overrides=o))) for o in _grid_overrides(experiment)}
    committed = {p.stem for p in (REPO / "results" / experiment / "runs").glob("*.json")}
    assert committed == ids, (f"results/{experiment}: records {sorted(committed - ids)} are not in the composed grid, "
                              f"which makes {sorted(ids - committed)} instead")


@pytest.mark.slow
@pytest.mark.skipif(not COMMITTED, reason="no aggregated experiment under results/")
@pytest.mark.parametrize("experiment", COMMITTED)
def test_composed_grid_reads_the_committed_data(experiment):
    """Each committed record's data (train subset and dev set) is what the readers and the
    subset rule give today: same fingerprints and sizes (needs the real GLUE files)."""
    import json

    from hydra import compose, initialize_config_dir

    from conftest import REAL_GLUE, has_real_glue
    from childtuning.config import validate
    from childtuning.data import fingerprint
    from childtuning.record import run_id
    from childtuning.train import load_data

    if not has_real_glue("CoLA", "RTE", "MRPC", "STS-B"):
        pytest.skip(f"no real GLUE data under {REAL_GLUE}")
    records = {p.stem: json.loads(p.read_text()) for p in (REPO / "results" / experiment / "runs").glob("*.json")}
    seen = {}
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        for overrides in _grid_overrides(experiment):
            cfg = validate(compose("config", overrides=[*overrides, f"paths.glue_dir={REAL_GLUE}"]))
            rec = records[run_id(cfg)]
            key = (cfg.task.name, cfg.seed, cfg.task.max_train_samples)   # the data depend on these only
            if key not in seen:
                seen[key] = {s: {"size": len(v), "fingerprint": fingerprint(v)} for s, v in load_data(cfg).items()}
            assert seen[key] == {s: {k: d[k] for k in ("size", "fingerprint")} for s, d in rec["data"].items()}, rec["run_id"]
