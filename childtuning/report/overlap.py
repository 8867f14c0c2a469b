"""The overlap table kind (`table.kind: overlap`): how much the Child-Tuning_D child networks of
different tasks share (the paper's Sec. 4.5 heat-map), from the masks the runs saved.

For two runs with child networks A and B (sets of eligible weights), overlap(A, B) = |A ∩ B| / |A|
(chance: |B| / N, about the keep ratio, if B were a random set of its size) and Jaccard
|A ∩ B| / |A ∪ B| (chance about p / (2 - p)). A cell task s × task t is the mean over every pair
of runs, one of s and one of t, with DIFFERENT seeds: the diagonal is the same task across seeds,
the noise ceiling against which the other cells read. Pairs of one seed are left out of every
cell because a seed fixes the new head's initialisation (and the order of the Fisher pass), which
steers the gradients and so the child network: two tasks with the same number of labels and the
same seed start from the same head, and their overlap would partly measure that. The noise-ceiling
table shows that same-seed overlap separately. "Layer-matched chance" is
what overlap random sets would have if each kept the same number of weights per layer as the
real ones: the share explained by which layers a task's child network favours, not which weights.
The same numbers per layer follow, and a heat-map of each.

Masks are compared only when every run has the same model, keep ratio, training-set size,
selection rule, pruning and eligible tensors; otherwise aggregation stops (a matrix over mixed
settings would partly measure the settings). Masks are read from
`<results>/<experiment>/artifacts/<run_id>/child_mask.npz`; the pairwise counts are written with
the tables, as `mask_overlap_counts.json` (the aggregator: beside the records; keyed by run id and
each mask's SHA-256, which the record holds), so the tables rebuild from records and counts when
the masks (1-2 MB each for MiniLM) are not kept. Summarizing reads only: a notebook writes nothing
under results/.
"""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .. import child_mask
from ..errors import InputError
from ..layers import layer_of
from ..record import ARTIFACTS
from .markdown import natural
from .overlap_render import (  # noqa: F401 (OverlapSummary: the summary this kind makes)
    OverlapSummary,
    ALL,
    COUNTS_FILE,
    plot_heatmaps,
    render_latex,
    render_markdown,
)
from .registry import TableKind, register
from .stats import missing_runs, outside_grid

SAME = ("model", "keep_ratio", "train_size", "selection", "prune", "eligible")


