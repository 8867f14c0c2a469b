"""Tiny deterministic GLUE-format task folders (RTE, MRPC, CoLA, STS-B) drawn from a fixed vocabulary,
and the sentence and label draws the other synthetic sets reuse."""
from __future__ import annotations

import random
from pathlib import Path

# A fixed vocabulary; sentences are drawn from it so the files are identical on every machine.
VOCAB = ("cat dog bird fish horse cow sheep goat mouse fox wolf bear lion tiger eagle owl "
         "red blue green yellow black white small large old young fast slow happy quiet loud "
         "runs jumps sleeps eats sees finds likes walks swims flies sings reads writes opens").split()
# CoLA's "unacceptable" sentences contain one of these tokens, so the label is learnable.
BROKEN = ("the the", "a a", "is are", "of of")


def random_words(rng: random.Random, lo: int = 5, hi: int = 9) -> list[str]:
    """Between `lo` and `hi` words of VOCAB."""
    return [rng.choice(VOCAB) for _ in range(rng.randint(lo, hi))]


def sentence_pair(rng: random.Random, overlap: float) -> tuple[str, str]:
    """Two sentences where about `overlap` of the second one's words come from the first."""
    first = random_words(rng)
    second = [rng.choice(first) if rng.random() < overlap else rng.choice(VOCAB) for _ in range(len(first))]
    return " ".join(first) + " .", " ".join(second) + " ."


def balanced_labels(rng: random.Random, n: int, values: tuple) -> list:
    """`n` labels, as balanced as possible over `values`, in a seeded random order."""
    labels = [values[i % len(values)] for i in range(n)]
    rng.shuffle(labels)
    return labels


def _rte(rng, n):
    rows = ["index\tsentence1\tsentence2\tlabel"]
    for i, label in enumerate(balanced_labels(rng, n, ("entailment", "not_entailment"))):
        s1, s2 = sentence_pair(rng, 0.9 if label == "entailment" else 0.1)
        rows.append(f"{i}\t{s1}\t{s2}\t{label}")
    return rows


def _mrpc(rng, n):
    # GLUE's MRPC files start with a UTF-8 byte-order mark; keep it so the reader's handling is tested.
    rows = ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
    for i, label in enumerate(balanced_labels(rng, n, (0, 1))):
        s1, s2 = sentence_pair(rng, 0.9 if label == 1 else 0.1)
        rows.append(f"{label}\t{1000 + 2 * i}\t{1001 + 2 * i}\t{s1}\t{s2}")
    return rows


def _cola(rng, n):
    rows = []                                        # GLUE's CoLA train/dev files have no header
    for label in balanced_labels(rng, n, (0, 1)):
        words = random_words(rng)
        if label == 0:
            words.insert(rng.randrange(len(words)), rng.choice(BROKEN))
        rows.append(f"syn{label}\t{label}\t{'' if label else '*'}\t{' '.join(words).capitalize()} .")
    return rows


def _stsb(rng, n):
    rows = ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"]
    for i in range(n):
        overlap = rng.random()
        s1, s2 = sentence_pair(rng, overlap)
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
