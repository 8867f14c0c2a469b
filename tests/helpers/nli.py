"""Tiny deterministic task folders in the formats of ../shared/data/glue's transfer sets (MNLI
JSON lines, SNLI's coded TSV, SICK's SemEval files, SciTail's mixed files, SST-2's `text` header)
and GLUE's QQP layout; each writer returns what it wrote, so tests know the right answer."""
from __future__ import annotations

import json
import random
from pathlib import Path

from helpers.glue import balanced_labels, random_words, sentence_pair

NLI = ("entailment", "neutral", "contradiction")


def _rows(rng: random.Random, n: int, labels=NLI) -> list[tuple[str, str, str]]:
    """`n` (premise, hypothesis, label name) triples, labels as balanced as possible."""
    out = []
    for label in balanced_labels(rng, n, labels):
        s1, s2 = sentence_pair(rng, {"entailment": 0.9, "neutral": 0.5}.get(label, 0.1))
        out.append((s1, s2, label))
    return out


def _write(path: Path, lines: list[str], newline: str = "\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((newline.join(lines) + newline).encode("utf-8"))


def write_mnli(root: Path, n: int = 30) -> dict:
    rng = random.Random(1)
    rows = _rows(rng, n)
    _write(root / "MNLI" / "dev_matched.jsonl",
           [json.dumps({"premise": p, "hypothesis": h, "label": y}) for p, h, y in rows])
    return {"dev": rows}


def write_snli(root: Path, n: int = 30) -> dict:
    rng = random.Random(2)
    code = {y: str(i) for i, y in enumerate(NLI)}          # 0 entailment, 1 neutral, 2 contradiction
    out = {}
    for split in ("dev", "test"):
        rows = _rows(rng, n)
        _write(root / "SNLI" / f"{split}.tsv", ["premise\thypothesis\tlabel"] + [f"{p}\t{h}\t{code[y]}" for p, h, y in rows])
        out[split] = rows
    return out


def write_sick(root: Path, n: int = 30) -> dict:
    rng = random.Random(3)
    header = "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment"
    out = {}
    for split in ("train", "dev", "test"):
        rows = _rows(rng, n)
        lines = [header] + [f"{i + 1}\t{p}\t{h}\t{rng.uniform(1, 5):.1f}\t{y.upper()}" for i, (p, h, y) in enumerate(rows)]
        _write(root / "SICK" / f"{split}.tsv", lines, "\r\n" if split == "test" else "\n")   # test: CRLF, as SemEval's
        out[split] = rows
    return out


def write_scitail(root: Path, n: int = 30) -> dict:
    rng = random.Random(4)
    two = ("entailment", "neutral")
    out = {}
    # dev: 1/0 codes, CRLF
    rows = _rows(rng, n, two)
    _write(root / "SciTail" / "dev.tsv", ["premise\thypothesis\tlabel"] +
           [f"{p}\t{h}\t{1 if y == 'entailment' else 0}" for p, h, y in rows], "\r\n")
    out["dev"] = rows
    # train: mostly 1/0, a few rows with the words entails/neutral, one premise with stray quotes
    rows = _rows(rng, n, two)
    rows[0] = ('"""A quoted premise, """"as found""""."""', rows[0][1], rows[0][2])
    lines = ["premise\thypothesis\tlabel"]
    for i, (p, h, y) in enumerate(rows):
        value = ("entails" if y == "entailment" else "neutral") if i % 5 == 1 else (1 if y == "entailment" else 0)
        lines.append(f"{p}\t{h}\t{value}")
    _write(root / "SciTail" / "train.tsv", lines, "\r\n")
    out["train"] = rows
    # test: JSON lines with entailment / not_entailment and an extra `tag` key
    rows = _rows(rng, n, two)
    _write(root / "SciTail" / "test.jsonl", [json.dumps({"premise": p, "hypothesis": h, "label": (
        "entailment" if y == "entailment" else "not_entailment"), "tag": ""}) for p, h, y in rows])
    out["test"] = rows
    return out


def write_sst2(root: Path, n: int = 30, header: str = "text\tlabel") -> dict:
    rng = random.Random(5)
    out = {}
    for split in ("train", "dev"):
        labels = balanced_labels(rng, n, ("negative", "positive"))
        rows = [(" ".join(random_words(rng)) + " ", y) for y in labels]       # GLUE's SST-2 keeps a trailing space
        _write(root / "SST-2" / f"{split}.tsv", [header] + [f"{s}\t{int(y == 'positive')}" for s, y in rows])
        out[split] = rows
    return out


def write_qqp(root: Path, n: int = 30) -> dict:
    rng = random.Random(6)
    out = {}
    for split in ("train", "dev"):
        labels = balanced_labels(rng, n, ("not_duplicate", "duplicate"))
        rows = []
        lines = ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"]
        for i, y in enumerate(labels):
            q1, q2 = sentence_pair(rng, 0.9 if y == "duplicate" else 0.2)
            rows.append((q1, q2, y))
            lines.append(f"{i}\t{2 * i}\t{2 * i + 1}\t{q1}\t{q2}\t{int(y == 'duplicate')}")
        _write(root / "QQP" / f"{split}.tsv", lines)
        out[split] = rows
    return out


WRITERS = {"mnli": write_mnli, "snli": write_snli, "sick": write_sick, "scitail": write_scitail,
           "sst2": write_sst2, "qqp": write_qqp}


def write_transfer_sets(root: Path, n: int = 30) -> dict:
    """All the folders above under `root`; returns {task: {split: rows written}}."""
    return {task: write(Path(root), n) for task, write in WRITERS.items()}
