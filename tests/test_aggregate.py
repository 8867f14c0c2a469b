"""The aggregator on hand-made run records: statistics, status policy, missing runs, the grid from
the sweep, inferred layouts, tests, errors."""
import json
import math
import subprocess
import sys
from types import SimpleNamespace

import pytest
from scipy import stats

from childtuning.aggregate import aggregate, main
from childtuning.report import KINDS, TableKind, register
from childtuning.errors import InputError

from helpers.paths import REPO
from helpers.records import UNIT_EXPERIMENT_YAML, cell, unit_record, write_runs


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "unit.yaml"
    path.write_text(UNIT_EXPERIMENT_YAML)
    return path


# vanilla/rte: three ok runs; child_tuning_d/rte: ok, degenerate (scored), diverged (no score);
# mrpc: vanilla seeds 1-2 only, child_tuning_d none at all.
VANILLA_RTE = [60.0, 70.0, 80.0]
CT_RTE_SCORED = [75.0, 50.0]


@pytest.fixture
def results(tmp_path):
    out = tmp_path / "results"
    write_runs(out, *(unit_record("rte", "vanilla", s, v) for s, v in zip((1, 2, 3), VANILLA_RTE)),
               unit_record("rte", "child_tuning_d", 1, 75.0), unit_record("rte", "child_tuning_d", 2, 50.0, "degenerate"),
               unit_record("rte", "child_tuning_d", 3, None, "diverged"),
               unit_record("mrpc", "vanilla", 1, 80.0), unit_record("mrpc", "vanilla", 2, 84.0))
    return out


@pytest.mark.slow
def test_cell_statistics_and_status_policy(results, spec):
    frame = aggregate("unit", results, experiment_file=spec)
    assert list(frame[["task", "method"]].itertuples(index=False, name=None)) == [
        ("rte", "vanilla"), ("rte", "child_tuning_d"), ("mrpc", "vanilla"), ("mrpc", "child_tuning_d")]

    v = cell(frame, "rte", "vanilla")
    assert (v["mean"], v["std"], v["max"]) == pytest.approx((70.0, 10.0, 80.0))
    assert (v["n_ok"], v["n_failed"], v["n"], v["n_scored"]) == (3, 0, 3, 3)
    assert v["metric"] == "accuracy" and v["paper"] == 69.5

    # the degenerate run's 50 enters the mean; the diverged run is counted, not averaged
    ct = cell(frame, "rte", "child_tuning_d")
    assert ct["mean"] == pytest.approx(62.5) and ct["std"] == pytest.approx(math.sqrt(2 * 12.5 ** 2))
    assert ct["max"] == 75.0
    assert (ct["n_ok"], ct["n_failed"], ct["n"], ct["n_scored"]) == (1, 2, 3, 2)
    assert ct["failed_by_status"] == "degenerate:1; diverged:1"
    assert math.isnan(ct["paper"])

    one_short = cell(frame, "mrpc", "vanilla")          # two scores: mean and std known
    assert (one_short["mean"], one_short["std"]) == pytest.approx((82.0, math.sqrt(8)))
    empty = cell(frame, "mrpc", "child_tuning_d")       # declared, no record: a row of zeros and unknowns
    assert (empty["n"], empty["n_ok"], empty["n_failed"]) == (0, 0, 0) and math.isnan(empty["mean"])
    assert empty["metric"] == "f1"                      # from conf/task/mrpc.yaml


@pytest.mark.slow
def test_run_time_per_cell_and_in_total(tmp_path, spec):
    """Run time comes from started_at/finished_at; a record without them is counted but not timed."""
    out = tmp_path / "results"

    def timed(seed, start, end, threads, zone="+00:00"):
        r = unit_record("rte", "vanilla", seed, 70.0)
        r.update(started_at=f"2026-01-01T10:{start}{zone}", finished_at=f"2026-01-01T10:{end}{zone}",
                 device={"type": "cpu", "threads": threads})
        return r
    write_runs(out, timed(1, "00:00", "01:40", 1), timed(2, "05:00", "05:20", 1),
               timed(3, "02:00", "02:30", 2, zone=""),                  # no time zone: read as UTC, still comparable
               unit_record("mrpc", "vanilla", 1, 80.0))
    frame = aggregate("unit", out, experiment_file=spec)
    assert cell(frame, "rte", "vanilla")["seconds_mean"] == pytest.approx((100 + 20 + 30) / 3)
    assert cell(frame, "rte", "vanilla")["train_loss_mean"] == pytest.approx(0.7)     # the record's last epoch
    assert math.isnan(cell(frame, "mrpc", "vanilla")["seconds_mean"])
    md = (out / "unit" / "table.md").read_text()
    assert "summed over 3 of 4 record(s): 150 s = 0.04 h" in md
    assert "started 2026-01-01T10:00:00+00:00, last finished 2026-01-01T10:05:20+00:00" in md
    assert "Devices: cpu, 1 thread (2 runs); cpu, 2 threads (1 run)." in md


