"""The task-transfer table kind on synthetic records: per-source means first, then over source
seeds; the pretrained reference over head seeds; Δ with the paired test; the source's own score;
gaps; byte-identical outputs."""
import math

import numpy as np
import pytest
from scipy import stats

from childtuning.aggregate import aggregate
from childtuning.errors import InputError
from childtuning.report import summarize

from helpers.paths import REPO
from helpers.transfer import PROBES, SOURCES, probe_record, write_records, write_synthetic

EXP = "task_transfer_smoke"


def cell(frame, method, target):
    rows = frame[(frame["method"] == method) & (frame["target"] == target)]
    assert len(rows) == 1
    return rows.iloc[0]


def per_source(method, target):
    """The per-source scores the table should use: each source seed's mean over its scored heads."""
    return [np.mean([v for v in PROBES[(method, s, target)] if v is not None]) for s in (1, 2)]


@pytest.fixture
def results(tmp_path):
    write_synthetic(tmp_path / "results")
    return tmp_path / "results"


@pytest.mark.slow
def test_head_seeds_are_averaged_within_a_source_seed_first(results):
    frame = aggregate(EXP, results)
    v = cell(frame, "vanilla", "mrpc")
    # vanilla s1 has one scored head (60), s2 two (70, 80): mean of per-source means = (60 + 75) / 2,
    # not the pooled mean of the three heads (70)
    assert v["mean"] == pytest.approx(67.5) and v["std"] == pytest.approx(np.std([60.0, 75.0], ddof=1))
    assert (v["n_sources"], v["n_sources_scored"], v["n_probes"], v["n_scored"]) == (2, 2, 4, 3)
    assert (v["n_ok"], v["n_failed"], v["failed_by_status"]) == (3, 1, "diverged:1")
    assert v["spread"] == "source seeds" and v["metric"] == "f1"
    ct = cell(frame, "child_tuning_d", "mrpc")        # the degenerate head keeps its score
    assert ct["mean"] == pytest.approx(np.mean(per_source("child_tuning_d", "mrpc")))
    assert ct["failed_by_status"] == "degenerate:1" and ct["n_scored"] == 4


@pytest.mark.slow
def test_pretrained_reference_spreads_over_head_seeds(results):
    frame = aggregate(EXP, results)
    ref = cell(frame, "pretrained", "stsb")
    assert (ref["mean"], ref["std"]) == pytest.approx((12.0, np.std([10.0, 14.0], ddof=1)))
    assert ref["spread"] == "head seeds" and (ref["n_sources"], ref["n_probes"]) == (1, 2)
    # its difference to vanilla is given, its tests are not (head seeds vs source seeds)
    assert ref["delta_vs_baseline"] == pytest.approx(12.0 - np.mean(per_source("vanilla", "stsb")))
    assert math.isnan(ref["p"]) and math.isnan(ref["p_holm"]) and math.isnan(ref["ci_low"])


@pytest.mark.slow
def test_difference_to_vanilla_uses_the_report_statistics(results):
    frame = aggregate(EXP, results)
    ct, base = per_source("child_tuning_d", "stsb"), per_source("vanilla", "stsb")
    c = cell(frame, "child_tuning_d", "stsb")
    paired = stats.ttest_rel(ct, base)                      # paired by source seed (the declared default)
    assert c["delta_vs_baseline"] == pytest.approx(np.mean(np.subtract(ct, base)))
    assert (c["ci_low"], c["ci_high"]) == pytest.approx(tuple(paired.confidence_interval(0.95)))
    assert c["p"] == pytest.approx(paired.pvalue) and c["seeds_better"] == "2/2"
    assert math.isnan(cell(frame, "vanilla", "stsb")["delta_vs_baseline"])


@pytest.mark.slow
def test_the_average_row_is_tested_per_source_seed(results):
    """Avg: each source seed's average over the targets (its per-source scores) is one score, in the
    table's Holm family with the per-target comparisons."""
    from childtuning.report.inference import holm
    from childtuning.report.text import p_value, signed

    aggregate(EXP, results)
    md = (results / EXP / "table.md").read_text()
    seed_avg = {m: np.mean([per_source(m, t) for t in ("mrpc", "stsb")], axis=0) for m in ("vanilla", "child_tuning_d")}
    ct, base = seed_avg["child_tuning_d"], seed_avg["vanilla"]
    paired = stats.ttest_rel(ct, base)
    low, high = paired.confidence_interval(0.95)
    family = [stats.ttest_rel(per_source("child_tuning_d", t), per_source("vanilla", t)).pvalue
              for t in ("mrpc", "stsb")] + [paired.pvalue]
    row = (f"| tiny_bert | child_tuning_d | Avg | {signed((ct - base).mean())} | [{signed(low)}, {signed(high)}] | "
           f"{p_value(paired.pvalue)} | {p_value(holm(family)[2])} | {int((ct > base).sum())}/2 |")
    assert row in md, md
    ref = next(line for line in md.splitlines() if line.startswith("| tiny_bert | pretrained | Avg |"))
    assert ref.endswith("|" + " – |" * 4)               # one encoder: the difference only, no tests


