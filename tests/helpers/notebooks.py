"""Executing a notebook headless with its parameters set, and checking it wrote nothing under results."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from helpers.paths import REPO


def files_under(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder`: relative path -> (size, modification time in ns)."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()} if folder.is_dir() else {}


def run_notebook(name: str, monkeypatch, **env) -> tuple[str, list]:
    """Execute notebooks/<name>.ipynb with CHILDTUNING_<KEY>=value for each keyword (notebook_out:
    where it draws its tables and plots; default a temporary folder); return the text of its outputs
    (markdown, plain, stream) and its PNG outputs. Raises on a cell error, and fails if the notebook
    wrote anything under its results folder (a notebook only reads records)."""
    import nbformat                       # deferred: only the notebook tests need the kernel machinery
    from nbclient import NotebookClient

    env.setdefault("notebook_out", tempfile.mkdtemp(prefix="notebook-out-"))
    results = Path(env.get("results", REPO / "results"))
    before = files_under(results)
    for key, value in env.items():
        monkeypatch.setenv(f"CHILDTUNING_{key.upper()}", str(value))   # read by the parameter cell
    # the kernel starts in notebooks/: without this it would import whichever childtuning is installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    path = REPO / "notebooks" / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    assert files_under(results) == before, f"notebooks/{name}.ipynb wrote under {results}"
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(str(o.get("data", {}).get("text/markdown", "")) + str(o.get("data", {}).get("text/plain", ""))
                   + str(o.get("text", "")) for o in outputs)
    return text, [o for o in outputs if "image/png" in o.get("data", {})]
