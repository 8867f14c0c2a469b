"""Issue 16's report side: Holm-adjusted p-values, expected maximum performance, the curve table
kind (keep-ratio sweeps) and the overlap table kind (child networks of different tasks). The slow
tests aggregate (tables and plots written, several times); the fast ones summarize once, render, and
read the drawn figures back."""
import itertools
import json
import math
import shutil

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from scipy import stats

from childtuning.aggregate import aggregate, summarize
from childtuning.errors import InputError
from childtuning.report import registry
from childtuning.report.curve import plot_curves
from childtuning.report.emp import expected_max
from childtuning.report.inference import holm
from childtuning.report.overlap_render import plot_heatmaps, render_latex, render_markdown
from helpers.records import (MASK_NAMES, MASK_SHAPES, UNIT_EXPERIMENT_YAML, mask_record, unit_record,
                             write_runs, write_targets)


@pytest.fixture
def drawn(monkeypatch) -> dict:
    """The matplotlib figures the test saves, by file name (still written to disk)."""
    figures, save = {}, Figure.savefig

    def savefig(fig, path, *args, **kwargs):
        figures[path.name] = fig
        return save(fig, path, *args, **kwargs)
    monkeypatch.setattr(Figure, "savefig", savefig)
    return figures


# ----------------------------------------------------------------------------- Holm
def test_holm_matches_the_step_down_rule_by_hand():
    adjusted = holm([0.01, 0.04, 0.03, math.nan, 0.2])
    # m = 4 known: 0.01*4 = 0.04; 0.03*3 = 0.09; 0.04*2 = 0.08 -> 0.09 (monotone); 0.2*1 = 0.2
    assert adjusted[:3].tolist() == pytest.approx([0.04, 0.09, 0.09]) and math.isnan(adjusted[3])
    assert adjusted[4] == pytest.approx(0.2)
    assert holm([0.6, 0.5]).tolist() == [1.0, 1.0]                       # capped at 1
    assert holm([]).tolist() == []


@pytest.mark.slow
def test_comparison_tables_show_holm_beside_the_raw_p(tmp_path):
    spec = tmp_path / "unit.yaml"
    spec.write_text(UNIT_EXPERIMENT_YAML)
    results = tmp_path / "results"
    vals = {"vanilla": {"rte": [60, 62, 61], "mrpc": [80, 81, 79]},
            "child_tuning_d": {"rte": [70, 73, 71], "mrpc": [80, 82, 80]}}
    write_runs(results, *(unit_record(t, m, s, v) for m, by in vals.items() for t, vs in by.items()
                          for s, v in zip((1, 2, 3), vs)))
    cells = aggregate("unit", results, experiment_file=spec)
    d = cells[cells["method"] == "child_tuning_d"].set_index("task")
    avg_ct = [(a + b) / 2 for a, b in zip(vals["child_tuning_d"]["rte"], vals["child_tuning_d"]["mrpc"])]
    avg_van = [(a + b) / 2 for a, b in zip(vals["vanilla"]["rte"], vals["vanilla"]["mrpc"])]
    avg_p = stats.ttest_rel(avg_ct, avg_van).pvalue
    raw = d.loc[["rte", "mrpc"], "p"].tolist() + [avg_p]                # the Avg row is in the family
    assert d.loc[["rte", "mrpc"], "p_holm"].tolist() == pytest.approx(holm(raw)[:2].tolist())
    assert d.loc["mrpc", "p"] == pytest.approx(stats.ttest_rel([80, 82, 80], [80, 81, 79]).pvalue)
    md = (results / "unit" / "table.md").read_text()
    assert "| p | p (Holm) |" in md and "m = 3: every comparison of this table" in md


# ----------------------------------------------------------------------------- EMP
@pytest.mark.parametrize("values", [[1.0, 2.0, 2.0, 5.0], [3.0], [0.5, 0.25, 0.75]])
def test_expected_max_is_the_mean_of_the_max_over_all_draws(values):
    for n in (1, 2, 3):
        maxima = [max(draw) for draw in itertools.product(values, repeat=n)]   # every draw, equally likely
        mean, std = expected_max(values + [math.nan], n)                       # an unscored run is left out
        assert mean == pytest.approx(np.mean(maxima)) and std == pytest.approx(np.std(maxima))
    assert expected_max(values, 1)[0] == pytest.approx(np.mean(values))