@pytest.mark.slow
def test_source_score_sits_beside_the_transfer_scores(results):
    frame = aggregate(EXP, results)
    c = cell(frame, "child_tuning_d", "mrpc")
    assert (c["source_task"], c["source_metric"]) == ("rte", "accuracy")
    assert c["source_mean"] == pytest.approx(78.0) and c["source_std"] == pytest.approx(np.std([82.0, 74.0], ddof=1))
    assert (c["source_n_ok"], c["source_n"]) == (2, 2)
    assert cell(frame, "pretrained", "mrpc")["source_n"] == 0
    md = (results / EXP / "table.md").read_text()
    header = "| model | method | source: rte | mrpc | stsb | Avg |"
    assert header in md
    row = next(line for line in md.splitlines() if line.startswith("| tiny_bert | vanilla |"))
    assert row.startswith(f"| tiny_bert | vanilla | 75.00 ± {np.std([80.0, 70.0], ddof=1):.2f} (2/2) | 67.50 ± ")
    assert "| tiny_bert | pretrained | – | 52.00 ± 2.83 (2/2) | 12.00 ± 2.83 (2/2) | 32.00 |" in md
    assert md.index("| tiny_bert | pretrained |") < md.index("| tiny_bert | vanilla |") < md.index("| tiny_bert | child_tuning_d |")


@pytest.mark.slow
def test_all_outputs_and_byte_identical_rerun(results):
    aggregate(EXP, results)
    out = results / EXP
    first = {n: (out / n).read_text() for n in ("table.md", "table.csv", "table.tex")}
    assert {p.name for p in (out / "plots").glob("*.png")} == {"mrpc.png", "stsb.png"}
    assert "\\begin{tabular}{llrrrr}" in first["table.tex"] and "pretrained & --" in first["table.tex"]
    assert first["table.csv"].splitlines()[0].startswith("model,method,target,metric,mean,std,spread")
    png = (out / "plots" / "mrpc.png").read_bytes()
    aggregate(EXP, results)
    assert first == {n: (out / n).read_text() for n in first} and png == (out / "plots" / "mrpc.png").read_bytes()


@pytest.mark.slow
def test_missing_probes_and_sources_are_listed(tmp_path):
    results = tmp_path / "results"
    write_synthetic(results)
    (results / EXP / "runs" / "tiny_bert.rte.child_tuning_d.s2.0000000000.json").unlink()
    for path in (results / EXP / "probes").glob("tiny_bert.rte.child_tuning_d.s2.*stsb*"):
        path.unlink()
    write_records(results, probes=[probe_record("vanilla", 7, "mrpc", 1, 65.0)])     # outside the grid
    s = summarize(EXP, results)
    assert ("tiny_bert", "child_tuning_d", 2, "stsb", 1) in s.missing and len(s.missing) == 2
    assert s.missing_sources == [("tiny_bert", "rte", "child_tuning_d", 2)]
    assert s.n_expected == (2 * 2 + 1) * 2 * 2
    assert s.outside == ["tiny_bert.rte.vanilla.s7.0000000000.mrpc.h1.0000000000"]
    aggregate(EXP, results)
    md = (results / EXP / "table.md").read_text()
    assert "## Missing (2 of 20 expected probes)" in md
    assert "- source run without a record: tiny_bert / rte / child_tuning_d / 2" in md
    assert "- tiny_bert / child_tuning_d / seed 2: stsb/h1, stsb/h2" in md
    assert "1 probe record(s) outside the declared grid" in md


def test_no_probe_records_say_how_to_make_them(tmp_path):
    results = tmp_path / "results"
    write_records(results, sources=[], probes=[])
    write_synthetic(results)
    for path in (results / EXP / "probes").glob("*.json"):
        path.unlink()
    with pytest.raises(InputError, match=r"no probe records.*python -m childtuning.probe exp=task_transfer_smoke"):
        summarize(EXP, results)


def test_a_layout_the_kind_cannot_draw_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text((REPO / "experiments" / f"{EXP}.yaml").read_text()
                    .replace("columns: target", "columns: task").replace(f"experiment: {EXP}", "experiment: bad"))
    write_synthetic(tmp_path / "results", experiment="bad")
    with pytest.raises(InputError, match="task_transfer table has rows: \\[model, method\\], columns: target"):
        summarize("bad", tmp_path / "results", path)


def test_probes_and_sources_per_source_section(results):
    aggregate(EXP, results)
    md = (results / EXP / "table.md").read_text()
    assert "| tiny_bert | vanilla | 1 | tiny_bert.rte.vanilla.s1.0000000000 | ok | 80.00 | 60.00 (1/2) | 25.00 (2/2) |" in md
    assert "| tiny_bert | pretrained | – | (pretrained encoder) | – | – | 52.00 (2/2) | 12.00 (2/2) |" in md
    assert SOURCES[("vanilla", 1)] == 80.0
