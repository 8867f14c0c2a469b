"""Read one declared split of a task into a Split: a local TSV or JSON-lines file, or the hub.

Where a split comes from is declared in the task file: `local.files` (file per split, in a
GLUE-format folder found by `paths.glue_dir`) and `hub.splits` (the hub's split name). A split
with a local file is read from it when the task's folder is found; a split the task declares
only on the hub (e.g. MNLI train) is always read from the hub. Label values are mapped to the
task's label names by `label_codes` (e.g. SNLI's 0/1/2), never assumed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from . import REPO_ROOT
from .errors import InputError



@dataclass
class Split:
    texts: list[tuple[str, ...]]
    labels: list            # class indices, or floats for regression
    source: str             # file path or hub id, for messages and the record
    dropped: int = 0        # rows skipped for a label in drop_labels (e.g. SNLI pairs without a gold label)
    # the task's breakdown column (task.breakdown), one float per example, when the task declares one
    extra: dict[str, list[float]] = field(default_factory=dict)

    def __len__(self):
        return len(self.labels)


def glue_dir_candidates(configured: str | None) -> list[Path]:
    """Where local task folders are looked for, in order: paths.glue_dir ($GLUE_DIR),
    data/glue in the repository, ../shared/data/glue beside it."""
    if configured:
        return [Path(configured).expanduser()]
    return [REPO_ROOT / "data" / "glue", REPO_ROOT.parent / "shared" / "data" / "glue"]


def declared_splits(task) -> list[str]:
    """The task's split names: those in local.files and hub.splits, plus train and dev when
    they are cut from another split (task.resplit)."""
    return sorted(set(task.local.files) | set(task.hub.splits) | ({"train", "dev"} if task.resplit else set()))


HELDOUT = "heldout"   # a run's training examples outside its subset (childtuning/targets.py): read from train


def source_split(task, split: str) -> str:
    """The declared split whose file (or hub split) holds `split`: itself, except train and dev of a
    task that cuts both from one split (task.resplit, e.g. mnli_m_dev_split), which come from that
    split, and the held-out examples of a run's training split, which come from train."""
    split = "train" if split == HELDOUT else split
    return task.resplit.source if task.resplit is not None and split in ("train", "dev") else split


def _hint(task, split: str) -> str:
    ways = []
    if split in task.local.files:
        ways.append(f"point the run at a folder of GLUE-format task folders with `paths.glue_dir=/path/to/glue` or "
                    f"the environment variable GLUE_DIR (it must contain {task.local.folder}/{task.local.files[split]})")
    if split in task.hub.splits:
        ways.append(f"make the hub dataset {task.hub.path}/{task.hub.name} reachable")
    return ("To read it, " + ", or ".join(ways) + ".") if ways else ""


def _label_reader(task, codes, drop):
    """A function (raw label value, where) -> class index, float (regression), or None (dropped row)."""
    drop = {str(x) for x in drop}
    if task.regression:
        def read(raw, at):
            if str(raw).strip() in drop:
                return None
            try:
                return float(raw)
            except (TypeError, ValueError):
                raise InputError(f"{at}: label {raw!r} is not a number (task {task.name} is a regression)") from None
        return read
    names = [str(x) for x in task.labels]
    codes = dict(codes) if codes is not None else None

    def read(raw, at):
        key = str(raw).strip()
        if key in drop:
            return None
        if codes is not None:
            if key not in codes:
                raise InputError(f"{at}: label {key!r} is not one of task {task.name}'s label codes {sorted(codes)}; "
                                 "fix the row, add the code to the task's label_codes, or skip such rows with drop_labels")
            return names.index(codes[key])
        if not isinstance(raw, str):        # a hub's class index (datasets.ClassLabel)
            index = int(raw)
            if not 0 <= index < len(names):
                raise InputError(f"{at}: label {raw} outside task {task.name}'s {len(names)} labels "
                                 "(an unlabelled test split, or a no-gold-label code to list in drop_labels?)")
            return index
        if key not in names:
            raise InputError(f"{at}: label {key!r} is not one of task {task.name}'s labels {names}; fix the row "
                             "or the task's `labels` (or map the file's values to label names with label_codes)")
        return names.index(key)
    return read


