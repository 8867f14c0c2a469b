"""The GLUE table kind (`table.kind: glue`, the default): rows model x method [x config axes such
as trainer.lr], columns task, the baseline method's differences per task (paper Table 1's layout)."""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .latex import render_latex
from .markdown import render_markdown
from .emp import plot_emp
from .plots import plot_cells
from .combinations import combination_gains
from .registry import TableKind, register
from .stats import cell_table, duplicate_seeds, missing_runs, outside_grid
from .summary import Summary


@register
class GlueTable(TableKind):
    name = "glue"

    def check(self, spec, where: str) -> None:
        rows = spec.rows
        if not {"model", "method"} <= set(rows) or {"task", "seed"} & set(rows) or spec.columns != "task" \
                or len(set(rows)) != len(rows):
            raise InputError(f"{where}: table.rows must name model, method and optionally config paths (e.g. "
                             f"trainer.lr), and table.columns must be task (got rows: {rows}, columns: {spec.columns})")

    def summarize(self, spec, records, skipped: list[str]) -> Summary:
        s = Summary(spec=spec, records=records, cells=cell_table(records, spec),
                    missing=missing_runs(records, spec), outside=outside_grid(records, spec),
                    duplicates=duplicate_seeds(records, spec), skipped=skipped)
        s.averages, s.gains = s.average_comparisons(), combination_gains(s)
        return s

    def comparisons(self, summary: Summary) -> list:
        """The table's Holm family: the per-task comparisons, the Avg rows and the combinations."""
        if summary.spec.baseline is None:
            return []
        cells = summary.cells
        return [(cells, (cells[summary.spec.baseline_axis] != summary.spec.baseline).to_numpy()),
                (summary.averages, None), (summary.gains, None)]

    def render(self, summary: Summary) -> dict[str, str]:
        csv = summary.cells.to_csv(index=False, float_format="%.10g", na_rep="", lineterminator="\n")
        return {"table.csv": csv, "table.md": render_markdown(summary), "table.tex": render_latex(summary)}

    def plot(self, summary: Summary, folder: Path) -> list[Path]:
        return plot_cells(summary, folder) + plot_emp(summary, folder)
