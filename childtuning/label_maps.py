"""Label mapping for evaluation targets: a source task's predicted labels read as a target task's.

A model fine-tuned on one task (the source, e.g. MNLI: entailment / neutral / contradiction) is
evaluated on another (the target, e.g. SciTail: entailment / neutral) by mapping each predicted
source label to a target label by name. The map is declared, never guessed:

- by name (`by_name`): each source label to the target label of the same name (MNLI -> SNLI);
- a named map from the target's task file, `label_maps.<name>` (source label -> target label),
  e.g. SciTail's `default` (contradiction -> neutral) or QQP's `default` and `literal`;
- an explicit {source label: target label} mapping given in the experiment config.

With no choice, a target's `default` map is used when it covers exactly the source's labels, else
`by_name`. Every check runs on the task configs alone, before any model loads (InputError).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import InputError
from .readers import declared_splits, source_split
from .tasks import load_task_config

BY_NAME = "by_name"
DEFAULT = "default"


@dataclass(frozen=True)
class LabelMapping:
    """How `source`'s predicted labels read as `target`'s; `index[i]` is the target class of
    source class i (both in their task's `labels` order)."""
    source: str
    target: str
    name: str                         # by_name, a label_maps entry of the target, or "explicit"
    pairs: tuple[tuple[str, str], ...]  # (source label, target label), in source label order
    index: tuple[int, ...]

    def apply(self, predictions: Sequence[int]) -> list[int]:
        """Target class indices for predicted source class indices."""
        n = len(self.index)
        bad = [p for p in predictions if not 0 <= int(p) < n]
        if bad:
            raise ValueError(f"prediction {bad[0]} is not a class of {self.source} ({n} labels)")
        return [self.index[int(p)] for p in predictions]

    def as_record(self) -> dict:
        """What a run record keeps of the mapping (with the target's metrics)."""
        return {"name": self.name, "pairs": dict(self.pairs)}


def _pairs_for(source, target, choice) -> tuple[str, dict]:
    """(name, {source label: target label}) for `choice`: None, by_name, a map name, or a mapping."""
    maps = dict(target.label_maps or {})
    if isinstance(choice, Mapping):
        return "explicit", {str(k): str(v) for k, v in choice.items()}
    if choice is None:
        default = maps.get(DEFAULT)
        choice = DEFAULT if default is not None and set(default) == set(source.labels) else BY_NAME
    if choice == BY_NAME:
        return BY_NAME, {label: label for label in source.labels}
    if choice not in maps:
        raise InputError(f"target {target.name}: no label map {choice!r}; choose {BY_NAME}, one of its label_maps "
                         f"{sorted(maps)} (conf/task/{target.name}.yaml), or give the mapping itself "
                         "({source label: target label})")
    return choice, {str(k): str(v) for k, v in maps[choice].items()}


def resolve(source, target, choice: str | Mapping | None = None) -> LabelMapping:
    """The checked mapping from task config `source`'s labels to task config `target`'s.

    Errors (InputError): a regression on either side; a mapping that names a label neither side
    has, or a target label as a source label; a source label left unmapped; a target label that
    no prediction can reach."""
    if target.regression:
        raise InputError(f"target {target.name} is a regression task; a {'regression' if source.regression else 'classification'} "
                         f"source ({source.name}) has no class predictions to map to its scores. Evaluate "
                         f"{target.name} only with a model trained on a regression task, or choose a classification target")
    if source.regression:
        raise InputError(f"source {source.name} is a regression task: its predictions are scores, not labels "
                         f"that could map to target {target.name}'s labels {list(target.labels)}")
    src, tgt = [str(x) for x in source.labels], [str(x) for x in target.labels]
    name, pairs = _pairs_for(source, target, choice)
    where = f"label map {name!r} from {source.name} to {target.name}"
    unknown = sorted(set(pairs) - set(src))
    if unknown:
        reversed_ = [k for k in unknown if k in tgt]
        raise InputError(f"{where} maps from {unknown}, which {source.name}'s labels {src} do not include"
                         + (f" ({reversed_} are {target.name}'s labels: a map reads source labels as target labels, "
                            "{source label: target label})" if reversed_ else "")
                         + "; fix the map's keys")
    unknown = sorted(set(pairs.values()) - set(tgt))
    if unknown:
        raise InputError(f"{where} maps to {unknown}, which {target.name}'s labels {tgt} do not include; "
                         f"fix the map's values, or choose a map of conf/task/{target.name}.yaml's label_maps")
    unmapped = [x for x in src if x not in pairs]
    if unmapped:
        raise InputError(f"{where}: predicted {source.name} label(s) {unmapped} have no {target.name} label; "
                         f"map each of {src} to one of {tgt} (e.g. a label_maps entry in conf/task/{target.name}.yaml)")
    unreachable = [y for y in tgt if y not in pairs.values()]
    if unreachable:
        raise InputError(f"{where}: no prediction can become {target.name}'s {unreachable} (the map sends {src} "
                         f"only to {sorted(set(pairs.values()))}), so that part of the target could never be "
                         "scored right; fix the map so that every target label is reached")
    ordered = tuple((x, pairs[x]) for x in src)
    return LabelMapping(source.name, target.name, name, ordered, tuple(tgt.index(y) for _, y in ordered))


def _training_data(task) -> set[tuple]:
    """Where `task`'s training examples come from: its local file and hub split (for a resplit
    task, the split it cuts train from)."""
    return _data_of(task, source_split(task, "train"))


def _data_of(task, split: str) -> set[tuple]:
    out = set()
    if split in task.local.files:
        out.add(("local", task.local.folder, task.local.files[split]))
    if split in task.hub.splits:
        out.add(("hub", task.hub.path, task.hub.name, task.hub.splits[split]))
    return out


def check_target(source, target: str, split: str = "dev", choice: str | Mapping | None = None,
                 config_dir=None):
    """(target task config, its LabelMapping) for evaluating a model trained on task config
    `source` on split `split` of task `target` (conf/task/<target>.yaml); every error is an
    InputError raised before any data or model is read."""
    try:
        target_cfg = load_task_config(target, config_dir)
    except InputError as e:
        raise InputError(f"evaluation target {target!r}: {e}") from None
    if split not in declared_splits(target_cfg):
        raise InputError(f"target {target}: no split {split!r}; conf/task/{target}.yaml declares "
                         f"{declared_splits(target_cfg)} (local.files, hub.splits)")
    shared = _training_data(source) & _data_of(target_cfg, split)
    if shared:
        raise InputError(f"target {target}:{split} reads the data {source.name} trains on ({sorted(shared)[0]}): "
                         f"it would score the model on its own training examples. Evaluate {source.name}'s "
                         "in-domain set as its dev split, and choose another target")
    return target_cfg, resolve(source, target_cfg, choice)
