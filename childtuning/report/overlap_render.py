"""table.md, table.tex and heat-maps of an overlap summary (report/overlap.py)."""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .latex import tex
from .markdown import compute_lines, missing_lines
from .plots import save_png
from .text import md_table, num

COUNTS_FILE = "mask_overlap_counts.json"   # the pairwise counts, beside the records
ALL = "all"                                # the whole child network, beside each layer


@dataclass
class OverlapSummary:
    spec: object
    records: pd.DataFrame
    runs: pd.DataFrame             # one row per compared run: run_id, task, seed, keep ratio, sizes
    pairs: pd.DataFrame            # one row per ordered pair of runs and layer: intersection, sizes
    cells: pd.DataFrame            # table.csv: task_a x task_b x layer statistics
    layers: list[str]
    missing: list[tuple]
    outside: list[str]
    skipped: list[str]
    notes: list[str]
    counts: dict                   # mask_overlap_counts.json: sizes per run and layer, intersections per pair

    @property
    def n_expected(self) -> int:
        return math.prod(len(self.spec.expected[a]) for a in self.spec.key + ["seed"])

    @property
    def tasks(self) -> list[str]:
        found = list(dict.fromkeys(self.runs["task"]))
        declared = self.spec.expected["task"]
        return [t for t in declared if t in found] + [t for t in found if t not in declared]



def matrix(s: OverlapSummary, stat: str, layer: str = ALL) -> pd.DataFrame:
    sub = s.cells[s.cells["layer"] == layer]
    return sub.pivot(index="task_a", columns="task_b", values=f"{stat}_mean").reindex(index=s.tasks, columns=s.tasks)


def pct(x) -> str:
    return num(100 * x, 1) if x is not None and np.isfinite(x) else num(math.nan)


def render_markdown(s: OverlapSummary) -> str:
    r = s.runs.iloc[0]
    seeds = sorted(set(s.runs["seed"]))
    out = [f"# Experiment `{s.spec.experiment}`: child-network overlap", "",
           f"Child-Tuning_D child networks of {len(s.runs)} run(s): model {r['model']}, keep ratio {r['keep_ratio']}, "
           f"{r['train_size']} training examples, selection `{r['selection']}`, seeds {', '.join(map(str, seeds))}. "
           "overlap(A, B) = |A ∩ B| / |A| (row task A, column task B), in %; a cell is the mean over every pair of runs "
           "of its two tasks with different seeds (a seed fixes the head's initialisation, which steers the child "
           "network; the diagonal: the same task on two seeds, the noise ceiling). Chance for a random "
           "B of the same size: |B| / N (≈ the keep ratio); layer-matched chance: random sets with the real per-layer "
           "sizes. Pairwise counts: " + COUNTS_FILE + ".", "",
           "## Overlap |A ∩ B| / |A| (%)", ""]
    ov, jac = matrix(s, "overlap"), matrix(s, "jaccard")
    out += md_table(["A \\ B"] + s.tasks, [[a] + [pct(ov.at[a, b]) for b in s.tasks] for a in s.tasks])
    out += ["", "## Jaccard |A ∩ B| / |A ∪ B| (%)", ""]
    out += md_table(["A \\ B"] + s.tasks, [[a] + [pct(jac.at[a, b]) for b in s.tasks] for a in s.tasks])
    out += ["", "## Noise ceiling and chance", "",
            "Per task, overlap (%) with: its own child networks on other seeds (the noise ceiling; mean ± std over "
            "pairs), the other tasks' on other seeds (the matrices' rows, averaged), the other tasks' on the SAME seed "
            "(same head initialisation and Fisher-pass order; not in the matrices), and the two chance levels.", ""]
    rows = []
    whole = s.pairs[s.pairs["layer"] == ALL]
    for t in s.tasks:
        mine = whole[whole["task_a"] == t]
        other_seed = mine[mine["seed_a"] != mine["seed_b"]]
        same = other_seed[other_seed["task_b"] == t]
        other = other_seed[other_seed["task_b"] != t]
        same_seed = mine[(mine["seed_a"] == mine["seed_b"]) & (mine["task_b"] != t)]
        rows.append([t, f"{pct(same['overlap'].mean())} ± {pct(same['overlap'].std(ddof=1))} ({len(same)})",
                     f"{pct(other['overlap'].mean())} ({len(other)})",
                     f"{pct(same_seed['overlap'].mean())} ({len(same_seed)})",
                     pct(mine["chance"].mean()), pct(mine["layer_matched_chance"].mean())])
    out += md_table(["task", "same task, other seed (pairs)", "other tasks, other seed (pairs)",
                     "other tasks, same seed (pairs)", "chance", "layer-matched chance"], rows)
    out += ["", "## Per layer", "",
            "Per layer: the share of its eligible weights kept (mean over runs; the chance level of the overlap), "
            "and the overlap within the layer (mean over pairs of different seeds), in %.", ""]
    rows = []
    for layer in s.layers:
        sub = s.pairs[(s.pairs["layer"] == layer) & (s.pairs["seed_a"] != s.pairs["seed_b"])]
        same, other = sub[sub["task_a"] == sub["task_b"]], sub[sub["task_a"] != sub["task_b"]]
        rows.append([layer, f"{int(sub['eligible'].iloc[0]):,}" if len(sub) else "?", pct(sub["chance"].mean()),
                     pct(same["overlap"].mean()), pct(other["overlap"].mean())])
    out += md_table(["layer", "eligible weights", "kept (= chance)", "same task, other seed", "other tasks, other seed"],
                    rows)
    out += ["", "## Compute", ""] + compute_lines(s.records)
    out += missing_lines(s)
    notes = list(s.notes) + ([f"{len(s.outside)} record(s) outside the declared grid, compared too: "
                              f"{', '.join(s.outside)}"] if s.outside else [])
    notes += [f"skipped unreadable file {m}" for m in s.skipped]
    out += (["", "## Notes", ""] + [f"- {n}" for n in notes]) if notes else []
    return "\n".join(out) + "\n"


