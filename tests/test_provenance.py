"""Every committed record can be reproduced from a commit: none was made from uncommitted code,
except the records listed in PENDING, whose reruns from a clean commit are under way."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from helpers.paths import REPO

RECORDS = sorted(p for kind in ("runs", "probes", "targets") for p in (REPO / "results").glob(f"*/{kind}/*.json"))

# Records made from a tree with uncommitted code, per experiment, that are known and being made again
# from a clean commit. The count must match exactly: a new dirty record fails, and so does an entry
# left here after its rerun landed (remove it then). The goal is an empty dict.
PENDING: dict[str, int] = {}


def dirty_counts() -> tuple[Counter, list[str]]:
    dirty, unknown = Counter(), []
    for path in RECORDS:
        versions = json.loads(path.read_text()).get("versions") or {}
        if versions.get("git_dirty") is True:
            dirty[path.relative_to(REPO / "results").parts[0]] += 1
        elif not versions.get("git_commit"):
            unknown.append(path.relative_to(REPO).as_posix())
    return dirty, unknown


@pytest.mark.skipif(not RECORDS, reason="no committed records under results/")
def test_no_committed_record_was_made_from_a_dirty_tree_beyond_the_declared_reruns():
    dirty, unknown = dirty_counts()
    assert not unknown, f"{len(unknown)} committed record(s) name no commit, e.g. {unknown[:3]}"
    new = {e: n for e, n in dirty.items() if n != PENDING.get(e)}
    stale = {e: n for e, n in PENDING.items() if dirty.get(e, 0) != n}
    assert not new and not stale, (
        f"records made from a tree with uncommitted code, per experiment: {dict(dirty)}; declared as pending "
        f"reruns: {PENDING}. Run new dirty records again from a commit (a worktree of it) and commit those; "
        f"remove an entry of tests/test_provenance.py's PENDING once its rerun has landed")
