"""Shared test helpers: the repository root, real-data detection, configs composed exactly as the
runner composes them, and tiny deterministic GLUE-format task folders (RTE, MRPC, CoLA, STS-B)."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# `make test` runs the suite in two pytest-xdist workers: one thread each (and in every process a
# test starts), so the two share the cores instead of oversubscribing them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
# Real task data: $GLUE_DIR, else ../shared/data/glue beside the repository (never committed).
REAL_GLUE = Path(os.environ.get("GLUE_DIR") or REPO.parent / "shared" / "data" / "glue")


def has_real_glue(*folders: str) -> bool:
    return all((REAL_GLUE / f).is_dir() for f in folders)


def requires_real_glue(*folders: str):
    """Skip (saying why) unless the real task folders are present; such tests are also `slow`."""
    missing = [f for f in folders if not (REAL_GLUE / f).is_dir()]
    skip = pytest.mark.skipif(bool(missing), reason=f"no real GLUE data for {', '.join(missing)} under {REAL_GLUE} "
                                                    "(set GLUE_DIR to a GLUE-format folder)")
    return lambda test: pytest.mark.slow(skip(test))


def compose_cfg(*overrides: str, config_dir: Path | None = None):
    """The run config for `overrides`, composed from conf/ as `python -m childtuning.train` does."""
    from childtuning.config import compose

    return compose(*overrides, config_dir=config_dir)

# A fixed vocabulary; sentences are drawn from it so the files are identical on every machine.
VOCAB = ("cat dog bird fish horse cow sheep goat mouse fox wolf bear lion tiger eagle owl "
         "red blue green yellow black white small large old young fast slow happy quiet loud "
         "runs jumps sleeps eats sees finds likes walks swims flies sings reads writes opens").split()
# CoLA's "unacceptable" sentences contain one of these tokens, so the label is learnable.
BROKEN = ("the the", "a a", "is are", "of of")


def _sentence(rng: random.Random, lo: int = 5, hi: int = 9) -> list[str]:
    return [rng.choice(VOCAB) for _ in range(rng.randint(lo, hi))]


def _pair(rng: random.Random, overlap: float) -> tuple[str, str]:
    """Two sentences where about `overlap` of the second one's words come from the first."""
    first = _sentence(rng)
    second = [rng.choice(first) if rng.random() < overlap else rng.choice(VOCAB) for _ in range(len(first))]
    return " ".join(first) + " .", " ".join(second) + " ."


def _labels(rng: random.Random, n: int, values: tuple) -> list:
    """`n` labels, as balanced as possible over `values`, in a seeded random order."""
    labels = [values[i % len(values)] for i in range(n)]
    rng.shuffle(labels)
    return labels


def _rte(rng, n):
    rows = ["index\tsentence1\tsentence2\tlabel"]
    for i, label in enumerate(_labels(rng, n, ("entailment", "not_entailment"))):
        s1, s2 = _pair(rng, 0.9 if label == "entailment" else 0.1)
        rows.append(f"{i}\t{s1}\t{s2}\t{label}")
    return rows


def _mrpc(rng, n):
    # GLUE's MRPC files start with a UTF-8 byte-order mark; keep it so the reader's handling is tested.
    rows = ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
    for i, label in enumerate(_labels(rng, n, (0, 1))):
        s1, s2 = _pair(rng, 0.9 if label == 1 else 0.1)
        rows.append(f"{label}\t{1000 + 2 * i}\t{1001 + 2 * i}\t{s1}\t{s2}")
    return rows


def _cola(rng, n):
    rows = []                                        # GLUE's CoLA train/dev files have no header
    for label in _labels(rng, n, (0, 1)):
        words = _sentence(rng)
        if label == 0:
            words.insert(rng.randrange(len(words)), rng.choice(BROKEN))
        rows.append(f"syn{label}\t{label}\t{'' if label else '*'}\t{' '.join(words).capitalize()} .")
    return rows


