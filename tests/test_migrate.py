"""Migrating records written by an older schema: same numbers, today's run ids, targets into target records."""
from __future__ import annotations

import json

import childtuning.train as train_mod
from childtuning import SCHEMA_VERSION, migrate
from childtuning.record import run_id

from helpers.configs import MRPC_MAP, tiny_rte_cfg
from helpers.records import read_target_records


def as_schema_2(record: dict, targets: dict) -> dict:
    """What the schema-2 runner wrote for the same run: the targets inside the record and in its id."""
    old = {k: v for k, v in record.items() if k not in ("checksum", "predictions", "near_constant")}
    old["targets"] = {name: {"task": t["target"]["task"], "split": t["target"]["split"], "metrics": t["metrics"],
                             "main_metric": t["main_metric"]["name"], "size": t["size"], "dropped": t["dropped"],
                             "source": t["source"], "fingerprint": t["fingerprint"], "label_map": t["target"]["label_map"],
                             "majority_class": t["majority_class"], "degenerate": t["reason"]}
                      for name, t in targets.items()}
    old["target_seconds"] = 1.5
    old["schema_version"] = 2
    old["run_id"] = migrate._v2_run_id(old["config"])
    return old


def test_a_schema_2_record_with_targets_moves_them_into_target_records_under_todays_id(tmp_path, synthetic_glue):
    made = tmp_path / "made"
    record = train_mod.run(tiny_rte_cfg(made, synthetic_glue, "experiment=dt", f"targets=[{MRPC_MAP},rte:dev]"))
    targets = read_target_records(made)
    old = as_schema_2(record, targets)
    assert old["run_id"] != record["run_id"]                  # schema 2 hashed the targets into the id
    folder = tmp_path / "results" / "dt"
    (folder / "runs").mkdir(parents=True)
    (folder / "runs" / f"{old['run_id']}.json").write_text(json.dumps(old))
    log = migrate.migrate_experiment(folder)
    assert len(log) == 1 and f"-> {record['run_id']}" in log[0]
    new = json.loads((folder / "runs" / f"{record['run_id']}.json").read_text())
    assert not (folder / "runs" / f"{old['run_id']}.json").exists()
    assert new["schema_version"] == SCHEMA_VERSION and run_id(new["config"]) == new["run_id"] and "targets" not in new
    assert new["metrics"] == record["metrics"] and new["history"] == record["history"]
    assert new["migrated_from"][-1]["run_id"] == old["run_id"]
    moved = read_target_records(tmp_path / "results")
    assert sorted(moved) == sorted(targets)
    for name, t in targets.items():
        assert moved[name]["metrics"] == t["metrics"] and moved[name]["run_id"] == t["run_id"], name
        assert moved[name]["predictions"] is None               # not kept by schema 2: unknown, not invented
    assert migrate.migrate_experiment(folder) == []           # a second pass has nothing to do


def test_a_record_that_does_not_match_its_own_schema_rule_is_refused(tmp_path, synthetic_glue):
    import pytest

    record = train_mod.run(tiny_rte_cfg(tmp_path / "made", synthetic_glue, "experiment=dt"))
    old = {**record, "schema_version": 2, "run_id": record["run_id"][:-1] + "x"}
    folder = tmp_path / "results" / "dt"
    (folder / "runs").mkdir(parents=True)
    (folder / "runs" / f"{old['run_id']}.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="does not match its own config under schema 2"):
        migrate.migrate_experiment(folder)
