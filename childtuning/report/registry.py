"""Table kinds by name: each kind checks its spec, computes its summary and writes its files."""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError


class TableKind:
    """One kind of table. A new kind (e.g. domain transfer: rows method per source task, columns
    evaluation targets) subclasses this, sets `name` and is registered with `@register`; the
    shared loading, grid and statistics code does not branch on kinds."""
    name = ""

    def check(self, spec, where: str) -> None:
        """Raise InputError when the spec's layout is not one this kind can draw."""

    def summarize(self, spec, records, skipped: list[str]):
        """Everything the renderers need, computed once from the spec and the records."""
        raise NotImplementedError

    def render(self, summary) -> dict[str, str]:
        """The text files of the table, by file name (at least table.md)."""
        raise NotImplementedError

    def comparisons(self, summary) -> list:
        """The summary's comparisons, as (frame, rows) pairs: a frame with a `p` column and a boolean
        mask of its rows that are tested comparisons (None: all). The aggregator fills the frame's
        `p_holm` over the whole family (report/family.py). None by default."""
        return []

    def plot(self, summary, folder: Path) -> list[Path]:
        """Figures written under `folder`; none by default."""
        return []


KINDS: dict[str, TableKind] = {}


def register(cls: type[TableKind]) -> type[TableKind]:
    """Class decorator: make the kind available as `table.kind: <cls.name>`."""
    if not cls.name or cls.name in KINDS:
        raise ValueError(f"table kind {cls.__name__} needs a name not yet taken (taken: {sorted(KINDS)})")
    KINDS[cls.name] = cls()
    return cls


def get(name: str, where: str = "the table spec") -> TableKind:
    if name not in KINDS:
        raise InputError(f"{where}: table.kind={name!r} is unknown; known kinds: {', '.join(sorted(KINDS))}")
    return KINDS[name]