@pytest.mark.slow
def test_a_resumed_run_counts_its_measured_time_not_its_last_attempts_stamps(tmp_path, spec):
    """A run resumed from a checkpoint has the start stamp of its last attempt and train_seconds
    summed over all attempts: it counts at its measured time, and the split stays non-negative."""
    out = tmp_path / "results"
    whole, resumed = unit_record("rte", "vanilla", 1, 70.0), unit_record("rte", "vanilla", 2, 71.0)
    whole.update(started_at="2026-01-01T10:00:00+00:00", finished_at="2026-01-01T10:01:40+00:00",
                 train_seconds=98.0, prepare_seconds=1.0)
    resumed.update(started_at="2026-01-01T11:00:00+00:00", finished_at="2026-01-01T11:01:00+00:00",
                   train_seconds=200.0, prepare_seconds=0.0)
    write_runs(out, whole, resumed)
    frame = aggregate("unit", out, experiment_file=spec)
    assert cell(frame, "rte", "vanilla")["seconds_mean"] == pytest.approx((100 + 200) / 2)
    md = (out / "unit" / "table.md").read_text()
    assert "1 record(s) resumed from a checkpoint (tiny_bert.rte.vanilla.s2.0000000000)" in md
    assert "summed over 2 of 2 record(s): 300 s" in md
    assert "everything else (imports, loading data and weights, tokenising, writing) 0.3%" in md


def test_a_runs_time_includes_its_target_records_scored_after_its_record(tmp_path, spec):
    """A run writes its record, then scores its targets, each into a target record: the run's time
    is its stamps plus those records' seconds, so the split adds up (nothing left over below zero)."""
    from childtuning import target_records

    out = tmp_path / "results"
    run = unit_record("rte", "vanilla", 1, 70.0)
    run.update(started_at="2026-01-01T10:00:00+00:00", finished_at="2026-01-01T10:01:40+00:00",
               train_seconds=95.0, prepare_seconds=0.0)
    write_runs(out, run)
    entry = {"task": "sick", "split": "test", "label_map": {"name": "nli3", "pairs": {"0": "0"}}}
    target_records.write(out, {**run, "experiment": "unit"}, entry,
                         {"metrics": {"accuracy": 60.0}, "main_metric": "accuracy", "reason": None, "size": 10,
                          "fingerprint": "f", "seconds": 30.0})
    aggregate("unit", out, experiment_file=spec)
    md = (out / "unit" / "table.md").read_text()
    assert "plus its target records' seconds) summed over 1 of 1 record(s): 130 s" in md
    assert "target evaluation 23.1%" in md                                  # 30 of 130 s
    assert "writing) 3.8%, median 5 s per run" in md                       # 130 - 95 - 30
    # the span ends at the last target record, not at the run record written before it
    scored = json.loads(next((out / "unit" / "targets").glob("*.json")).read_text())["evaluated_at"]
    assert scored > run["finished_at"]
    assert f"started 2026-01-01T10:00:00+00:00, last finished {scored} (the span includes the target records" in md


@pytest.mark.slow
def test_child_network_section_averages_kept_fraction_per_layer(tmp_path, spec):
    out = tmp_path / "results"
    runs = [unit_record("rte", "child_tuning_d", seed, 70.0) for seed in (1, 2)]
    runs[0]["method_stats"] = {"kept_fraction_per_layer": {"layer.10": 0.5, "layer.2": 0.1}}
    runs[1]["method_stats"] = {"kept_fraction_per_layer": {"layer.10": 0.3, "layer.2": 0.2}}
    write_runs(out, *runs, unit_record("rte", "vanilla", 1, 70.0))
    aggregate("unit", out, experiment_file=spec)
    md = (out / "unit" / "table.md").read_text()
    assert "| model | task | method | runs | layer.2 | layer.10 |" in md          # natural layer order
    assert "| tiny_bert | rte | child_tuning_d | 2 | 15.0 | 40.0 |" in md
    assert "| tiny_bert | rte | vanilla |" not in md.split("## Child network")[1]

    write_runs(tmp_path / "plain", unit_record("rte", "vanilla", 1, 70.0))
    aggregate("unit", tmp_path / "plain", experiment_file=spec)
    assert "## Child network" not in (tmp_path / "plain" / "unit" / "table.md").read_text()


