"""The probe's settings: their schema, their values (conf/probe/default.yaml < the experiment's
`probe:` block < `probe.<key>=` on the command line) and their checks."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .. import REPO_ROOT
from ..errors import check
from ..fields import not_outcome
from ..errors import InputError
from ..fields import added_later, id_part
from .features import REPRESENTATIONS

DEFAULTS = REPO_ROOT / "conf" / "probe" / "default.yaml"


@dataclass
class ProbeConfig:
    """Values: conf/probe/default.yaml (with where each comes from)."""
    lr: float = MISSING
    epochs: int = MISSING
    batch_size: int = MISSING
    representation: str = MISSING
    max_length: int = MISSING
    standardize: bool = added_later(False)   # in the run id only when true (probe ids made before it existed stay)
    targets: list[str] = not_outcome(default_factory=list)
    head_seeds: list[int] = not_outcome(default_factory=list)
    reference: bool = not_outcome(default=True)
    sources: list[str] = not_outcome(default_factory=list)
    shard: Optional[str] = not_outcome(default=None)   # noqa: UP045 (OmegaConf reads Optional)


def shard_of(settings) -> tuple[int, int]:
    """(k, n) of `probe.shard` "k/n" (this process takes encoders k, k+n, ... of the plan); (0, 1) when unset."""
    if settings.shard is None:
        return 0, 1
    k, _, n = str(settings.shard).partition("/")
    try:
        k, n = int(k), int(n)
    except ValueError:
        k, n = -1, 0
    check(0 <= k < n, f"probe.shard={settings.shard!r}: write k/n with 0 <= k < n, e.g. probe.shard=0/2 and 1/2 for "
                      "two processes side by side")
    return k, n


def outcome(settings) -> dict:
    """The settings that change what a probe computes (its run id): the head's training and what
    it reads; not which probes are run (targets, head seeds, reference, sources)."""
    values = OmegaConf.to_container(settings, resolve=True)
    return id_part(ProbeConfig, {f.name: values[f.name] for f in fields(ProbeConfig)})


def load(block=None, overrides: list[str] = ()):
    """The checked probe settings: the defaults, then `block` (an experiment's `probe:`), then
    `overrides` ("key=value", the command line's probe.* without the prefix)."""
    layers = [OmegaConf.structured(ProbeConfig), OmegaConf.load(DEFAULTS)]
    if block is not None:
        layers.append(block)
    try:
        if overrides:
            layers.append(OmegaConf.from_dotlist(list(overrides)))
        settings = OmegaConf.merge(*layers)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or ""
        raise InputError(f"probe setting `probe.{key}`: {getattr(e, 'msg', e)}. Known settings: "
                         f"{', '.join(f.name for f in fields(ProbeConfig))} (conf/probe/default.yaml)") from None
    check(settings.lr > 0 and settings.epochs > 0 and settings.batch_size > 0 and settings.max_length > 0,
          "probe.lr, probe.epochs, probe.batch_size and probe.max_length must be positive")
    check(settings.representation in REPRESENTATIONS,
          f"probe.representation={settings.representation!r}; use one of {', '.join(REPRESENTATIONS)}")
    check(len(settings.targets) > 0, "probe.targets is empty: name the target tasks, e.g. probe.targets=[cola,mrpc,stsb,rte]")
    check(len(set(settings.targets)) == len(settings.targets), f"probe.targets lists a task twice: {list(settings.targets)}")
    check(len(settings.head_seeds) > 0 and len(set(settings.head_seeds)) == len(settings.head_seeds),
          f"probe.head_seeds={list(settings.head_seeds)}: give one or more distinct seeds")
    shard_of(settings)
    return settings
