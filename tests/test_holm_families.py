"""Families fixed before the runs (childtuning/report/family.py): records checked against the
declaration, amendments in the legend, a follow-up pooled with the family it joins, margins and
near-constant runs in the tables."""
import shutil

import numpy as np
import pandas as pd
import pytest

from childtuning import comparisons
from childtuning.aggregate import aggregate, summarize
from childtuning.errors import InputError
from childtuning.report.inference import holm
from helpers.records import UNIT_EXPERIMENT_YAML, cell, unit_record, write_runs
from helpers.studies import write_prior_methods_records

BLOCK = """\
  comparisons:
    design: paired
    margin: {margin}
{amended}"""
AMENDMENT = "    amended: [{date: 2026-12-05, reason: \"the margin was added after the runs\"}]\n"


def experiment(tmp_path, margin="null", amended=""):
    path = tmp_path / "unit.yaml"
    path.write_text(UNIT_EXPERIMENT_YAML + BLOCK.format(margin=margin, amended=amended))
    return path


def runs(digest):
    """rte: vanilla and child_tuning_d on seeds 1-3, stamped with `digest` (None: no key)."""
    out = []
    for method, values in (("vanilla", [60.0, 70.0, 80.0]), ("child_tuning_d", [60.4, 70.5, 80.45])):
        for seed, v in enumerate(values, 1):
            r = unit_record("rte", method, seed, v)
            r.pop("comparisons_digest")
            if digest is not None:
                r["comparisons_digest"] = digest
            out.append(r)
    return out


@pytest.mark.slow
def test_records_made_under_another_declaration_are_refused_unless_the_file_says_so(tmp_path):
    path = experiment(tmp_path, margin="1.0")
    current = comparisons.digest({"design": "paired", "margin": 1.0})
    write_runs(tmp_path / "same", *runs(current))
    aggregate("unit", tmp_path / "same", experiment_file=path)           # made under this declaration: fine

    for name, digest in (("older", comparisons.digest(None)), ("unstamped", None)):
        write_runs(tmp_path / name, *runs(digest))
        with pytest.raises(InputError, match=r"ran under another table.comparisons declaration.*amended: "
                                             r"\[\{date: YYYY-MM-DD, reason"):
            aggregate("unit", tmp_path / name, experiment_file=path)


@pytest.mark.slow
def test_an_amendment_lets_the_table_through_and_the_legend_states_it(tmp_path):
    path = experiment(tmp_path, margin="1.0", amended=AMENDMENT)
    mixed = runs(comparisons.digest(None))[:4] + runs(None)[4:]           # 4 under the old block, 2 under none
    write_runs(tmp_path / "r", *mixed)
    aggregate("unit", tmp_path / "r", experiment_file=path)
    md = (tmp_path / "r" / "unit" / "table.md").read_text()
    assert ("**Declaration amended after records existed** (2026-12-05: the margin was added after the runs). Of the "
            "6 record(s), 4 were made under another declaration and 2 under none") in md


@pytest.mark.slow
def test_a_declared_margin_says_per_comparison_whether_the_interval_lies_inside_it(tmp_path):
    stamp = comparisons.digest({"margin": 1.0})
    write_runs(tmp_path / "r", *runs(stamp))
    frame = aggregate("unit", tmp_path / "r", experiment_file=experiment(tmp_path, margin="1.0"))
    ct = cell(frame, "rte", "child_tuning_d")
    assert -1.0 <= ct["ci_low"] and ct["ci_high"] <= 1.0 and ct["equivalent"] == "yes"
    md = (tmp_path / "r" / "unit" / "table.md").read_text()
    assert "| seeds better | equivalent |" in md and "\"no difference\" may be claimed only there" in md

    write_runs(tmp_path / "wide", *runs(comparisons.digest({"margin": 0.2})))
    frame = aggregate("unit", tmp_path / "wide", experiment_file=experiment(tmp_path, margin="0.2"))
    assert cell(frame, "rte", "child_tuning_d")["equivalent"] == "no"
    write_runs(tmp_path / "none", *runs(comparisons.digest(None)))
    aggregate("unit", tmp_path / "none", experiment_file=experiment(tmp_path))
    md = (tmp_path / "none" / "unit" / "table.md").read_text()
    assert "equivalent" not in md and "means no evidence of a difference, not evidence of none" in md