@pytest.mark.slow
def test_difference_to_baseline_matches_scipy(results, spec):
    """Paired by seed (the default design): Δ is the mean paired difference over the seeds scored on
    both sides, with scipy's paired t interval and paired t-test."""
    frame = aggregate("unit", results, experiment_file=spec)
    ct = cell(frame, "rte", "child_tuning_d")
    # seeds 1 and 2 are scored on both sides (seed 3 diverged under child_tuning_d)
    paired = stats.ttest_rel(CT_RTE_SCORED, VANILLA_RTE[:2])
    assert ct["delta_vs_baseline"] == pytest.approx((75 - 60 + 50 - 70) / 2)       # not 62.5 - 70.0
    assert (ct["ci_low"], ct["ci_high"]) == pytest.approx(tuple(paired.confidence_interval(0.95)))
    assert ct["p"] == pytest.approx(paired.pvalue)
    assert ct["seeds_better"] == "1/2"
    for column in ("delta_vs_baseline", "p", "p_holm", "ci_low", "ci_high"):
        assert math.isnan(cell(frame, "rte", "vanilla")[column])        # the baseline is not compared to itself
        assert math.isnan(cell(frame, "mrpc", "child_tuning_d")[column])  # no scores on one side
    md = (results / "unit" / "table.md").read_text()
    assert "| 95% CI | p | p (Holm) | seeds better |" in md and "Welch" not in md
    assert "Student t interval of the mean paired difference" in md and "p: paired t-test" in md


@pytest.mark.slow
def test_the_average_row_is_tested_on_each_seeds_average_over_the_tasks(tmp_path, spec):
    """Avg: the paired interval and test over each seed's average over the tasks, seeds scored on
    every task only (a seed that lacks a task drops out), inside the one Holm family."""
    from childtuning.report.inference import holm
    from childtuning.report.text import p_value, signed

    van = {"rte": [60.0, 70.0, 80.0, 65.0], "mrpc": [80.0, 84.0, 82.0, 81.0]}
    ct = {"rte": [66.0, 71.0, 86.0, 70.0], "mrpc": [81.0, 85.0, 84.0, None]}     # seed 4: mrpc diverged
    out = tmp_path / "results"
    write_runs(out, *(unit_record(t, "vanilla", seed, v) for t, values in van.items() for seed, v in enumerate(values, 1)),
               *(unit_record(t, "child_tuning_d", seed, v, "ok" if v is not None else "diverged")
                 for t, values in ct.items() for seed, v in enumerate(values, 1)))
    aggregate("unit", out, experiment_file=spec)
    md = (out / "unit" / "table.md").read_text()
    avg_van = [(r + m) / 2 for r, m in zip(van["rte"], van["mrpc"])]
    avg_ct = [(r + m) / 2 for r, m in zip(ct["rte"][:3], ct["mrpc"][:3])]
    pair = stats.ttest_rel(avg_ct, avg_van[:3])
    low, high = pair.confidence_interval(0.95)
    family = [stats.ttest_rel(ct["rte"], van["rte"]).pvalue, stats.ttest_rel(ct["mrpc"][:3], van["mrpc"][:3]).pvalue,
              pair.pvalue]                                    # rte, mrpc and Avg: one family of three
    delta = sum(a - b for a, b in zip(avg_ct, avg_van)) / 3     # the mean paired difference, seeds 1-3
    row = (f"| tiny_bert | child_tuning_d | Avg | {signed(delta)} | [{signed(low)}, {signed(high)}] | "
           f"{p_value(pair.pvalue)} | {p_value(holm(family)[2])} | 3/3 |")
    assert row in md, md
    assert "m = 3: every comparison of this table that has a p-value" in md