@pytest.mark.slow
def test_emp_section_and_plots_per_task(tmp_path):
    spec = tmp_path / "unit.yaml"
    spec.write_text(UNIT_EXPERIMENT_YAML)
    results = tmp_path / "results"
    write_runs(results, *(unit_record("rte", m, s, v)
                          for m, vs in (("vanilla", [60, 70, 80]), ("child_tuning_d", [65, 66, 67]))
                          for s, v in zip((1, 2, 3), vs)))
    aggregate("unit", results, experiment_file=spec)
    md = (results / "unit" / "table.md").read_text()
    section = md.split("## Expected maximum performance")[1].split("##")[0]
    assert "| tiny_bert | rte | vanilla | 3 | 70.00 | " + f"{expected_max([60, 70, 80], 2)[0]:.2f}" in section
    assert (results / "unit" / "plots" / "emp_rte.png").is_file()


# ----------------------------------------------------------------------------- curve kind
CURVE_YAML = """\
# @package _global_
defaults:
  - override /model: tiny_bert
  - override /method: child_tuning_d
experiment: curve
hydra:
  sweeper:
    params:
      task: rte
      method.keep_ratio: 0.1,0.5,1.0
      seed: 1,2
table:
  kind: curve
  rows: [model, method, method.keep_ratio]
  x: method.keep_ratio
  reference: {at: 1.0, label: "= vanilla"}
  columns: task
  baseline: {method.keep_ratio: 1.0}
"""


def curve_records(status: dict | None = None) -> list[dict]:
    """RTE records of CURVE_YAML's grid: means 51, 60.5 and 71 at keep ratios 0.1, 0.5 and 1; `status`
    maps (keep ratio, seed) to another status than ok."""
    recs = []
    for keep, vals in ((0.1, [50, 52]), (0.5, [60, 61]), (1.0, [70, 72])):
        for seed, v in zip((1, 2), vals):
            r = unit_record("rte", "child_tuning_d", seed, v, status=(status or {}).get((keep, seed), "ok"))
            r["run_id"] = f"tiny_bert.rte.child_tuning_d.s{seed}.k{keep}"
            r["config"]["method"] = {"keep_ratio": keep}
            recs.append(r)
    return recs


@pytest.mark.slow
def test_curve_kind_plots_score_against_the_axis_and_compares_with_the_reference(tmp_path):
    spec = tmp_path / "curve.yaml"
    spec.write_text(CURVE_YAML)
    results = tmp_path / "results"
    write_runs(results, *curve_records(), experiment="curve")
    cells = aggregate("curve", results, experiment_file=spec).set_index("method.keep_ratio")
    assert cells.loc["0.1", "delta_vs_baseline"] == pytest.approx(51 - 71)
    assert math.isnan(cells.loc["1", "delta_vs_baseline"])                   # the reference itself
    assert (results / "curve" / "plots" / "rte.png").is_file() and (results / "curve" / "plots" / "emp_rte.png").is_file()
    spec.write_text(CURVE_YAML.replace("  x: method.keep_ratio\n", ""))
    with pytest.raises(InputError, match="needs table.x"):
        aggregate("curve", results, experiment_file=spec)
    spec.write_text(CURVE_YAML.replace("  x: method.keep_ratio\n", "  x: method.keep_ratio\n  x_scale: logarithmic\n"))
    with pytest.raises(InputError, match="x_scale must be one of"):
        aggregate("curve", results, experiment_file=spec)
    spec.write_text(CURVE_YAML.replace("  x: method.keep_ratio\n", "  x: method.keep_ratio\n  x_scale: log\n"))
    (results / "curve" / "plots" / "rte.png").unlink()
    aggregate("curve", results, experiment_file=spec)
    assert (results / "curve" / "plots" / "rte.png").is_file()