def _check_header(task, path: Path, line: str) -> None:
    """A header that does not name the declared columns in order is an error (reading on would
    silently swap or misplace fields)."""
    columns = list(task.local.columns)
    found = [h.strip() for h in line.rstrip("\r").split("\t")]
    named = [task.local.rename.get(h, h) for h in found]
    if named == columns:
        return
    first = next((i for i, (a, b) in enumerate(zip(named, columns)) if a != b), min(len(named), len(columns)))
    where = (f"column {first + 1} is {found[first]!r} in the file but {columns[first]!r} in local.columns"
             if first < min(len(named), len(columns)) else
             f"the file has {len(found)} columns, local.columns {len(columns)}")
    via = f" (read as {named} through local.rename)" if named != found else ""
    raise InputError(f"{path}: header {found}{via} does not match task {task.name}'s local.columns {columns}: {where}. "
                     f"List local.columns in the file's order in conf/task/{task.name}.yaml; where the file only "
                     f"spells a column differently, map its name to yours with local.rename (e.g. "
                     f"rename: {{{found[first] if first < len(found) else 'name'}: <your column>}}); a file without "
                     "a header line takes local.header: false")


def _read_tsv(task, path: Path, read_label):
    columns = list(task.local.columns)
    text_idx = [columns.index(f) for f in task.text_fields]
    label_idx = columns.index(task.label_field)
    # utf-8-sig drops MRPC's byte-order mark; no quote processing (GLUE text holds bare quotes);
    # "\r" is stripped per line (SICK test, SciTail have CRLF line ends).
    with open(path, encoding="utf-8-sig", newline="") as f:
        lines = f.read().split("\n")
    if task.local.header:
        if not lines[0].strip():
            raise InputError(f"{path}: empty first line where a header was expected (local.header: true); "
                             "fix the file or set local.header: false")
        _check_header(task, path, lines[0])
    column = breakdown_column(task)
    extra_idx = columns.index(column) if column in columns else None
    texts, labels, dropped, extra = [], [], 0, []
    for lineno, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if (lineno == 1 and task.local.header) or not line:
            continue
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise InputError(f"{path}:{lineno}: malformed row with {len(fields)} tab-separated fields, "
                             f"expected {len(columns)} ({', '.join(columns)}); fix or remove the row")
        label = read_label(fields[label_idx], f"{path}:{lineno}")
        if label is None:
            dropped += 1
            continue
        texts.append(tuple(fields[i] for i in text_idx))
        labels.append(label)
        if extra_idx is not None:
            extra.append(breakdown_value(fields[extra_idx], column, f"{path}:{lineno}"))
    return texts, labels, dropped, ({column: extra} if extra_idx is not None else {})


def _read_jsonl(task, path: Path, read_label):
    rename = dict(task.local.rename)
    column = breakdown_column(task)
    texts, labels, dropped, extra = [], [], 0, []
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: not a JSON object ({e.msg}); fix or remove the line") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}:{lineno}: a JSON {type(row).__name__}, expected an object; fix or remove the line")
            row = {rename.get(k, k): v for k, v in row.items()}
            missing = [k for k in [*task.text_fields, task.label_field] if k not in row]
            if missing:
                raise InputError(f"{path}:{lineno}: no field {missing} (the line has {sorted(row)}); fix the line, "
                                 f"or map the file's key to the field with local.rename in conf/task/{task.name}.yaml")
            bad = [k for k in task.text_fields if not isinstance(row[k], str)]
            if bad:
                raise InputError(f"{path}:{lineno}: field {bad[0]!r} is {row[bad[0]]!r}, not a text")
            label = read_label(row[task.label_field], f"{path}:{lineno}")
            if label is None:
                dropped += 1
                continue
            texts.append(tuple(row[k] for k in task.text_fields))
            labels.append(label)
            if column is not None:
                extra.append(breakdown_value(row.get(column), column, f"{path}:{lineno}"))
    return texts, labels, dropped, ({column: extra} if column is not None else {})


def breakdown_column(task) -> str | None:
    """The column the task's target records are broken down by (task.breakdown), or None."""
    breakdown = getattr(task, "breakdown", None)
    return str(breakdown.column) if breakdown is not None else None


def breakdown_value(raw, column: str, where: str) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {column}={raw!r} is not a number (the task's breakdown column); fix the row, "
                         "or drop breakdown from the task's config") from None


def read_local_split(task, folder: Path, split: str) -> Split:
    """Split `split` from its file in `folder`: JSON lines when the name ends in .jsonl, else
    tab-separated (header checked against local.columns when local.header)."""
    path = folder / task.local.files[split]
    if not path.is_file():
        raise InputError(missing_file_message(task, path, split))
    read = _read_jsonl if path.suffix == ".jsonl" else _read_tsv
    texts, labels, dropped, extra = read(task, path, _label_reader(task, task.local.label_codes, task.local.drop_labels))
    return Split(texts, labels, str(path), dropped, extra)


