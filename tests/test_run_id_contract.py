"""The run-id contract (childtuning/schemas.py, record.id_contract): every config key has a declared
way of entering the run id, and a new key fails here until it is given one on purpose."""
from __future__ import annotations

import json

from childtuning.record import id_contract

from helpers.paths import REPO

CONTRACT = REPO / "tests" / "run_id_contract.json"


def test_every_config_key_has_a_declared_run_id_status():
    now, declared = id_contract(), json.loads(CONTRACT.read_text(encoding="utf-8"))
    new = sorted(set(now) - set(declared))
    gone = sorted(set(declared) - set(now))
    changed = sorted(k for k in set(now) & set(declared) if now[k] != declared[k])
    assert not new, (f"config key(s) {new} have no declared run-id status. A key that changes what a run computes "
                     "but came after committed records is `added_later(<old value>)`; where it only locates or "
                     "logs things, `not_outcome(...)`; otherwise it enters the id (childtuning/schemas.py). Then "
                     "add it to tests/run_id_contract.json with its status")
    assert not gone and not changed, (f"keys removed {gone} or given another status {changed}: committed run ids "
                                      "may move; check tests/test_committed_results.py, then update "
                                      "tests/run_id_contract.json")
    assert set(now.values()) <= {"id", "not_outcome", "added_later", "impl", "out"}