def test_curve_kind_renders_a_row_per_x_and_draws_each_line_at_its_means(tmp_path, drawn):
    spec = tmp_path / "curve.yaml"
    spec.write_text(CURVE_YAML.replace("  x: method.keep_ratio\n", "  x: method.keep_ratio\n  x_scale: log\n"))
    results = tmp_path / "results"
    write_runs(results, *curve_records({(0.1, 2): "degenerate"}), experiment="curve")
    s = summarize("curve", results, experiment_file=spec)
    assert s.rows == [("tiny_bert", "child_tuning_d", k) for k in ("0.1", "0.5", "1")]
    md = registry.get("curve").render(s)["table.md"]
    assert "| tiny_bert | child_tuning_d | 0.1 | 51.00 ± 1.41 (1/2) |" in md      # the degenerate seed counts
    assert "| tiny_bert | child_tuning_d | 0.5 | 60.50 ± 0.71 (2/2) |" in md

    assert plot_curves(s, tmp_path / "plots") == [tmp_path / "plots" / "rte.png"]
    assert (tmp_path / "plots" / "rte.png").is_file()
    ax = drawn["rte.png"].axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "method.keep_ratio" and ax.get_ylabel() == "accuracy"
    (curve,) = ax.containers                                          # one line: one method
    xs, means = curve.lines[0].get_data()
    assert xs.tolist() == [0.1, 0.5, 1.0] and means.tolist() == [51.0, 60.5, 71.0]
    bars = [seg[1][1] - seg[0][1] for seg in curve.lines[2][0].get_segments()]
    assert bars == pytest.approx([2 * np.std([50, 52], ddof=1), 2 * np.std([60, 61], ddof=1), 2 * np.std([70, 72], ddof=1)])
    (reference,) = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert list(reference.get_ydata()) == [71.0, 71.0]                 # the line's mean at x = 1, across the plot
    assert any(text.get_text().endswith(": = vanilla") for text in ax.get_legend().get_texts())
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]   # one scatter dot per seed
    assert sorted(tuple(c.get_offsets()[0]) for c in dots) == [(0.1, 50), (0.1, 52), (0.5, 60), (0.5, 61),
                                                               (1.0, 70), (1.0, 72)]
    orange = [tuple(c.get_offsets()[0]) for c in dots if np.allclose(c.get_facecolor()[0][:3], (1.0, 0.498, 0.055),
                                                                     atol=1e-3)]
    assert orange == [(0.1, 52)]                                       # tab:orange: the degenerate seed

    no_x = CURVE_YAML.replace("  x: method.keep_ratio\n", "")
    bad_scale = CURVE_YAML.replace("  x: method.keep_ratio\n", "  x: method.keep_ratio\n  x_scale: logarithmic\n")
    bad_reference = CURVE_YAML.replace('  reference: {at: 1.0, label: "= vanilla"}\n', "  reference: 1.0\n")
    for text, message in ((no_x, "needs table.x"), (bad_scale, "x_scale must be one of"),
                          (bad_reference, "table.reference must be")):
        spec.write_text(text)
        with pytest.raises(InputError, match=message):
            summarize("curve", results, experiment_file=spec)


# ----------------------------------------------------------------------------- overlap kind
OVERLAP_YAML = """\
# @package _global_
defaults:
  - override /model: tiny_bert
  - override /method: child_tuning_d
experiment: ov
trainer: {epochs: 0}
hydra:
  sweeper:
    params:
      task: rte,mrpc
      seed: 1,2
table:
  kind: overlap
  rows: [model, method]
  columns: task
"""
@pytest.fixture
def masks():
    rng = np.random.default_rng(0)
    return {(t, s): rng.random(32) < 0.5 for t in ("rte", "mrpc") for s in (1, 2)}


def pair_means(masks, ta, tb, part=slice(None)) -> tuple[float, float]:
    """By hand: the mean overlap |A ∩ B| / |A| and Jaccard of task ta's child networks (A) with task
    tb's (B) over the pairs of different seeds, within the weights `part`."""
    pairs = [(masks[(ta, i)][part], masks[(tb, j)][part]) for i in (1, 2) for j in (1, 2) if i != j]
    return (np.mean([(a & b).sum() / a.sum() for a, b in pairs]),
            np.mean([(a & b).sum() / (a | b).sum() for a, b in pairs]))


