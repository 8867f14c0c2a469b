"""Hydra's own refusals of a command line (an unknown key, a missing config file), explained with the
likely fix: the key or file meant, the sweep cells concerned, where a moved key lives now."""
from __future__ import annotations

import re
from pathlib import Path

from omegaconf import OmegaConf

from . import REPO_ROOT, hints, sweep
from .preflight import label

UNKNOWN_KEY = re.compile(r"Could not (?:override|delete from config\.) '([^']+)'")
MISSING_OPTION = re.compile(r"Could not find '([^'/]+)/([^']+)'")


def command_line(argv: list[str]) -> tuple[list[str], bool]:
    """(the task overrides, whether -m/--multirun) of `python -m childtuning.train <argv>`."""
    from hydra._internal.utils import get_args_parser

    args = get_args_parser().parse_args(argv)
    return list(args.overrides), bool(args.multirun)


def key_of(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


class Composer:
    """Configs of this command line, composed as Hydra composes them (values unresolved)."""

    def __init__(self, conf: Path, config_name: str):
        self.conf, self.config_name = conf, config_name

    def __call__(self, overrides: list[str], multirun: bool = False):
        from hydra import initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra
        from hydra.types import RunMode

        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(self.conf), version_base="1.3"):
            mode = RunMode.MULTIRUN if multirun else RunMode.RUN
            return GlobalHydra.instance().hydra.compose_config(self.config_name, list(overrides), run_mode=mode)


def keys_of(cfg) -> list[str]:
    tree = OmegaConf.to_container(cfg, resolve=False)
    tree.pop("hydra", None)
    return hints.flat_keys(tree)


def unknown_key(key: str, bad: str, overrides: list[str], multirun: bool, compose: Composer) -> str:
    """Override `bad` names key `key`, which the composed config lacks (for a sweep: the config
    Hydra composes before it sweeps, from the defaults)."""
    rest = [o for o in overrides if o != bad]
    no_add = "" if bad.startswith("~") else \
        (f" (Hydra's advice to add it with +{key}=... does not help: every key is checked against the run's "
         "schema, and an unknown one is refused)")

    def no_such(known: list[str], where: str = "in the config") -> str:
        if hints.moved(key):
            return f"{bad}: no setting {key} {where}{hints.suggestion(key, known)}"
        return f"{bad}: no setting {key} {where}{hints.suggestion(key, known)} ({hints.siblings(key, known)}){no_add}"

    try:
        base = compose(rest, multirun)
    except Exception:  # noqa: BLE001 - another override is bad too: say what we can about this one
        return no_such([])
    if not multirun:
        return no_such(keys_of(base))
    params = OmegaConf.to_container(base.hydra.sweeper.params, resolve=True) if base.hydra.sweeper.get("params") else {}
    jobs = sweep.jobs(params, overrides)
    groups = set(base.hydra.runtime.choices)
    varying = {k for k in {key_of(o) for j in jobs for o in j} if len({o for j in jobs for o in j if key_of(o) == k}) > 1}
    lacking, by_choice, example = [], {}, None
    for job in jobs:
        choice = tuple(o for o in job if key_of(o) in groups or "/" in key_of(o))
        if choice not in by_choice:
            try:
                known = keys_of(compose(list(choice)))
                by_choice[choice] = (key not in known, known)
            except Exception:  # noqa: BLE001 - the cell is bad for another reason; pre-flight names it
                by_choice[choice] = (False, [])
        if by_choice[choice][0]:
            lacking.append(label(job, varying))
            example = example or by_choice[choice][1]
    if not lacking:
        group = key.split(".")[0]
        chosen = base.hydra.runtime.choices.get(group)
        value = bad.split("=", 1)[1]
        return (f"{bad}: every cell of this sweep has {key}, but Hydra applies a plain override to the config it "
                f"composes before sweeping{f' (with {group}={chosen}, the default)' if chosen else ''}, which has no "
                f"{key}. Write it as a one-value sweep: '{key}=choice({value})'")
    if len(lacking) == len(jobs):
        return no_such(example, "in any cell of this sweep")
    shown = ", ".join(lacking[:6]) + (f" and {len(lacking) - 6} more" if len(lacking) > 6 else "")
    return (f"{bad}: {key} is not a setting of {len(lacking)} of {len(jobs)} cell(s) of this sweep: {shown} "
            f"(in {lacking[0]}, the {hints.siblings(key, example)}). Set it "
            "only for the cells that have it: a separate launch for them, or the value in its file (a method's "
            "per-task value: conf/method_task/<method>_<task>.yaml)")


def explain(error: Exception, argv: list[str], conf: Path = REPO_ROOT / "conf", config_name: str = "config") -> str:
    """The message for Hydra's refusal `error` of `python -m childtuning.train <argv>`."""
    text = str(error).strip()
    cause = getattr(error, "__cause__", None)
    try:
        overrides, multirun = command_line(argv)
    except SystemExit:          # argparse refused the command line itself (it has said why)
        return text
    found = MISSING_OPTION.search(text)
    if found:
        return hints.missing_option(found.group(1), found.group(2), conf)
    found = UNKNOWN_KEY.search(text)
    bad = next((o for o in overrides if found and key_of(o) == found.group(1)), None)
    if found and bad is not None:
        return unknown_key(found.group(1), bad, overrides, multirun, Composer(conf, config_name))
    return text.split("\nSet the environment variable")[0] + (f"\n{cause}" if cause is not None else "")