def _stsb(rng, n):
    rows = ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"]
    for i in range(n):
        overlap = rng.random()
        s1, s2 = _pair(rng, overlap)
        rows.append(f"{i}\tmain-captions\tsynthetic\t2024\t{i:04d}\tnone\tnone\t{s1}\t{s2}\t{5 * overlap:.3f}")
    return rows


WRITERS = {"RTE": _rte, "MRPC": _mrpc, "CoLA": _cola, "STS-B": _stsb}


def write_synthetic_glue(root: Path, tasks=("RTE",), n_train: int = 40, n_dev: int = 24) -> Path:
    """Write GLUE-format `train.tsv`/`dev.tsv` for each of `tasks` (folder names as in GLUE:
    RTE, MRPC, CoLA, STS-B) under `root`; returns `root`. Same arguments, same bytes."""
    root = Path(root)
    for task in tasks:
        if task not in WRITERS:
            raise ValueError(f"no synthetic writer for task {task!r}; known: {', '.join(WRITERS)}")
        rng = random.Random(0)                       # one stream per task: adding a task changes no other
        folder = root / task
        folder.mkdir(parents=True, exist_ok=True)
        for split, n in (("train", n_train), ("dev", n_dev)):
            rows = WRITERS[task](rng, n)
            (folder / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def synthetic_glue(tmp_path_factory) -> Path:
    """A fresh folder with synthetic RTE, MRPC, CoLA and STS-B (tests may modify it)."""
    return write_synthetic_glue(tmp_path_factory.mktemp("glue"), tasks=tuple(WRITERS))


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
    import os
    import tempfile

    import nbformat
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


def declared_digest(experiment: str) -> str:
    """The digest of experiments/<experiment>.yaml's own table.comparisons block: what a run made
    under that declaration carries (hand-made records stamp it to count as made after it)."""
    import yaml

    from childtuning import comparisons

    text = yaml.safe_load((REPO / "experiments" / f"{experiment}.yaml").read_text(encoding="utf-8"))
    return comparisons.digest(((text or {}).get("table") or {}).get("comparisons"))


def write_targets(results, experiment: str, run: dict, targets: dict) -> None:
    """Target records (childtuning/target_records.py) of the hand-made run record `run`: `targets`
    maps "task:split" to {main_metric, metrics[, near_constant, majority_class]}."""
    import json

    from childtuning import target_records

    folder = Path(results) / experiment / "targets"
    folder.mkdir(parents=True, exist_ok=True)
    for name, t in targets.items():
        task, _, split = name.partition(":")
        entry = {"task": task, "split": split or "dev", "label_map": {"name": "by_name", "pairs": {}}}
        made = target_records.build(run, entry, {
            "metrics": t["metrics"], "main_metric": t["main_metric"], "reason": None, "predictions": None,
            "near_constant": t.get("near_constant"), "majority_class": t.get("majority_class"), "size": 10,
            "dropped": 0, "source": "synthetic", "fingerprint": "0" * 16, "model_from": "end of run",
            "seconds": t.get("seconds"), "device": None})
        (folder / f"{made['run_id']}.json").write_text(json.dumps(made, allow_nan=True))


# ---------------------------------------------------------------- the fast loop's budget
# `make test-fast` runs the tests not marked `slow` with CHILDTUNING_TEST_BUDGET_S=5: an unmarked test
# whose CPU time (this process and the subprocesses it waited for, so a loaded machine does not
# count against it) exceeds the budget fails, naming the fix. `make test` (CI) sets no budget.
BUDGET_S = float(os.environ.get("CHILDTUNING_TEST_BUDGET_S") or 0)


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    started = _cpu_seconds()
    yield
    item._cpu_seconds = _cpu_seconds() - started


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    spent = getattr(item, "_cpu_seconds", 0.0)
    if BUDGET_S and call.when == "call" and report.passed and item.get_closest_marker("slow") is None \
            and spent > BUDGET_S:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} took {spent:.1f} s of CPU time, over the fast loop's budget of "
                           f"{BUDGET_S:g} s: mark it @pytest.mark.slow (it still runs in `make test`), or make it cheaper")