def by_layer(names, shapes, bits) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The mask's bits per layer group (packed) and each group's number of eligible weights."""
    parts, offset = {}, 0
    for name, shape in zip(names, shapes):
        n = math.prod(shape)
        parts.setdefault(layer_of(name), []).append(bits[offset: offset + n])
        offset += n
    return {layer: np.packbits(np.concatenate(chunks)) for layer, chunks in parts.items()}, \
        {layer: int(sum(len(c) for c in chunks)) for layer, chunks in parts.items()}


def run_table(records: pd.DataFrame) -> pd.DataFrame:
    """The runs to compare, with what must agree among them (read from each record file)."""
    folder = Path(records.attrs["runs_dir"])
    rows = []
    for _, r in records.iterrows():
        rec = json.loads((folder / r["file"]).read_text(encoding="utf-8"))
        stats, params = rec.get("method_stats") or {}, rec.get("method_params") or {}
        if "child_mask_sha256" not in stats:
            continue                     # not a run with a saved child network (noted by the caller)
        rows.append({"run_id": r["run_id"], "task": r["task"], "seed": r["seed"], "model": r["model"],
                     "keep_ratio": stats.get("keep_ratio"),
                     "train_size": ((rec.get("data") or {}).get("train") or {}).get("size"),
                     "selection": stats.get("selection", params.get("selection")), "prune": params.get("prune", "none"),
                     "eligible": json.dumps(params.get("eligible"), sort_keys=True), "sha256": stats["child_mask_sha256"],
                     "mask": rec.get("artifacts", {}).get("child_mask")})
    return pd.DataFrame(rows, columns=["run_id", "task", "seed", "model", "keep_ratio", "train_size", "selection",
                                       "prune", "eligible", "sha256", "mask"])


def check_comparable(runs: pd.DataFrame, where: str) -> None:
    for key in SAME:
        values = runs[key].astype(str).unique()
        if len(values) > 1:
            example = {v: runs.loc[runs[key].astype(str) == v, "run_id"].iloc[0] for v in values}
            raise InputError(f"{where}: child networks built under different {key} cannot be compared (the overlap "
                             f"would partly measure the {key}): {example}. Keep one {key} in the experiment")


def counts(runs: pd.DataFrame, folder: Path) -> dict:
    """Sizes per run and layer and intersections per pair and layer: from the masks where they are
    on disk, else from the counts file beside the records, checked by each mask's SHA-256. Writes
    nothing: rendering returns the counts (OverlapKind.render)."""
    path = folder / COUNTS_FILE
    saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"runs": {}, "pairs": {}}
    artifacts = folder / ARTIFACTS
    masks, layout, out = {}, None, {"runs": {}, "pairs": {}}
    for _, r in runs.iterrows():
        file = artifacts / r["run_id"] / str(r["mask"] or child_mask.FILE)
        if file.is_file():
            names, shapes, bits = child_mask.read(file)
            if layout is None:
                layout = (names, shapes)
            elif layout != (names, shapes):
                raise InputError(f"{file}: its eligible tensors differ from the other runs' masks; cannot compare")
            if child_mask.digest(np.packbits(bits)) != r["sha256"]:
                raise InputError(f"{file} is not the mask its record describes (SHA-256 differs): restore it or rerun")
            masks[r["run_id"]], sizes = by_layer(names, shapes, bits)
            kept = {layer: int(np.bitwise_count(b).sum()) for layer, b in masks[r["run_id"]].items()}
            out["runs"][r["run_id"]] = {"sha256": r["sha256"], "kept": kept, "eligible": sizes}
        elif saved["runs"].get(r["run_id"], {}).get("sha256") == r["sha256"]:
            out["runs"][r["run_id"]] = saved["runs"][r["run_id"]]
        else:
            raise InputError(f"run {r['run_id']}: no mask at {file} and no counts for it in {path}; rerun it "
                             "(python -m childtuning.train ... force=true) or restore its artifacts")
    for a, b in itertools.combinations(sorted(out["runs"]), 2):
        pair = f"{a}|{b}"
        if a in masks and b in masks:
            out["pairs"][pair] = {layer: int(np.bitwise_count(masks[a][layer] & masks[b][layer]).sum())
                                  for layer in masks[a]}
        elif pair in saved["pairs"]:
            out["pairs"][pair] = saved["pairs"][pair]
        else:
            raise InputError(f"{path} has no counts for the pair {a}, {b} and their masks are not both on disk")
    return out


def pair_frame(runs: pd.DataFrame, data: dict) -> tuple[pd.DataFrame, list[str]]:
    """One row per ordered pair of different runs and layer (ALL = the sum), with |A|, |B|, |A ∩ B|, N."""
    meta = runs.set_index("run_id")
    layers = sorted(next(iter(data["runs"].values()))["kept"], key=natural) if data["runs"] else []
    rows = []
    for pair, inter in data["pairs"].items():
        a, b = pair.split("|")
        for x, y in ((a, b), (b, a)):
            kx, ky, n = data["runs"][x]["kept"], data["runs"][y]["kept"], data["runs"][x]["eligible"]
            for layer in layers + [ALL]:
                pick = layers if layer == ALL else [layer]
                rows.append({"run_a": x, "run_b": y, "task_a": meta.at[x, "task"], "task_b": meta.at[y, "task"],
                             "seed_a": int(meta.at[x, "seed"]), "seed_b": int(meta.at[y, "seed"]),
                             "layer": layer, "size_a": sum(kx[lay] for lay in pick), "size_b": sum(ky[lay] for lay in pick),
                             "both": sum(inter[lay] for lay in pick), "eligible": sum(n[lay] for lay in pick),
                             "layer_matched": sum(kx[lay] * ky[lay] / n[lay] for lay in pick)})
    frame = pd.DataFrame(rows, columns=["run_a", "run_b", "task_a", "task_b", "seed_a", "seed_b", "layer", "size_a",
                                        "size_b", "both", "eligible", "layer_matched"])
    frame["overlap"] = frame["both"] / frame["size_a"].where(frame["size_a"] > 0)
    union = frame["size_a"] + frame["size_b"] - frame["both"]
    frame["jaccard"] = frame["both"] / union.where(union > 0)
    frame["chance"] = frame["size_b"] / frame["eligible"]
    frame["layer_matched_chance"] = frame["layer_matched"] / frame["size_a"].where(frame["size_a"] > 0)
    return frame, layers


def cell_frame(pairs: pd.DataFrame, tasks: list[str], layers: list[str]) -> pd.DataFrame:
    """table.csv: per task_a x task_b x layer, mean and sample std over the pairs of different seeds."""
    pairs = pairs[pairs["seed_a"] != pairs["seed_b"]]
    rows = []
    for layer in [ALL] + layers:
        for ta, tb in itertools.product(tasks, tasks):
            sub = pairs[(pairs["layer"] == layer) & (pairs["task_a"] == ta) & (pairs["task_b"] == tb)]
            row = {"task_a": ta, "task_b": tb, "layer": layer, "n_pairs": len(sub)}
            for stat in ("overlap", "jaccard", "chance", "layer_matched_chance"):
                row[f"{stat}_mean"] = sub[stat].mean() if len(sub) else math.nan
                row[f"{stat}_std"] = sub[stat].std(ddof=1) if len(sub) >= 2 else math.nan
            rows.append(row)
    return pd.DataFrame(rows)


@register
class OverlapTable(TableKind):
    name = "overlap"

    def check(self, spec, where: str) -> None:
        if spec.columns != "task" or "task" in spec.rows:
            raise InputError(f"{where}: table.kind overlap compares tasks: table.columns must be task")

    def summarize(self, spec, records, skipped: list[str]) -> OverlapSummary:
        where = f"experiment {spec.experiment}"
        runs = run_table(records)
        if runs.empty:
            raise InputError(f"{where}: no record has a saved child network (Child-Tuning_D's child_mask_sha256); "
                             "run Child-Tuning_D, e.g. with trainer.epochs=0 for the mask only")
        check_comparable(runs, where)
        folder = Path(records.attrs["runs_dir"]).parent
        data = counts(runs, folder)
        pairs, layers = pair_frame(runs, data)
        tasks = [t for t in spec.expected["task"] if t in set(runs["task"])] + \
            sorted(set(runs["task"]) - set(spec.expected["task"]))
        ignored = sorted(set(records["run_id"]) - set(runs["run_id"]))
        notes = [f"{len(ignored)} record(s) without a saved child network, not compared: {', '.join(ignored)}"] \
            if ignored else []
        return OverlapSummary(spec=spec, records=records, runs=runs, pairs=pairs, cells=cell_frame(pairs, tasks, layers),
                              layers=layers, missing=missing_runs(records, spec), outside=outside_grid(records, spec),
                              skipped=skipped, notes=notes, counts=data)

    def render(self, s: OverlapSummary) -> dict[str, str]:
        csv = s.cells.to_csv(index=False, float_format="%.10g", na_rep="", lineterminator="\n")
        # the counts the tables rebuild from when the masks are gone
        counts_json = json.dumps(s.counts, indent=1, sort_keys=True) + "\n"
        return {"table.csv": csv, "table.md": render_markdown(s), "table.tex": render_latex(s), COUNTS_FILE: counts_json}

    def plot(self, s: OverlapSummary, folder: Path) -> list[Path]:
        return plot_heatmaps(s, folder)