def render_latex(s: OverlapSummary) -> str:
    ov = matrix(s, "overlap")
    lines = [f"% {tex(s.spec.experiment)}: child-network overlap |A cap B| / |A| in %, mean over pairs of runs "
             "(diagonal: same task, other seeds). Needs \\usepackage{booktabs}.",
             "\\begin{tabular}{l" + "r" * len(s.tasks) + "}", "\\toprule",
             " & ".join(["A \\textbackslash{} B"] + [tex(t) for t in s.tasks]) + " \\\\", "\\midrule"]
    lines += [" & ".join([tex(a)] + [pct(ov.at[a, b]).replace("–", "--") for b in s.tasks]) + " \\\\" for a in s.tasks]
    return "\n".join(lines + ["\\bottomrule", "\\end{tabular}"]) + "\n"


def plot_heatmaps(s: OverlapSummary, folder: Path) -> list[Path]:
    """overlap.png: the overlap and Jaccard matrices; overlap_per_layer.png: the overlap per layer."""
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    n = len(s.tasks)
    chance = s.pairs.loc[s.pairs["layer"] == ALL, "chance"].mean()     # |B| / N: the same for every pair

    def draw(ax, m, title, vmin=None, vmax=None):
        image = ax.imshow(100 * m.to_numpy(dtype=float), cmap="viridis", vmin=vmin, vmax=vmax)
        ax.set_xticks(range(n), s.tasks, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(n), s.tasks, fontsize=7)
        for i, j in itertools.product(range(n), range(n)):
            v = m.iat[i, j]
            if np.isfinite(v):
                ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=6, color="white")
        ax.set_title(title, fontsize=8)
        return image

    fig = Figure(figsize=(10, 4.6), dpi=100)
    for k, (stat, title) in enumerate((("overlap", f"|A∩B|/|A| (%), chance {100 * chance:.0f}"),
                                       ("jaccard", "Jaccard |A∩B|/|A∪B| (%)"))):
        ax = fig.add_subplot(1, 2, k + 1)
        fig.colorbar(draw(ax, matrix(s, stat), f"{s.spec.experiment}: {title}"), ax=ax, fraction=0.046)
        ax.set_xlabel("B (column)", fontsize=7)
        ax.set_ylabel("A (row)", fontsize=7)
    written = [save_png(fig, folder / "overlap.png")]

    cols = min(3, len(s.layers)) or 1
    rows = math.ceil(len(s.layers) / cols) or 1
    fig = Figure(figsize=(3.6 * cols, 3.3 * rows), dpi=100)
    mats = [matrix(s, "overlap", layer) for layer in s.layers]
    top = max([float(np.nanmax(m.to_numpy(dtype=float))) for m in mats if m.notna().any().any()] or [1.0])
    for k, (layer, m) in enumerate(zip(s.layers, mats)):
        ax = fig.add_subplot(rows, cols, k + 1)
        kept = s.pairs.loc[s.pairs["layer"] == layer, "chance"].mean()
        draw(ax, m, f"{layer}: |A∩B|/|A| (%), kept {100 * kept:.0f}%", 0, 100 * top)
    written.append(save_png(fig, folder / "overlap_per_layer.png"))
    return written
