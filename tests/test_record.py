"""Run records on disk: an interrupted write never leaves a partial record, and the skip logic
never takes a partial or foreign file for a finished run."""
import builtins
import io
import json

import pytest
import torch

import childtuning.train as train_mod
from childtuning import SCHEMA_VERSION
from childtuning.config import validate
from childtuning.data import Split
from childtuning.integrity import read_complete
from childtuning.record import REQUIRED, run_id, sign, write_atomic
from helpers.configs import compose_cfg


def record(value: float) -> dict:
    rec = {key: None for key in REQUIRED} | {"schema_version": SCHEMA_VERSION, "run_id": "r", "status": "ok",
                                             "metrics": {"accuracy": value}, "history": [], "config": {}}
    return rec | {"main_metric": {"name": "accuracy", "value": value}, "notes": "x" * 5000}


class Interrupted(Exception):
    pass


def kill_writes_under(root, monkeypatch):
    """From now on, files opened for writing under `root` take half of the first write, then fail
    (a full disk or a killed job), whether written with Path.write_text, open() or json.dump."""
    real_open = builtins.open

    class HalfWriter:
        def __init__(self, f):
            self.f = f

        def write(self, text):
            self.f.write(text[: len(text) // 2])
            self.f.flush()
            raise Interrupted("disk full (simulated)")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def dying_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        writing = any(m in mode for m in "wax+") and str(file).startswith(str(root))
        return HalfWriter(f) if writing else f
    monkeypatch.setattr(builtins, "open", dying_open)
    monkeypatch.setattr(io, "open", dying_open)          # pathlib.Path.open calls io.open


def json_files(folder):
    return sorted(p.name for p in folder.glob("*.json"))


def test_interrupted_first_write_leaves_no_record(tmp_path, monkeypatch):
    path = tmp_path / "runs" / "r.json"
    kill_writes_under(tmp_path, monkeypatch)
    with pytest.raises(Interrupted):
        write_atomic(path, record(1.0))
    assert not path.exists() and read_complete(path) is None and json_files(path.parent) == []


def test_interrupted_rewrite_leaves_the_previous_record(tmp_path, monkeypatch):
    path = tmp_path / "runs" / "r.json"
    write_atomic(path, record(1.0))
    kill_writes_under(tmp_path, monkeypatch)
    with pytest.raises(Interrupted):
        write_atomic(path, record(2.0))
    assert read_complete(path) == sign(record(1.0)) and json_files(path.parent) == ["r.json"]


def test_record_that_fails_to_serialize_leaves_the_previous_record(tmp_path):
    path = tmp_path / "runs" / "r.json"
    write_atomic(path, record(1.0))
    with pytest.raises(TypeError):
        write_atomic(path, record(2.0) | {"zz_last": object()})   # fails after most of the text
    assert read_complete(path) == sign(record(1.0)) and json_files(path.parent) == ["r.json"]


def test_partial_or_foreign_files_are_not_complete_records(tmp_path):
    path = tmp_path / "r.json"
    text = json.dumps(record(1.0), indent=1)
    for cut in range(0, len(text) - 1, len(text) // 9):
        path.write_text(text[:cut])
        assert read_complete(path) is None, cut
    path.write_text(text[:-1])                                      # all but the closing brace
    assert read_complete(path) is None
    for key in REQUIRED:
        path.write_text(json.dumps({k: v for k, v in record(1.0).items() if k != key}))
        assert read_complete(path) is None, key
    path.write_text(json.dumps(record(1.0) | {"schema_version": SCHEMA_VERSION - 1}))
    assert read_complete(path) is None
    path.write_text(text)
    assert read_complete(path) == record(1.0)


def test_runner_reruns_over_a_partial_record_and_skips_a_complete_one(tmp_path, monkeypatch):
    cfg = compose_cfg("model=tiny_bert", "task=rte", "experiment=unit", f"paths.results={tmp_path}")
    path = tmp_path / "unit" / "runs" / f"{run_id(validate(cfg))}.json"
    path.parent.mkdir(parents=True)

    class Started(Exception):
        pass

    def started(_cfg):
        raise Started
    monkeypatch.setattr(train_mod, "load_data", started)          # the first step of a real run
    complete = record(1.0) | {"run_id": path.stem}          # a record of another run id is foreign, not complete
    text = json.dumps(complete)
    path.write_text(text[: len(text) // 2])
    with pytest.raises(Started):
        train_mod.run(cfg)
    path.write_text(text)
    assert train_mod.run(cfg) == complete


# ---------------------------------------------------------------- what the record reports
def epoch(n: int, f1: float, degenerate: str | None = None) -> dict:
    return {"epoch": n, "step": 10 * n, "metrics": {"f1": f1, "accuracy": f1 - 5}, "train_loss": 0.7 - n / 10,
            "degenerate": degenerate}


def made_up_record(history: list[dict]) -> dict:
    """build_record on a run whose history is made up (no training)."""
    cfg = validate(compose_cfg("model=tiny_bert", "task=mrpc", "experiment=unit"))
    splits = {s: Split([("a", "b")] * 4, [0, 1, 0, 1], f"{s}.tsv") for s in ("train", "dev")}
    state = {"history": history, "status": "ok", "reason": None, "step": history[-1]["step"], "seconds": 1.0,
             "prepare_seconds": 0.0}
    return train_mod.build_record(cfg, run_id(cfg), splits, torch.device("cpu"), "2024-01-01T00:00:00+00:00",
                                  state, None, train_mod.build_method(cfg), {})


def test_headline_is_the_last_epoch_and_the_best_epoch_is_kept_apart():
    history = [epoch(1, 60.0), epoch(2, 80.0), epoch(3, 70.0)]      # the best epoch is not the last
    rec = made_up_record(history)
    assert rec["main_metric"]["name"] == "f1" and rec["main_metric"]["value"] == 70.0
    assert rec["metrics"] == {"f1": 70.0, "accuracy": 65.0} and rec["steps"] == 30
    assert rec["best_epoch"]["epoch"] == 2 and rec["best_epoch"]["value"] == 80.0
    assert rec["history"] == history and rec["status"] == "ok"


def test_status_follows_the_last_epoch_not_the_best():
    rec = made_up_record([epoch(1, 50.0), epoch(2, 80.0), epoch(3, 0.0, "constant predictions")])
    assert rec["status"] == "degenerate" and rec["reason"] == "constant predictions"
    assert rec["main_metric"]["value"] == 0.0 and rec["best_epoch"]["epoch"] == 2
    rec = made_up_record([epoch(1, 0.0, "constant predictions"), epoch(2, 55.0)])
    assert rec["status"] == "ok" and rec["reason"] is None and rec["main_metric"]["value"] == 55.0


def test_the_tools_default_results_folder_is_the_paths_config_one(monkeypatch, tmp_path):
    """aggregate and protocol take their --results default from conf/paths/default.yaml, as runs do."""
    from childtuning.record import default_results

    monkeypatch.delenv("CHILDTUNING_RESULTS", raising=False)
    assert default_results() == "results"
    monkeypatch.setenv("CHILDTUNING_RESULTS", str(tmp_path))
    assert default_results() == str(tmp_path)


def test_a_checkout_copied_without_git_names_its_commit_from_the_environment(monkeypatch):
    """A device machine gets the tracked files without .git: the commit the carry was packed from
    (benchmarks/gpu_carry.py, clean trees only) comes in CHILDTUNING_GIT_COMMIT; git, where it
    answers, wins."""
    import subprocess

    from childtuning import record as record_mod

    answered = record_mod.versions()
    assert answered["git_commit"]                          # this checkout has git
    monkeypatch.setenv(record_mod.COMMIT_VARIABLE, "f" * 40)
    assert record_mod.versions()["git_commit"] == answered["git_commit"]
    silent = subprocess.CompletedProcess([], 128, stdout="", stderr="not a git repository")
    monkeypatch.setattr(record_mod.subprocess, "run", lambda *a, **k: silent)
    assert (record_mod.versions()["git_commit"], record_mod.versions()["git_dirty"]) == ("f" * 40, False)
    monkeypatch.delenv(record_mod.COMMIT_VARIABLE)
    assert record_mod.versions()["git_commit"] is None