@pytest.mark.slow
def test_near_constant_runs_are_counted_and_old_records_are_unknown(tmp_path):
    made = runs(comparisons.digest({"margin": None}))
    made[3]["near_constant"], made[4]["near_constant"] = True, False       # child_tuning_d seeds 1 and 2
    made[0]["near_constant"] = False                                       # vanilla seed 1
    write_runs(tmp_path / "r", *made)
    frame = aggregate("unit", tmp_path / "r", experiment_file=experiment(tmp_path))
    ct, van = cell(frame, "rte", "child_tuning_d"), cell(frame, "rte", "vanilla")
    assert (ct["n_near_constant"], ct["n_near_constant_unknown"]) == (1, 1)
    assert (van["n_near_constant"], van["n_near_constant_unknown"]) == (0, 2)
    md = (tmp_path / "r" / "unit" / "table.md").read_text()
    assert "| not ok by status | near-constant |" in md
    assert "| 1 (+1 unknown) |" in md and "| 0 (+2 unknown) |" in md
    assert "(3 of the 6 records)" in md                                    # records made before the flag


def raw_p(experiment, results) -> np.ndarray:
    from childtuning.report import registry

    s = summarize(experiment, results, pool=False)
    return np.concatenate([f["p"].to_numpy(dtype=float)[slice(None) if rows is None else rows]
                           for f, rows in registry.get(s.spec.kind).comparisons(s) if len(f)])


@pytest.mark.slow
def test_a_follow_up_is_adjusted_together_with_the_family_it_joins(tmp_path):
    """wd_pretrained_strength_cpu declares `joins: prior_methods_cpu`: both tables adjust over the
    union of their comparisons (Avg rows and combinations included), say so, and agree."""
    results = tmp_path / "results"
    write_prior_methods_records(results)
    own, parent = raw_p("wd_pretrained_strength_cpu", results), raw_p("prior_methods_cpu", results)
    pooled = holm(np.concatenate([own, parent]))
    m = int(np.isfinite(own).sum() + np.isfinite(parent).sum())
    follow_up = summarize("wd_pretrained_strength_cpu", results)
    main = summarize("prior_methods_cpu", results)
    assert follow_up.family.m == main.family.m == m
    got = follow_up.cells["p_holm"].to_numpy(dtype=float)
    tested = follow_up.cells["method.coupled_strength"] != "0.01"
    assert got[tested.to_numpy()] == pytest.approx(pooled[:tested.sum()], nan_ok=True)
    assert main.cells["p_holm"].to_numpy(dtype=float)[(main.cells["method"] != "vanilla").to_numpy()] == \
        pytest.approx(pooled[len(own): len(own) + (main.cells["method"] != "vanilla").sum()], nan_ok=True)
    aggregate("prior_methods_cpu", results)
    md = (results / "prior_methods_cpu" / "table.md").read_text()
    assert f"m = {m}: this table's comparisons pooled with those of `wd_pretrained_strength_cpu`" in md

    alone = tmp_path / "alone"                         # the follow-up has no records yet: it adds nothing
    write_prior_methods_records(alone)
    shutil.rmtree(alone / "wd_pretrained_strength_cpu")
    assert summarize("prior_methods_cpu", alone).family.sizes == {"prior_methods_cpu": int(np.isfinite(parent).sum()),
                                                                  "wd_pretrained_strength_cpu": 0}


@pytest.mark.parametrize("joins, match", [("no_such_experiment", "must be another experiment"),
                                          ("unit", "must be another experiment"),
                                          ("wd_pretrained_strength_cpu", "itself joins prior_methods_cpu: join that")])
def test_joins_must_name_a_family_head(tmp_path, joins, match):
    path = tmp_path / "unit.yaml"
    path.write_text(UNIT_EXPERIMENT_YAML + f"  comparisons: {{joins: {joins}}}\n")
    write_runs(tmp_path / "r", *runs(None))
    with pytest.raises(InputError, match=match):
        aggregate("unit", tmp_path / "r", experiment_file=path)


@pytest.mark.slow
def test_every_table_names_its_interval_and_test(tmp_path):
    path = tmp_path / "unit.yaml"
    path.write_text(UNIT_EXPERIMENT_YAML + "  comparisons: {test: sign_flip, interval: bca}\n")
    write_runs(tmp_path / "r", *runs(comparisons.digest({"test": "sign_flip", "interval": "bca"})))
    frame = aggregate("unit", tmp_path / "r", experiment_file=path)
    md = (tmp_path / "r" / "unit" / "table.md").read_text()
    assert "paired BCa bootstrap of the mean paired difference (10,000 resamples" in md
    assert "p: sign-flip permutation test" in md and "exact over all 2^n sign patterns" in md
    assert cell(frame, "rte", "child_tuning_d")["p"] == 0.25                 # 3 pairs, all positive: 2/2^3
    assert isinstance(pd.read_csv(tmp_path / "r" / "unit" / "table.csv"), pd.DataFrame)
