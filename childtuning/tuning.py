"""A tuning protocol's declaration (`protocol:` in an experiment file: search stage, selection
rule, what the candidates are scored on) and the values it chose, read back by the resolver
`${selected:<key>}`. The search and the choice themselves (which read the search's records through
the report) are childtuning/protocol.py, `python -m childtuning.protocol`.

An experiment file with a `protocol:` block reports runs whose hyper-parameters were chosen by a
rule on another experiment's runs (the search stage), on seeds disjoint from the reported ones:

    protocol:
      search: lr_search_tuned_cpu       # the search stage: an experiment with its own sweep
      select: [trainer.lr]              # the values chosen (each a row axis of the search's table)
      per: [model, method]              # chosen separately for each model x method
      rule: best_mean_over_tasks        # a rule registered below, fixed before the search ran
      score_on: heldout                 # what the candidates are scored on (SCORE_ON below; the default)

and reads each chosen value with the resolver `${selected:<key>}` (e.g. `trainer.lr:
${selected:trainer.lr}`), so its sweep stays a static Hydra sweep and no value is copied by hand.
An experiment that reuses another's choice names it: `protocol: {selection_from: <experiment>}`.
Either form may declare stand-ins for values the search did not cover, before any run:

    protocol:
      selection_from: table1_cpu_tuned
      stand_in: {method: {mixout: vanilla, child_tuning_d+mixout: child_tuning_d}}

(a Mixout run takes the value chosen for vanilla, a Child-Tuning_D + Mixout run Child-Tuning_D's);
the table's protocol section lists them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from omegaconf import OmegaConf

from .errors import InputError
from .sweep import composer, find_experiment_file, unknown_experiment

SELECTION_FILE = "selection.json"
# What the search stage's candidates are scored on (protocol.score_on). heldout, the default: each
# search run's own training examples outside its training subset, scored as the target
# "<task>:heldout" (childtuning/targets.py), so the choice never reads the dev set the confirmation
# stage reports. dev: the search runs' dev scores, the set the tables report (what the first
# protocols did; a table built on such a choice is selected on its own test data).
HELDOUT = "heldout"
SCORE_ON = {HELDOUT: "each search run's training examples outside its training subset (target <task>:heldout)",
            "dev": "the search runs' dev sets, which the confirmation stage also reports"}
RESOLVER = "selected"
RULES: dict[str, Callable] = {}
RULE_TEXT: dict[str, str] = {}


def rule(name: str, text: str):
    """Decorator: register a selection rule as `protocol.rule: <name>`, with its one-line statement."""
    def add(fn):
        if name in RULES:
            raise ValueError(f"selection rule {name!r} registered twice")
        RULES[name], RULE_TEXT[name] = fn, text
        return fn
    return add


@rule("best_mean_over_tasks", "for each model x method, the candidate with the highest average over the search's "
      "tasks of the per-task mean main metric over the search seeds (runs without a score left out of a mean, as in "
      "the tables); a candidate with no score on some task cannot be chosen; ties go to the first candidate in "
      "the search's sweep order")
def best_mean_over_tasks(candidates: list[dict], tasks: list[str]) -> dict | None:
    """The chosen candidate among `candidates` (each with `per_task` means), or None if none has
    a score on every task."""
    best = None
    for c in candidates:
        means = [c["per_task"].get(t) for t in tasks]
        c["score"] = sum(means) / len(means) if all(m is not None for m in means) else None
        if c["score"] is not None and (best is None or c["score"] > best["score"]):
            best = c
    return best


# ----------------------------------------------------------------------------- the resolver
def selection_path(results: str | Path, experiment: str) -> Path:
    return Path(results) / experiment / SELECTION_FILE


def owner(cfg) -> str:
    """The experiment whose selection a config reads: its protocol's `selection_from`, else itself."""
    block = OmegaConf.select(cfg, "protocol")
    source = block.get("selection_from") if OmegaConf.is_dict(block) else None
    return str(source or OmegaConf.select(cfg, "experiment"))


def axis_of(cfg, axis: str):
    """A `per` axis's value in a run config (config groups by their name, like the tables)."""
    return OmegaConf.select(cfg, f"{axis}.name" if axis in ("model", "task", "method") else axis)