@pytest.mark.slow
def test_combinations_are_compared_with_each_part_they_add_to(tmp_path):
    """A table with `a+b`, `a` and `b` rows gets a section comparing a+b with b (what a adds) and
    with a (what b adds), seed-paired, in the table's one Holm family; a table without
    combinations has no such section."""
    from childtuning.report.inference import holm
    from childtuning.report.text import p_value

    path = tmp_path / "unit.yaml"
    path.write_text(UNIT_EXPERIMENT_YAML.replace("method: vanilla,child_tuning_d",
                                            "method: vanilla,mixout,child_tuning_d,child_tuning_d+mixout"))
    out = tmp_path / "results"
    scores = {"vanilla": [70.0, 72.0, 71.0], "mixout": [71.0, 74.0, 70.0], "child_tuning_d": [73.0, 73.0, 75.0],
              "child_tuning_d+mixout": [74.0, 77.0, 72.5]}
    write_runs(out, *(unit_record("rte", m, seed, v) for m, values in scores.items() for seed, v in enumerate(values, 1)))
    aggregate("unit", out, experiment_file=path)
    md = (out / "unit" / "table.md").read_text()
    section = md.split("## What each part of a combination adds")[1].split("\n## ")[0]
    combo = scores["child_tuning_d+mixout"]
    against_vanilla = [stats.ttest_rel(scores[m], scores["vanilla"]).pvalue
                       for m in ("mixout", "child_tuning_d", "child_tuning_d+mixout")]
    adds_ct = stats.ttest_rel(combo, scores["mixout"]).pvalue
    adds_mixout = stats.ttest_rel(combo, scores["child_tuning_d"]).pvalue
    # one family: the three rte comparisons with vanilla and the two combinations (mrpc and the
    # averages have no scores, so no p-value)
    *_, holm_ct, holm_mixout = holm(against_vanilla + [adds_ct, adds_mixout])
    assert ("| tiny_bert | child_tuning_d+mixout | child_tuning_d | mixout | rte | +2.83 |" in section
            and f"{p_value(adds_ct)} | {p_value(holm_ct)} | 3/3 |" in section)
    assert ("| tiny_bert | child_tuning_d+mixout | mixout | child_tuning_d | rte | +0.83 |" in section
            and f"{p_value(adds_mixout)} | {p_value(holm_mixout)} | 2/3 |" in section)
    assert "mrpc" not in section                         # no records there on either side
    assert "m = 5: every comparison" in md
    write_runs(tmp_path / "plain", unit_record("rte", "vanilla", 1, 70.0), unit_record("rte", "mixout", 1, 71.0))
    aggregate("unit", tmp_path / "plain", experiment_file=path)
    assert "## What each part" not in (tmp_path / "plain" / "unit" / "table.md").read_text()


@pytest.mark.slow
def test_table_md_lists_missing_runs_and_unknowns(results, spec):
    aggregate("unit", results, experiment_file=spec)
    md = (results / "unit" / "table.md").read_text()
    assert "| tiny_bert | vanilla | 70.00 ± 10.00 (3/3) | 69.50 |" in md
    assert "| tiny_bert | child_tuning_d | 62.50 ± 17.68 (1/3) | ? |" in md
    assert "## Missing runs (4 of 12 expected)" in md
    assert "- tiny_bert / mrpc / vanilla: seed 3" in md
    assert "- tiny_bert / mrpc / child_tuning_d: seed 1, 2, 3" in md
    # the average over tasks: (rte + mrpc) / 2 for vanilla; unknown while child_tuning_d has no mrpc mean
    row = next(line for line in md.splitlines() if line.startswith("| tiny_bert | vanilla |"))
    assert row.split(" | ")[-2] == f"{(70.0 + 82.0) / 2:.2f}"
    row = next(line for line in md.splitlines() if line.startswith("| tiny_bert | child_tuning_d |"))
    assert row.split(" | ")[-2] == "–"


@pytest.mark.slow
def test_records_outside_the_grid_are_aggregated_and_noted(results, spec):
    write_runs(results, unit_record("rte", "vanilla", 7, 65.0))   # a seed the grid does not declare
    frame = aggregate("unit", results, experiment_file=spec)
    assert cell(frame, "rte", "vanilla")["n"] == 4 and cell(frame, "rte", "vanilla")["mean"] == pytest.approx(68.75)
    md = (results / "unit" / "table.md").read_text()
    assert "1 record(s) outside the declared grid" in md and "tiny_bert.rte.vanilla.s7" in md