def read_hub_split(task, split: str, looked_in: list[Path] | None = None) -> Split:
    import datasets  # imported lazily: slow, and not needed for local data

    hub_split = task.hub.splits[split]
    try:
        ds = datasets.load_dataset(task.hub.path, task.hub.name, split=hub_split)
    except Exception as e:  # no network, no cache
        raise InputError(unreadable_message(task, [split], looked_in or [], f"the hub dataset {task.hub.path}/"
                         f"{task.hub.name} (split {hub_split}) could not be loaded ({type(e).__name__}: {e})")) from None
    fields = list(task.hub.text_fields or task.text_fields)
    label_field = task.hub.label_field or task.label_field
    missing = [f for f in [*fields, label_field] if f not in ds.column_names]
    if missing:
        raise InputError(f"hub {task.hub.path}/{task.hub.name}:{hub_split} has no column {missing} (it has "
                         f"{ds.column_names}); name the hub's columns with hub.text_fields / hub.label_field")
    read = _label_reader(task, task.hub.label_codes, task.hub.drop_labels)
    source = f"hub:{task.hub.path}/{task.hub.name}:{hub_split}"
    column = breakdown_column(task)
    column = column if column in ds.column_names else None     # a hub copy without it: no breakdown
    values = ds[column] if column else None
    texts, labels, dropped, extra = [], [], 0, []
    for i, (row, raw) in enumerate(zip(zip(*[ds[f] for f in fields]), ds[label_field])):
        label = read(raw, f"{source} row {i}")
        if label is None:
            dropped += 1
            continue
        texts.append(tuple(row))
        labels.append(label)
        if column:
            extra.append(breakdown_value(values[i], column, f"{source} row {i}"))
    return Split(texts, labels, source, dropped, {column: extra} if column else {})


def _local_folder(task, glue_dir: str | None, split: str) -> tuple[Path | None, list[Path]]:
    """The task's local folder (None: not found) and where it was looked for. An explicitly
    configured paths.glue_dir that lacks it is an error, not a silent fall-through to the hub."""
    candidates = glue_dir_candidates(glue_dir)
    for root in candidates:
        folder = root / task.local.folder
        if folder.is_dir():
            return folder, candidates
        if glue_dir:
            raise InputError(f"task {task.name}: folder {folder} does not exist under paths.glue_dir={glue_dir}. "
                             f"{_hint(task, split)}")
    return None, candidates


def locate(task, split: str, glue_dir: str | None) -> tuple[Path | None, list[Path]]:
    """Where split `split` of `task` would be read from, without reading it: (its local file,
    which may be missing; or None for the hub) and where the task's folder was looked for.
    Raises InputError when neither a local folder nor a hub split can serve it."""
    if split not in declared_splits(task):
        raise InputError(f"task {task.name} has no split {split!r}; it declares {declared_splits(task)} "
                         f"(local.files, hub.splits in conf/task/{task.name}.yaml)")
    looked_in: list[Path] = []
    if split in task.local.files:
        folder, looked_in = _local_folder(task, glue_dir, split)
        if folder is not None:
            return folder / task.local.files[split], looked_in
        if split not in task.hub.splits:
            raise InputError(f"task {task.name}: no folder {task.local.folder}/ in {', '.join(map(str, looked_in))}, "
                             f"and no hub split for {split!r} is declared. {_hint(task, split)}")
    return None, looked_in


def read_split(task, split: str, glue_dir: str | None) -> Split:
    """Split `split` of `task`: its local file when the task's folder is found, else the hub."""
    if task.resplit is not None and split in ("train", "dev"):   # a caller's slip, not a user's
        raise ValueError(f"task {task.name} cuts train and dev from {task.resplit.source}: read them with data.load_task")
    path, looked_in = locate(task, split, glue_dir)
    if path is not None:
        return read_local_split(task, path.parent, split)
    return read_hub_split(task, split, looked_in)


def missing_file_message(task, path: Path, split: str) -> str:
    return f"task {task.name}: missing data file {path}. {_hint(task, split)}"


def unreadable_message(task, splits: list[str], looked_in: list[Path], cause: str) -> str:
    """Splits of `task` that have no local copy here and cannot be read from the hub (`cause`):
    where the local folder was looked for, and how to point the run at one (GLUE_DIR)."""
    one = len(splits) == 1
    if any(s in task.local.files for s in splits):
        where = (f"{'has' if one else 'have'} no local copy (looked for {task.local.folder}/ in "
                 f"{', '.join(map(str, looked_in))})")
    else:
        where = f"{'is' if one else 'are'} declared on the hub only (no local file in local.files)"
    return (f"task {task.name}: the {' and '.join(splits)} split{'' if one else 's'} {where} and {cause}. "
            f"{_hint(task, splits[0])}")