def selected(key: str, *, _root_):
    """`${selected:<key>}`: the value the protocol chose for `key` for this run's model, method, ..."""
    experiment = owner(_root_)
    path = selection_path(OmegaConf.select(_root_, "paths.results"), experiment)
    if not path.is_file():
        raise InputError(f"{key} of this run is chosen by the tuning protocol of experiment {experiment}, which has "
                         f"not chosen yet: no {path}. Run its search stage, then `python -m childtuning.protocol "
                         f"{experiment} --results {path.parent.parent}`")
    doc = json.loads(path.read_text(encoding="utf-8"))
    if key not in doc["select"]:
        raise InputError(f"{path} chooses {doc['select']}, not {key}")
    stand_in = OmegaConf.select(_root_, "protocol.stand_in") or {}
    want = {}
    for axis in doc["per"]:
        value = str(axis_of(_root_, axis))
        want[axis] = str((stand_in.get(axis) or {}).get(value, value))
    for choice in doc["choices"]:
        if {axis: str(choice["where"][axis]) for axis in doc["per"]} == want:
            return choice["values"][key]
    raise InputError(f"{path} has no choice for {want} (it chose for "
                     f"{[c['where'] for c in doc['choices']]}): is this run part of the search's grid? A value "
                     "the search did not cover can take another's choice: protocol.stand_in (childtuning/protocol.py)")


if not OmegaConf.has_resolver(RESOLVER):
    OmegaConf.register_new_resolver(RESOLVER, selected)


# ----------------------------------------------------------------------------- selecting
def read_protocol(experiment: str) -> dict:
    """The experiment file's `protocol:` block (InputError if it has none)."""
    path = find_experiment_file(experiment)
    if path is None:
        raise unknown_experiment(experiment)
    with composer(path) as compose_with:
        block = OmegaConf.select(compose_with(), "protocol")
    if not OmegaConf.is_dict(block):
        raise InputError(f"{path} declares no `protocol:` block (search, select, per, rule; or selection_from)")
    return OmegaConf.to_container(block, resolve=True)


def check_stand_in(where: str, stand_in: dict, per: list[str]) -> None:
    """Refuse stand-ins on an axis the choices are not made per."""
    if set(stand_in) - set(per):
        raise InputError(f"{where}: protocol.stand_in names axes {sorted(set(stand_in) - set(per))}, but choices "
                         f"are made per {per}: a stand-in replaces a value of one of those")


def check_protocol(where: str, block: dict) -> dict:
    """The block (of the experiment file `where`) with defaults filled in, its rule checked."""
    stand_in = block.get("stand_in") or {}
    if not isinstance(stand_in, dict) or not all(isinstance(m, dict) for m in stand_in.values()):
        raise InputError(f"{where}: protocol.stand_in must map an axis to {{value: the value whose choice it "
                         f"takes}}, e.g. {{method: {{mixout: vanilla}}}}; got {stand_in!r}")
    extra = {"stand_in": {str(a): {str(k): str(v) for k, v in m.items()} for a, m in stand_in.items()}} if stand_in else {}
    if block.get("selection_from"):
        return {"selection_from": str(block["selection_from"]), **extra}
    missing = [k for k in ("search", "select", "rule") if not block.get(k)]
    if missing:
        raise InputError(f"{where}: protocol needs {', '.join(missing)} (or selection_from)")
    if block["rule"] not in RULES:
        raise InputError(f"{where}: protocol.rule={block['rule']!r}; known rules: {sorted(RULES)}")
    score_on = str(block.get("score_on") or HELDOUT)
    if score_on not in SCORE_ON:
        raise InputError(f"{where}: protocol.score_on={score_on!r}; use one of {sorted(SCORE_ON)}")
    per = [str(a) for a in block.get("per") or ["model", "method"]]
    check_stand_in(where, extra.get("stand_in", {}), per)
    return {"search": str(block["search"]), "select": [str(k) for k in block["select"]],
            "per": per, "rule": str(block["rule"]), "score_on": score_on, **extra}
