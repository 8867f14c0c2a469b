"""The committed results are what the aggregator makes of the committed run records.

For every experiment under results/ that has both run records and a table.csv, re-aggregate a copy
of the records (and the JSON files beside them: a protocol's selection, mask overlap counts; and the
records of the experiments its Holm family is pooled with) in a temporary folder and compare the
tables byte for byte. A hand edit to a
table, a record added without re-aggregating, or an aggregator change that alters published
numbers all fail here.
"""
import functools
import re
import shutil

import pytest

from childtuning.aggregate import aggregate

from helpers.paths import REPO
COMMITTED = sorted(
    d.name for d in (REPO / "results").glob("*")
    if (d / "runs").is_dir() and (d / "table.csv").is_file() and (REPO / "experiments" / f"{d.name}.yaml").is_file()
)


@pytest.mark.slow
@pytest.mark.skipif(not COMMITTED, reason="no aggregated experiment under results/")
@pytest.mark.parametrize("experiment", COMMITTED)
def test_tables_reproduce_from_records(experiment, tmp_path):
    from childtuning.report.spec import load_spec, pooled_with

    src = REPO / "results" / experiment
    for records in ("runs", "probes", "targets"):   # probe records (task transfer), target records (domain transfer)
        if (src / records).is_dir():
            shutil.copytree(src / records, tmp_path / experiment / records)
    for other in pooled_with(experiment, load_spec(experiment).comparisons.joins):    # one Holm family
        if (REPO / "results" / other / "runs").is_dir():
            shutil.copytree(REPO / "results" / other / "runs", tmp_path / other / "runs")
    for kept in src.glob("*.json"):    # what a table rebuilds from besides the records (e.g. mask overlap counts)
        shutil.copy(kept, tmp_path / experiment / kept.name)
    aggregate(experiment, tmp_path)
    for name in ("table.md", "table.csv", "table.tex"):
        assert (tmp_path / experiment / name).read_text() == (src / name).read_text(), (
            f"results/{experiment}/{name} differs from what `python -m childtuning.aggregate {experiment}` "
            f"makes of results/{experiment}/runs: re-run the aggregator and commit its output")
    plots = sorted(p.name for p in (src / "plots").glob("*.png"))
    assert plots == sorted(p.name for p in (tmp_path / experiment / "plots").glob("*.png"))


@functools.lru_cache(maxsize=None)
def composed_grid(experiment: str) -> tuple:
    """(run id, validated config) of each job the experiment's sweep launches (childtuning/sweep.py),
    composed once for the two tests below (composition is most of their time; with --dist loadfile
    both run in one worker)."""
    from childtuning import sweep
    from childtuning.config import compose, validate
    from childtuning.record import run_id

    cfgs = [validate(compose(*job)) for job in sweep.experiment_jobs([f"exp={experiment}"])]
    return tuple((run_id(cfg), cfg) for cfg in cfgs)


@pytest.mark.slow
@pytest.mark.skipif(not COMMITTED, reason="no aggregated experiment under results/")
@pytest.mark.parametrize("experiment", COMMITTED)
def test_relaunch_finds_every_committed_run(experiment):
    """Each job the experiment's sweep launches composes, under today's configs and run-id rule, to
    a distinct run id, and every committed record is one of them: a relaunch skips them all (a
    config change that silently moved run ids, such as a new default, fails here)."""
    have = {p.stem for p in (REPO / "results" / experiment / "runs").glob("*.json")}
    grid = composed_grid(experiment)
    ids = {rid for rid, _ in grid}
    assert len(ids) == len(grid), f"experiments/{experiment}.yaml: two jobs compose to one run id"
    assert have <= ids, f"results/{experiment}: records {sorted(have - ids)[:3]} are not runs of today's grid"


@pytest.mark.slow
@pytest.mark.skipif(not COMMITTED, reason="no aggregated experiment under results/")
@pytest.mark.parametrize("experiment", COMMITTED)
def test_composed_grid_reads_the_committed_data(experiment):
    """Each committed record's data (train subset and dev set) is what the readers and the
    subset rule give today: same fingerprints and sizes (needs the real GLUE files)."""
    import json

    from omegaconf import OmegaConf

    from helpers.paths import REAL_GLUE, has_real_glue
    from childtuning.data import fingerprint
    from childtuning.train import load_data

    if not has_real_glue("CoLA", "RTE", "MRPC", "STS-B"):
        pytest.skip(f"no real GLUE data under {REAL_GLUE}")
    records = {p.stem: json.loads(p.read_text()) for p in (REPO / "results" / experiment / "runs").glob("*.json")}
    seen = {}
    for rid, composed in composed_grid(experiment):
        rec = records.get(rid)
        if rec is None:                # an experiment still running has records for part of its grid
            continue
        cfg = OmegaConf.merge(composed, {"paths": {"glue_dir": str(REAL_GLUE)}})   # the cached config stays as it was
        key = (cfg.task.name, cfg.seed, cfg.task.max_train_samples)   # the data depend on these only
        if key not in seen:
            seen[key] = {s: {"size": len(v), "fingerprint": fingerprint(v)} for s, v in load_data(cfg).items()}
        assert seen[key] == {s: {k: d[k] for k in ("size", "fingerprint")} for s, d in rec["data"].items()}, rec["run_id"]


DEMO_TABLE = re.compile(r"<!-- demo-table[^>]*-->\n(.*?)<!-- /demo-table -->", re.S)


def first_table(markdown: str) -> list[str]:
    """The lines of the first Markdown table in `markdown` (header, separator, rows)."""
    lines = markdown.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), len(lines))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_the_readme_quotes_the_committed_demo_table():
    """The demo output the README quotes is the committed demo's table (results/demo/table.md, rebuilt
    from its records by test_tables_reproduce_from_records), not a copy from an older code."""
    quoted = DEMO_TABLE.findall((REPO / "README.md").read_text(encoding="utf-8"))
    assert len(quoted) == 1, "README.md: quote the demo's table once, between <!-- demo-table --> and <!-- /demo-table -->"
    demo = REPO / "results" / "demo"
    if not list((demo / "runs").glob("*.json")) or not (demo / "table.md").is_file():
        pytest.skip("results/demo has no committed records and table yet: run `make demo` and commit results/demo "
                    "(runs/ and the table files), then quote table.md's first table in README.md")
    table = first_table((demo / "table.md").read_text(encoding="utf-8"))
    assert table and first_table(quoted[0]) == table and quoted[0].strip().splitlines() == table, (
        "README.md's demo table differs from results/demo/table.md: paste that file's first table between the markers")