@pytest.mark.slow
def test_unreadable_and_temporary_files_are_skipped(results, spec, capsys):
    runs = results / "unit" / "runs"
    (runs / "truncated.json").write_text('{"schema_version": 1, "run_id": "x", "mod')
    (runs / "incomplete.json").write_text(json.dumps({"schema_version": 1, "run_id": "y"}))
    (runs / ".tiny_bert.rte.vanilla.s9.json.tmp123").write_text("{")     # a write in progress
    (runs / ".hidden.json").write_text("{")
    (runs / "notes.txt").write_text("not a record")
    frame = aggregate("unit", results, experiment_file=spec)
    assert frame["n"].sum() == 8                          # the eight real records, nothing else
    err = capsys.readouterr().err
    assert "truncated.json" in err and "incomplete.json: incomplete record" in err
    assert "tmp123" not in err and ".hidden" not in err
    assert "corrupt record, not counted (a relaunch sets it aside and reruns the run): truncated.json: not valid JSON" \
        in (results / "unit" / "table.md").read_text()


@pytest.mark.slow
def test_rerun_gives_byte_identical_outputs(results, spec):
    out = results / "unit"
    aggregate("unit", results, experiment_file=spec)
    names = ["table.csv", "table.md", "table.tex", "plots/rte.png", "plots/mrpc.png"]
    first = {n: (out / n).read_bytes() for n in names}
    aggregate("unit", results, experiment_file=spec)
    assert {n: (out / n).read_bytes() for n in names} == first
    header = first["table.csv"].decode().splitlines()[0].split(",")
    assert header[:8] == ["model", "task", "method", "metric", "mean", "std", "max", "n_ok"]
    assert {"n_failed", "n", "failed_by_status", "delta_vs_baseline", "p", "p_holm", "ci_low", "ci_high",
            "equivalent", "n_near_constant", "n_near_constant_unknown", "paper"} <= set(header)


def test_unknown_experiment_lists_the_available_ones(tmp_path):
    with pytest.raises(InputError, match=r"unknown experiment 'nope'.*Available experiments: .*smoke"):
        aggregate("nope", tmp_path)


@pytest.mark.slow
def test_no_records_says_where_and_how_to_make_them(tmp_path, spec, capsys):
    with pytest.raises(InputError, match=r"no run records .* in .*unit/runs.*python -m childtuning.train -m exp=unit"):
        aggregate("unit", tmp_path / "results", experiment_file=spec)
    assert main(["unit", "--results", str(tmp_path / "results"), "--experiment-file", str(spec)]) == 2
    assert "error: no run records" in capsys.readouterr().err


@pytest.mark.slow
def test_command_line_exit_codes(tmp_path, results, spec):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "childtuning.aggregate", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=120)
    bad = cli("nope", "--results", str(tmp_path))
    assert bad.returncode == 2 and "Available experiments" in bad.stderr and "Traceback" not in bad.stderr
    good = cli("unit", "--results", str(results), "--experiment-file", str(spec))
    assert good.returncode == 0, good.stderr
    assert "4 of 12 expected run(s) missing" in good.stdout
    assert good.stdout.endswith((results / "unit" / "table.md").read_text())