@pytest.mark.slow
def test_overlap_matrix_noise_ceiling_and_layers(tmp_path, masks):
    spec = tmp_path / "ov.yaml"
    spec.write_text(OVERLAP_YAML)
    results = tmp_path / "results"
    for (t, s), m in masks.items():
        mask_record(results, t, s, m)
    aggregate("ov", results, experiment_file=spec)
    cells = __import__("pandas").read_csv(results / "ov" / "table.csv")

    for ta, tb in itertools.product(("rte", "mrpc"), repeat=2):
        row = cells[(cells["task_a"] == ta) & (cells["task_b"] == tb) & (cells["layer"] == "all")].iloc[0]
        ov, jac = pair_means(masks, ta, tb)
        assert row["overlap_mean"] == pytest.approx(ov) and row["jaccard_mean"] == pytest.approx(jac)
        assert row["n_pairs"] == 2                                 # pairs of different seeds only
        layer1 = cells[(cells["task_a"] == ta) & (cells["task_b"] == tb) & (cells["layer"] == "layer.1")].iloc[0]
        assert layer1["overlap_mean"] == pytest.approx(pair_means(masks, ta, tb, slice(20, 32))[0])
    md = (results / "ov" / "table.md").read_text()
    assert "## Noise ceiling and chance" in md and "## Per layer" in md
    same_seed = np.mean([(masks[("rte", i)] & masks[("mrpc", i)]).sum() / masks[("rte", i)].sum() for i in (1, 2)])
    assert f"| rte | {100 * pair_means(masks, 'rte', 'rte')[0]:.1f} ± " in md and f"| {100 * same_seed:.1f} (2) |" in md
    assert all((results / "ov" / "plots" / f).is_file() for f in ("overlap.png", "overlap_per_layer.png"))

    # without the masks the tables rebuild from the saved counts, byte for byte
    before = {n: (results / "ov" / n).read_text() for n in ("table.md", "table.csv", "table.tex")}
    shutil.rmtree(results / "ov" / "artifacts")
    aggregate("ov", results, experiment_file=spec)
    assert {n: (results / "ov" / n).read_text() for n in before} == before
    # a counts file that does not belong to the records is not used
    counts = json.loads((results / "ov" / "mask_overlap_counts.json").read_text())
    first = sorted(counts["runs"])[0]
    counts["runs"][first]["sha256"] = "0" * 64
    (results / "ov" / "mask_overlap_counts.json").write_text(json.dumps(counts))
    with pytest.raises(InputError, match="no mask"):
        aggregate("ov", results, experiment_file=spec)


def test_overlap_tables_and_heat_maps_show_the_pairs_means(tmp_path, masks, drawn):
    spec = tmp_path / "ov.yaml"
    spec.write_text(OVERLAP_YAML)
    results = tmp_path / "results"
    for (task, seed), mask in masks.items():
        mask_record(results, task, seed, mask)
    s = summarize("ov", results, experiment_file=spec)
    md, tex = render_markdown(s), render_latex(s)
    tasks = ("rte", "mrpc")
    means = {(a, b): pair_means(masks, a, b) for a in tasks for b in tasks}

    def row(a, stat, sep=" | "):
        return sep.join([a] + [f"{100 * means[(a, b)][stat]:.1f}" for b in tasks])
    overlap, jaccard = md.split("## Overlap |A ∩ B| / |A| (%)")[1].split("## Jaccard")
    assert "| A \\ B | rte | mrpc |" in overlap
    assert all(f"| {row(a, 0)} |" in overlap and f"| {row(a, 1)} |" in jaccard for a in tasks)
    assert all(f"{row(a, 0, ' & ')} \\\\" in tex for a in tasks) and "\\begin{tabular}{lrr}" in tex
    # the noise ceiling (same task, other seed: mean ± std over its two ordered pairs) and the same-seed pairs
    ceiling = [(masks[("rte", i)] & masks[("rte", j)]).sum() / masks[("rte", i)].sum() for i, j in ((1, 2), (2, 1))]
    same_seed = np.mean([(masks[("rte", i)] & masks[("mrpc", i)]).sum() / masks[("rte", i)].sum() for i in (1, 2)])
    assert (f"| rte | {100 * np.mean(ceiling):.1f} ± {100 * np.std(ceiling, ddof=1):.1f} (2) | "
            f"{100 * means[('rte', 'mrpc')][0]:.1f} (2) | {100 * same_seed:.1f} (2) |") in md
    # per layer: its eligible weights and the overlap within it
    layer1 = {(a, b): pair_means(masks, a, b, slice(20, 32))[0] for a in tasks for b in tasks}
    same = np.mean([layer1[("rte", "rte")], layer1[("mrpc", "mrpc")]])
    other = np.mean([layer1[("rte", "mrpc")], layer1[("mrpc", "rte")]])
    per_layer = md.split("## Per layer")[1]
    assert "| layer.0 | 20 |" in per_layer and f"| {100 * same:.1f} | {100 * other:.1f} |" in \
        per_layer.split("| layer.1 | 12 |")[1].splitlines()[0]

    assert plot_heatmaps(s, tmp_path / "plots") == [tmp_path / "plots" / n for n in ("overlap.png", "overlap_per_layer.png")]
    shown = [ax.images[0].get_array() for ax in drawn["overlap.png"].axes if ax.images]
    expected = [[[100 * means[(a, b)][k] for b in tasks] for a in tasks] for k in (0, 1)]
    assert len(shown) == 2 and all(np.allclose(m, e) for m, e in zip(shown, expected))
    per_layer_shown = [ax.images[0].get_array() for ax in drawn["overlap_per_layer.png"].axes if ax.images]
    assert len(per_layer_shown) == 2 and np.allclose(per_layer_shown[1], [[100 * layer1[(a, b)] for b in tasks]
                                                                          for a in tasks])


