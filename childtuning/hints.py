"""What an unknown config key probably meant: where a moved key lives now, or the known keys it is close to."""
from __future__ import annotations

import difflib
from pathlib import Path

# Keys of an older schema (or of the official code) -> where that setting lives now. A key given
# without a group ("reserve_p") matches it under any group.
MOVED = {
    "task.keep_ratio": "a method's per-task keep ratio lives with the method since schema 2: keep_ratio in "
                       "conf/method_task/<method>_<task>.yaml (e.g. conf/method_task/child_tuning_d_rte.yaml), "
                       "or method.keep_ratio=<value> on the command line",
    "reserve_p": "the official code's reserve_p is method.keep_ratio here (the fraction of weights KEPT)",
    "trainer.num_threads": "threads are a setting of how a run executes: impl.num_threads",
    "trainer.precision": "precision is a setting of how a run executes: impl.precision",
}


def flat_keys(tree, prefix: str = "") -> list[str]:
    """The dotted keys of a nested dict (a config as a container), leaves and inner nodes alike."""
    out = []
    for k, v in tree.items():
        key = f"{prefix}{k}"
        out.append(key)
        if isinstance(v, dict):
            out += flat_keys(v, f"{key}.")
    return out


def moved(key: str) -> str | None:
    """Where the setting of a moved key lives now, or None."""
    return MOVED.get(key) or MOVED.get(key.rsplit(".", 1)[-1])


def close_keys(key: str, known: list[str]) -> list[str]:
    """Known keys `key` was likely meant to be: close spellings of the whole key, else keys with
    the same or a close last part under another group (trainer.num_threads -> impl.num_threads)."""
    matches = difflib.get_close_matches(key, known, n=3, cutoff=0.8)
    if matches:
        return matches
    leaf = key.rsplit(".", 1)[-1]
    leaves = {}
    for k in known:
        leaves.setdefault(k.rsplit(".", 1)[-1], []).append(k)
    return [k for name in difflib.get_close_matches(leaf, list(leaves), n=2, cutoff=0.8) for k in leaves[name]][:3]


def suggestion(key: str, known: list[str]) -> str:
    """'; <where it lives now>' or '; did you mean X?' for unknown `key`, or '' when nothing is close."""
    where = moved(key)
    if where:
        return f"; {key} has moved: {where}"
    matches = close_keys(key, known)
    return f"; did you mean {' or '.join(matches)}?" if matches else ""


def siblings(key: str, known: list[str]) -> str:
    """The known keys beside `key` (same group), for a message: 'settings under trainer: a, b, c'."""
    parent = key.rsplit(".", 1)[0] if "." in key else ""
    names = sorted({k[len(parent) + 1:] if parent else k for k in known
                    if (k.startswith(parent + ".") if parent else True) and "." not in k[len(parent) + 1 if parent else 0:]})
    return f"settings under {parent or 'the top level'}: {', '.join(names)}" if names else ""


def missing_option(group: str, name: str, conf: Path) -> str:
    """`group=name` names no file <conf>/<group>/<name>.yaml: the close names, and the options."""
    known = sorted(p.stem for p in (Path(conf) / group).glob("*.yaml"))
    close = difflib.get_close_matches(name, known, n=2, cutoff=0.6)
    guess = f"; did you mean {' or '.join(f'{group}={c}' for c in close)}?" if close else ""
    return f"{group}={name}: there is no {Path(conf).name}/{group}/{name}.yaml{guess} (options: {', '.join(known)})"
