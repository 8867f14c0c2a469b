"""An experiment's declared comparisons (`table.comparisons:`): the schema, its checks and its digest.

    table:
      comparisons:
        design: paired        # paired: runs of one seed share data subset, order and head init under
                              #   every method, so a difference is taken seed by seed; or unpaired
        interval: t           # paired: t (Student t of the mean paired difference) or bca (paired BCa
                              #   bootstrap); unpaired: always Welch-Satterthwaite t
        test: t               # paired: t (paired t-test) or sign_flip (permutation); unpaired: always Welch
        level: 0.95           # the interval's coverage; Holm's alpha is 1 - level
        margin: null          # or a positive number in the metric's points: "equivalent" = the interval
                              #   lies inside +-margin
        joins: null           # or another experiment's name: adjust this table's comparisons together
                              #   with that experiment's family
        amended: []           # [{date: YYYY-MM-DD, reason: text}]: changes made after records existed

A run record carries `comparisons_digest` = digest(the block it ran under); the aggregator compares
it with the file's current digest, so a family changed after the runs shows (see
childtuning/report/family.py). This module is low-level: the runner imports it, so it imports
nothing from childtuning but the error type.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field

from omegaconf import OmegaConf

from .errors import InputError

DESIGNS = ("paired", "unpaired")
INTERVALS = ("t", "bca")
TESTS = ("t", "sign_flip")
KEYS = ("design", "interval", "test", "level", "margin", "joins", "amended")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")       # an experiment name (its file's stem)
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Amendment:
    date: str       # YYYY-MM-DD
    reason: str


@dataclass(frozen=True)
class Declaration:
    """A checked `table.comparisons:` block with its defaults filled in."""
    design: str = "paired"
    interval: str = "t"
    test: str = "t"
    level: float = 0.95
    margin: float | None = None
    joins: str | None = None
    amended: tuple[Amendment, ...] = field(default_factory=tuple)

    @property
    def alpha(self) -> float:
        return 1.0 - self.level

    def canonical(self) -> dict:
        """What the digest covers: every key but `amended` (an amendment says why the family
        changed; it does not change the family)."""
        return {k: v for k, v in asdict(self).items() if k != "amended"}

    def digest(self) -> str:
        """The first 16 hex digits of the SHA-256 of canonical() as sorted, compact JSON."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _plain(block):
    """A mapping or None from a dict, an OmegaConf node or None."""
    return OmegaConf.to_container(block, resolve=True) if OmegaConf.is_config(block) else block


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _amendments(value, where: str) -> tuple[Amendment, ...]:
    example = '[{date: 2026-12-05, reason: "declared after these records were made"}]'
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise InputError(f"{where}.amended must be a list of {{date, reason}} entries, e.g. {example} (got {value!r})")
    out = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or set(entry) != {"date", "reason"}:
            raise InputError(f"{where}.amended[{i}] must have exactly the keys date and reason, e.g. {example} "
                             f"(got {entry!r})")
        date = entry["date"]
        if isinstance(date, datetime.date):          # plain YAML reads 2026-12-05 as a date
            date = date.isoformat()
        valid = isinstance(date, str) and DATE.match(date)
        try:
            valid = valid and datetime.date.fromisoformat(date)
        except ValueError:
            valid = False
        if not valid:
            raise InputError(f"{where}.amended[{i}].date must be a date written YYYY-MM-DD (got {entry['date']!r})")
        reason = entry["reason"]
        if not isinstance(reason, str) or not reason.strip():
            raise InputError(f"{where}.amended[{i}].reason must say why the declaration changed after records "
                             "existed (a non-empty text)")
        out.append(Amendment(date=date, reason=reason.strip()))
    return tuple(out)


def read(block, where: str = "table.comparisons") -> Declaration:
    """The declaration of `block` (a mapping, an OmegaConf node or None for all defaults), checked.
    Raises InputError naming the key and the fix."""
    block = _plain(block)
    if block is None:
        return Declaration()
    if not isinstance(block, dict):
        raise InputError(f"{where} must be a mapping with keys {', '.join(KEYS)} (got {block!r})")
    unknown = sorted(set(block) - set(KEYS), key=str)
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; the keys are {', '.join(KEYS)}")
    got = {k: v for k, v in block.items() if v is not None or k in ("margin", "joins")}
    design = got.get("design", "paired")
    if design not in DESIGNS:
        raise InputError(f"{where}.design must be one of {', '.join(DESIGNS)} (got {design!r}): paired when runs "
                         "of one seed share data subset, order and head initialisation under every method")
    interval, test = got.get("interval", "t"), got.get("test", "t")
    if interval not in INTERVALS:
        raise InputError(f"{where}.interval must be one of {', '.join(INTERVALS)} (got {interval!r})")
    if test not in TESTS:
        raise InputError(f"{where}.test must be one of {', '.join(TESTS)} (got {test!r})")
    if design == "unpaired" and (interval != "t" or test != "t"):
        raise InputError(f"{where}: an unpaired comparison always uses Welch's interval and test; delete "
                         f"interval: {interval} / test: {test}, or declare design: paired")
    level = _number(got.get("level", 0.95))
    if level is None or not 0.5 <= level < 1:
        raise InputError(f"{where}.level must be a number in [0.5, 1), e.g. 0.95 (got {got.get('level')!r})")
    margin = got.get("margin")
    if margin is not None:
        margin = _number(margin)
        if margin is None or margin <= 0:
            raise InputError(f"{where}.margin must be null or a positive number in the metric's points "
                             f"(got {got['margin']!r})")
    joins = got.get("joins")
    if joins is not None and not (isinstance(joins, str) and NAME.match(joins)):
        raise InputError(f"{where}.joins must be null or another experiment's name, e.g. prior_methods_cpu "
                         f"(got {joins!r})")
    return Declaration(design=design, interval=interval, test=test, level=level, margin=margin, joins=joins,
                       amended=_amendments(got.get("amended"), where))


def digest(block, where: str = "table.comparisons") -> str:
    """The first 16 hex digits of the SHA-256 of the checked declaration's canonical JSON, defaults
    filled in, `amended` left out: equal for two blocks that declare the same family and tests."""
    return read(block, where).digest()