def lr_search_file(folder, sweep="      trainer.lr: 2e-5,1e-4\n", settings=""):
    """The unit experiment as a learning-rate search (rows [model, method, trainer.lr]), in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "unit.yaml"
    path.write_text(UNIT_EXPERIMENT_YAML.replace("rows: [model, method]", "rows: [model, method, trainer.lr]")
                    .replace("baseline: vanilla", "baseline: null")
                    .replace("      seed: range(1,4)\n", "      seed: range(1,4)\n" + sweep)
                    .replace("experiment: unit\n", "experiment: unit\n" + settings))
    return path


@pytest.mark.slow
def test_grid_comes_from_the_sweep_with_an_extra_row_axis(tmp_path):
    """A search table (rows: [model, method, trainer.lr]) splits cells by a config value; its grid,
    and so its missing runs, is the sweep: 2 tasks x 2 methods x 2 rates x 3 seeds."""
    path = lr_search_file(tmp_path / "experiments")
    runs = []
    for lr, values in ((2e-5, (60.0, 64.0)), (1e-4, (70.0,))):
        for seed, value in enumerate(values, start=1):
            r = unit_record("rte", "vanilla", seed, value)
            r["run_id"] += f"-lr{lr}"
            r["config"]["trainer"] = {"lr": lr}
            runs.append(r)
    write_runs(tmp_path, *runs)
    frame = aggregate("unit", tmp_path, experiment_file=path)
    assert list(frame[["task", "method", "trainer.lr"]].itertuples(index=False, name=None)) == [
        (task, method, lr) for task in ("rte", "mrpc") for method in ("vanilla", "child_tuning_d")
        for lr in ("2e-05", "0.0001")]                           # the sweep's order; 2e-5 matches 2e-05
    rte = frame[(frame["task"] == "rte") & (frame["method"] == "vanilla")]
    assert list(rte["mean"]) == [62.0, 70.0] and list(rte["n"]) == [2, 1]
    assert rte["delta_vs_baseline"].isna().all()                  # no baseline declared
    md = (tmp_path / "unit" / "table.md").read_text()
    assert "## Missing runs (21 of 24 expected)" in md
    assert "- tiny_bert / rte / vanilla / trainer.lr=0.0001: seed 2, 3" in md
    assert "- tiny_bert / mrpc / child_tuning_d / trainer.lr=2e-05: seed 1, 2, 3" in md
    assert "outside the declared grid" not in md


@pytest.mark.slow
def test_an_axis_not_swept_takes_the_experiments_value(tmp_path):
    """trainer.lr fixed in the experiment (not swept): one rate in the grid; a record at another rate is outside it."""
    path = lr_search_file(tmp_path / "experiments", sweep="", settings="trainer:\n  lr: 3.0e-5\n")
    on, off = unit_record("rte", "vanilla", 1, 70.0), unit_record("rte", "vanilla", 2, 60.0)
    on["config"]["trainer"], off["config"]["trainer"] = {"lr": 3e-5}, {"lr": 1e-3}
    off["run_id"] += "-off"
    write_runs(tmp_path, on, off)
    frame = aggregate("unit", tmp_path, experiment_file=path)
    assert list(dict.fromkeys(frame["trainer.lr"])) == ["3e-05", "0.001"]
    md = (tmp_path / "unit" / "table.md").read_text()
    assert "## Missing runs (11 of 12 expected)" in md and "1 record(s) outside the declared grid" in md


def test_a_swept_key_the_table_does_not_name_is_refused(tmp_path, results):
    path = lr_search_file(tmp_path / "experiments")
    path.write_text(path.read_text().replace("rows: [model, method, trainer.lr]", "rows: [model, method]"))
    with pytest.raises(InputError, match=r"sweeps trainer.lr, which the table does not name.*add trainer.lr to "
                                         r"table.rows"):
        aggregate("unit", results, experiment_file=path)


def test_a_declared_expected_grid_is_refused(tmp_path, results):
    path = tmp_path / "experiments" / "unit.yaml"
    path.parent.mkdir()
    path.write_text(UNIT_EXPERIMENT_YAML.replace("  paper:\n", "  expected:\n    seed: [1, 2]\n  paper:\n"))
    with pytest.raises(InputError, match=r"table.expected is no longer read.*delete table.expected"):
        aggregate("unit", results, experiment_file=path)


def test_experiment_name_must_be_the_file_name(tmp_path, results):
    path = tmp_path / "experiments" / "other.yaml"
    path.parent.mkdir()
    path.write_text(UNIT_EXPERIMENT_YAML)                               # says experiment: unit
    with pytest.raises(InputError, match=r"other.yaml sets experiment: 'unit', but an experiment's name is its "
                                         r"file name \('other'.*set `experiment: other`"):
        aggregate("other", results, experiment_file=path)
    right = tmp_path / "experiments" / "unit.yaml"
    right.write_text(UNIT_EXPERIMENT_YAML)
    with pytest.raises(InputError, match=r"is the file of experiment 'unit', not of 'nope'"):
        aggregate("nope", results, experiment_file=right)


def test_unknown_table_kind_lists_the_known_ones(tmp_path, results):
    path = tmp_path / "unit.yaml"
    path.write_text(UNIT_EXPERIMENT_YAML.replace("table:\n", "table:\n  kind: domain_transfer\n"))
    with pytest.raises(InputError, match=r"table.kind='domain_transfer' is unknown; known kinds: .*glue"):
        aggregate("unit", results, experiment_file=path)


@pytest.mark.parametrize("old,new,message", [
    ("  metric: main\n", "  metric: f_one\n", r"table.metric='f_one' is not a metric; use `main` .* or one of .*'f1'"),
    ("  statistic: mean\n", "  statistic: median\n", r"table.statistic='median' is not supported; use one of \['mean'\]"),
])
def test_a_misspelt_metric_or_statistic_is_refused_before_any_record_is_read(tmp_path, results, old, new, message):
    path = tmp_path / "unit.yaml"
    path.write_text(UNIT_EXPERIMENT_YAML.replace(old, new))
    with pytest.raises(InputError, match=message):
        aggregate("unit", results, experiment_file=path)
    assert not (tmp_path / "unit" / "table.md").exists()


@pytest.mark.slow
def test_a_registered_kind_renders_its_own_files(tmp_path, results):
    """A new table kind is a class registered by name; the shared code calls its hooks."""
    @register
    class Counts(TableKind):
        name = "counts_for_a_test"

        def summarize(self, spec, records, skipped):
            return SimpleNamespace(spec=spec, records=records, skipped=skipped, missing=[], n_expected=0, outside=[],
                                   cells=records.groupby("method").size().rename("n").reset_index())

        def render(self, summary):
            return {"table.md": "".join(f"{m}: {n}\n" for m, n in summary.cells.itertuples(index=False))}
    try:
        path = tmp_path / "unit.yaml"
        path.write_text(UNIT_EXPERIMENT_YAML.replace("table:\n", f"table:\n  kind: {Counts.name}\n"))
        aggregate("unit", results, experiment_file=path)
        assert (results / "unit" / "table.md").read_text() == "child_tuning_d: 3\nvanilla: 5\n"
    finally:
        KINDS.pop(Counts.name)


def test_an_experiment_without_a_file_gets_a_layout_inferred_from_its_records(tmp_path):
    """`experiment=mine` on the command line, no experiments/mine.yaml: rows model x method, columns
    task, vanilla as baseline, the grid = every combination of the values found, and table.md says so."""
    out = tmp_path / "results"
    write_runs(out, unit_record("rte", "child_tuning_d", 1, 75.0), unit_record("rte", "child_tuning_d", 2, 50.0),
               *(unit_record("rte", "vanilla", s, v) for s, v in zip((1, 2, 3), VANILLA_RTE)),
               unit_record("mrpc", "vanilla", 1, 80.0), experiment="mine")
    assert not (REPO / "experiments" / "mine.yaml").exists()
    frame = aggregate("mine", out)
    assert list(frame[["task", "method"]].itertuples(index=False, name=None)) == [
        ("mrpc", "vanilla"), ("mrpc", "child_tuning_d"), ("rte", "vanilla"), ("rte", "child_tuning_d")]
    assert cell(frame, "rte", "child_tuning_d")["delta_vs_baseline"] == pytest.approx((75 - 60 + 50 - 70) / 2)
    md = (out / "mine" / "table.md").read_text()
    assert "Layout inferred from the records: no experiments/mine.yaml." in md
    assert "no experiment file declares these comparisons: the defaults" in md
    assert "| model | method | mrpc | mrpc (paper) | rte | rte (paper) | Avg | Avg (paper) |" in md
    assert "## Missing runs (6 of 12 expected)" in md and "- tiny_bert / rte / child_tuning_d: seed 3" in md


def test_an_experiment_without_a_file_and_without_records_is_unknown(tmp_path):
    (tmp_path / "mine" / "runs").mkdir(parents=True)
    (tmp_path / "mine" / "runs" / "broken.json").write_text("{")
    with pytest.raises(InputError, match=r"unknown experiment 'mine': there is no .*experiments/mine.yaml and no "
                                         r"run record in .*mine/runs \(1 corrupt file\(s\) not counted\)"):
        aggregate("mine", tmp_path)


def test_compute_lines_split_the_run_time():
    import pandas as pd

    from childtuning.report.markdown import split_lines

    frame = pd.DataFrame({"seconds": [100.0, 200.0], "train_seconds": [80.0, 150.0],
                          "prepare_seconds": [10.0, float("nan")], "target_seconds": [5.0, 20.0]})
    (line,) = split_lines(frame)
    assert "training (steps and dev evaluations) 76.7%" in line           # 230 of 300 s
    assert "Fisher pass) 3.3%" in line and "target evaluation 8.3%" in line
    assert "writing) 11.7%, median 18 s per run" in line                   # 5 s and 30 s left over: 17.5
    assert split_lines(frame.assign(train_seconds=float("nan"))) == []     # records without the field
    assert split_lines(frame.assign(seconds=0.0, train_seconds=0.0)) == []   # nothing to split, no warning