@pytest.mark.parametrize("field,value", [("keep", 0.3), ("size", 200)])
def test_overlap_refuses_child_networks_built_under_other_settings(tmp_path, masks, field, value):
    spec = tmp_path / "ov.yaml"
    spec.write_text(OVERLAP_YAML)
    results = tmp_path / "results"
    for (t, s), m in masks.items():
        odd = (t, s) == ("mrpc", 2)
        mask_record(results, t, s, m, **({field: value} if odd else {}))
    name = {"keep": "keep_ratio", "size": "train_size"}[field]
    with pytest.raises(InputError, match=f"different {name}"):
        aggregate("ov", results, experiment_file=spec)


def test_overlap_refuses_a_mask_that_is_not_the_records(tmp_path, masks):
    spec = tmp_path / "ov.yaml"
    spec.write_text(OVERLAP_YAML)
    results = tmp_path / "results"
    rids = [mask_record(results, t, s, m) for (t, s), m in masks.items()]
    folder = results / "ov" / "artifacts" / rids[0]
    np.savez_compressed(folder / "child_mask.npz", bits=np.packbits(~masks[("rte", 1)]), names=np.array(MASK_NAMES),
                        shapes=np.array([str(s) for s in MASK_SHAPES]))
    with pytest.raises(InputError, match="SHA-256 differs"):
        aggregate("ov", results, experiment_file=spec)


def test_transfer_tables_adjust_their_comparisons_too(tmp_path):
    spec = tmp_path / "dt.yaml"
    spec.write_text("""# @package _global_
defaults:
  - override /model: tiny_bert
experiment: dt
hydra:
  sweeper:
    params:
      method: vanilla,child_tuning_d
      seed: 1,2,3
table:
  kind: transfer
  rows: [model, method]
  columns: target
  baseline: vanilla
""")
    recs = []
    for method, shift in (("vanilla", 0.0), ("child_tuning_d", 5.0)):
        for seed, v in zip((1, 2, 3), (60.0, 62.0, 65.0)):
            r = unit_record("rte", method, seed, v + shift * (1 + seed / 10))
            r.update(experiment="dt")
            target = {"main_metric": "f1", "metrics": {"f1": 70 + seed + shift * seed}}
            if method == "child_tuning_d" and seed == 1:     # a run flagged on its own dev set, not on the target
                r["near_constant"], target["near_constant"] = True, False
            write_targets(tmp_path, "dt", r, {"mrpc:dev": target})
            recs.append(r)
    write_runs(tmp_path, *recs, experiment="dt")
    cells = aggregate("dt", tmp_path, spec)
    d = cells[cells["method"] == "child_tuning_d"]
    assert d["p"].notna().all()                                          # two comparisons: a family of two
    assert d["p_holm"].tolist() == pytest.approx(holm(d["p"]).tolist())
    assert cells.loc[cells["method"] == "vanilla", "p_holm"].isna().all()
    md = (tmp_path / "dt" / "table.md").read_text()
    assert "| p | p (Holm) |" in md and "m = 2: every comparison of this table" in md
    flagged = d.set_index("target")[["n_near_constant", "n_near_constant_unknown"]]
    assert flagged.loc["in-domain (dev)"].tolist() == [1, 2] and flagged.loc["mrpc:dev"].tolist() == [0, 2]
    assert "| 1 (+2 unknown) |" in md and "(10 of the 12 run × target scores)" in md


@pytest.mark.slow
def test_task_transfer_tables_adjust_their_comparisons_too(tmp_path):
    from helpers.transfer import write_synthetic

    write_synthetic(tmp_path / "results")
    s = summarize("task_transfer_smoke", tmp_path / "results")
    cells = aggregate("task_transfer_smoke", tmp_path / "results")
    assert cells["p"].notna().sum() >= 2                                  # a family to adjust
    family = np.concatenate([cells["p"].to_numpy(dtype=float), s.averages["p"].to_numpy(dtype=float)])
    assert cells["p_holm"].tolist() == pytest.approx(holm(family)[:len(cells)].tolist(), nan_ok=True)
    assert s.averages["p_holm"].tolist() == pytest.approx(holm(family)[len(cells):].tolist(), nan_ok=True)
    assert "| p | p (Holm) |" in (tmp_path / "results" / "task_transfer_smoke" / "table.md").read_text()
