"""Fine-tuned models kept beside their run record (trainer.save_model) and found again by run id.

A run with `trainer.save_model=true` writes its final model and tokenizer (transformers
`save_pretrained`: config.json, model.safetensors, tokenizer files) to
`<results>/<experiment>/artifacts/<run_id>/model/` (git-ignored) and names every file with its
sha256 in the record's `artifacts.model`. Another experiment names such a model by
"<experiment>/<run_id>" (`model.source=run`, `model.run`); `resolve` finds and checks it (record,
saved model, every checksum) before anything is trained, and `load` reads it back.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .integrity import read_complete
from .record import artifacts_dir, runs_dir

FOLDER = "model"                 # under artifacts/<run_id>/
FORMAT = "transformers save_pretrained (safetensors) + tokenizer"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save(model, tokenizer, artifacts: Path) -> dict:
    """Write the model and tokenizer under `artifacts`/model; returns the record's `artifacts.model`
    entry (folder, format, every file's sha256 and the total size)."""
    folder = Path(artifacts) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {"folder": FOLDER, "format": FORMAT,
            "files": {p.relative_to(folder).as_posix(): sha256(p) for p in files},
            "bytes": sum(p.stat().st_size for p in files)}


def parse_ref(ref: str) -> tuple[str, str]:
    """("experiment", "run_id") of a reference written "<experiment>/<run_id>"."""
    experiment, sep, rid = str(ref).strip().partition("/")
    if not sep or not experiment or not rid or "/" in rid:
        raise InputError(f"saved-run reference {ref!r}: write <experiment>/<run_id>, e.g. "
                         "task_transfer_cpu/minilm.sst2.vanilla.s1.0123456789 (the record is "
                         "<results>/<experiment>/runs/<run_id>.json)")
    return experiment, rid


@dataclass(frozen=True)
class SavedRun:
    """A run whose saved model was found and checked."""
    experiment: str
    run_id: str
    record: dict
    folder: Path                 # the saved model's folder

    @property
    def ref(self) -> str:
        return f"{self.experiment}/{self.run_id}"

    @property
    def files(self) -> dict:
        return self.record["artifacts"]["model"]["files"]


def resolve(results: str | Path, ref: str, verify: bool = True) -> SavedRun:
    """The saved model of run `ref` ("<experiment>/<run_id>") under `results`, its checksums
    verified. Raises InputError (naming the fix) when the run has no complete record, saved no
    model, or a file is missing or differs from its recorded sha256."""
    experiment, rid = parse_ref(ref)
    path = runs_dir(results, experiment) / f"{rid}.json"
    record = read_complete(path)
    if record is None:
        why = "is incomplete or unreadable" if path.exists() else "does not exist"
        raise InputError(f"source run {ref}: its record {path} {why}. Run the source first (e.g. python -m "
                         f"childtuning.train -m exp={experiment} trainer.save_model=true paths.results={results})")
    saved = (record.get("artifacts") or {}).get("model")
    if not isinstance(saved, dict) or not saved.get("files"):
        raise InputError(f"source run {ref} saved no model (status {record.get('status')}; a run keeps its model only "
                         "with trainer.save_model=true and when training finished). Rerun it with "
                         "trainer.save_model=true force=true")
    folder = artifacts_dir(path.parent, rid) / saved.get("folder", FOLDER)
    if verify:
        for name, digest in sorted(saved["files"].items()):
            file = folder / name
            if not file.is_file():
                raise InputError(f"source run {ref}: its saved model file {file} is missing (saved models are "
                                 "git-ignored: rerun the source with trainer.save_model=true force=true)")
            if sha256(file) != digest:
                raise InputError(f"source run {ref}: {file} does not match the sha256 its record names "
                                 f"({digest[:12]}...): the file changed after the run. Rerun the source with "
                                 "trainer.save_model=true force=true")
    return SavedRun(experiment, rid, record, folder)


def load(saved: SavedRun):
    """(model, tokenizer) of a resolved saved run, as the run ended (its own classification head)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(saved.folder)
    tokenizer = AutoTokenizer.from_pretrained(saved.folder)
    padding_side = ((saved.record.get("config") or {}).get("model") or {}).get("padding_side")
    if padding_side:
        tokenizer.padding_side = padding_side
    return model, tokenizer
