"""Sweeps on a real cluster: run leases, preemption signals with mid-epoch checkpoints, corrupt
records, a full or unwritable results folder (issue 17; the chaos test is tests/test_chaos.py,
the launch-time check of a sweep tests/test_preflight.py)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import childtuning.loop as loop_mod
import childtuning.train as train_mod
from childtuning import integrity, lease, signals, storage
from childtuning import record as record_mod
from childtuning.aggregate import aggregate
from helpers.configs import compose_cfg
from helpers.glue import write_synthetic_glue
from helpers.paths import REPO


def tiny(results, glue, *extra):
    return compose_cfg("model=tiny_bert", "task=rte", "task.max_train_samples=24", "trainer.epochs=2",
                       "trainer.batch_size=8", "impl.progress_bar=false", f"paths.results={results}",
                       f"paths.glue_dir={glue}", f"paths.cache={results}/cache", *extra)


def write_lease(folder: Path, rid: str, age: float = 0.0, **owner) -> Path:
    """A lease file as another process would have left it, its heartbeat `age` seconds old."""
    folder.mkdir(parents=True, exist_ok=True)
    body = {"run_id": rid, "host": "node-17", "pid": 4242, "job": "991_3", "restart": 0, "token": "f" * 32,
            "started_at": "2026-01-01T00:00:00+00:00", **owner}
    path = folder / f"{rid}.lease"
    path.write_text(json.dumps(body))
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------- leases
def test_a_lease_is_exclusive_renewed_and_released(tmp_path):
    first = lease.Lease(tmp_path, "run.a", timeout_s=60, heartbeat_s=0.05)
    assert first.acquire() is None and first.held
    mtime = first.path.stat().st_mtime
    time.sleep(0.3)
    assert first.path.stat().st_mtime > mtime                    # the heartbeat renews it
    second = lease.Lease(tmp_path, "run.a", timeout_s=60, heartbeat_s=0.05)
    owner = second.acquire()                                     # live: this process, held
    assert owner is not None and owner.pid == os.getpid() and owner.token == first.token and not second.held
    first.release()
    assert not first.path.exists()
    assert second.acquire() is None                              # free again
    second.release()


def test_a_live_lease_of_another_host_is_respected_a_stale_one_taken_over(tmp_path):
    write_lease(tmp_path, "run.b", age=5)
    assert lease.Lease(tmp_path, "run.b", timeout_s=60, heartbeat_s=1).acquire().host == "node-17"
    write_lease(tmp_path, "run.b", age=120)                      # not renewed for 2 minutes
    said = []
    taker = lease.Lease(tmp_path, "run.b", timeout_s=60, heartbeat_s=1, log=said.append)
    assert taker.acquire() is None
    assert said == ["lease run.b: taken over from host node-17 pid 4242, job 991_3, started "
                    "2026-01-01T00:00:00+00:00, heartbeat 120 s ago (heartbeat 120 s old, over lease.timeout_s=60)"]
    assert json.loads(taker.path.read_text())["token"] == taker.token
    taker.release()


def test_a_lease_whose_process_is_gone_or_whose_job_was_requeued_is_taken_over_at_once(tmp_path, monkeypatch):
    write_lease(tmp_path, "run.c", host=socket.gethostname(), pid=dead_pid())
    said = []
    taker = lease.Lease(tmp_path, "run.c", timeout_s=600, heartbeat_s=1, log=said.append)
    assert taker.acquire() is None and "its process is gone" in said[0]
    taker.release()
    # SLURM requeued job 991_3: its next start (restart 1) takes over the lease of its first (restart 0)
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "991")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    write_lease(tmp_path, "run.c", restart=0)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")            # the same start of the job: a live owner
    assert lease.Lease(tmp_path, "run.c", timeout_s=600, heartbeat_s=1).acquire() is not None
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    said.clear()
    taker = lease.Lease(tmp_path, "run.c", timeout_s=600, heartbeat_s=1, log=said.append)
    assert taker.acquire() is None and "SLURM requeued that job" in said[0]
    assert json.loads(taker.path.read_text())["job"] == "991_3"
    taker.release()


RACER = """
import os, sys, time
from pathlib import Path
from childtuning import lease
from childtuning.lease import Lease
folder = Path(sys.argv[1])
judge = lease.stale_reason

def slow_judge(owner, timeout_s):      # widen the race: every taker decides "stale", then all act at once
    reason = judge(owner, timeout_s)
    if reason and owner.host == "node-17":
        time.sleep(0.5)
    return reason
lease.stale_reason = slow_judge
taker = Lease(folder, "run.race", timeout_s=30, heartbeat_s=5, log=lambda *_: None)
while not (folder / "go").exists():
    time.sleep(0.001)
print(os.getpid(), taker.acquire() is None, flush=True)
while not (folder / "done").exists():          # stay alive (a live owner) until every taker has tried
    time.sleep(0.01)
taker.release()
"""


@pytest.mark.slow
def test_of_many_takers_of_a_stale_lease_exactly_one_wins(tmp_path):
    for round_ in range(3):
        folder = tmp_path / str(round_)
        write_lease(folder, "run.race", age=300)
        procs = [subprocess.Popen([sys.executable, "-c", RACER, str(folder)], cwd=REPO, stdout=subprocess.PIPE,
                                  text=True) for _ in range(6)]
        time.sleep(1.5)                          # every process started and polling
        (folder / "go").touch()
        outcome = [p.stdout.readline().split() for p in procs]
        winners = [int(pid) for pid, won in outcome if won == "True"]
        assert len(winners) == 1, (round_, outcome)
        assert json.loads((folder / "run.race.lease").read_text())["pid"] == winners[0]
        (folder / "done").touch()
        for p in procs:
            p.wait(timeout=60)
        assert not (folder / "run.race.lease").exists() and not (folder / "run.race.lease.takeover").exists()


def test_an_owner_whose_lease_was_taken_over_notices(tmp_path):
    mine = lease.Lease(tmp_path, "run.d", timeout_s=60, heartbeat_s=0.05, log=lambda *_: None)
    assert mine.acquire() is None
    write_lease(tmp_path, "run.d")                               # another process took it over
    time.sleep(0.3)
    assert "taken over by host node-17 pid 4242" in mine.lost()
    mine.release()                                               # and leaves the new owner's lease alone
    assert json.loads((tmp_path / "run.d.lease").read_text())["host"] == "node-17"


def test_a_run_leased_by_a_live_owner_is_skipped_and_says_so(tmp_path, synthetic_glue, capsys):
    cfg = tiny(tmp_path, synthetic_glue, "experiment=unit")
    rid = train_mod.run_id(train_mod.validate(cfg))
    write_lease(tmp_path / "unit" / "leases", rid, age=3)
    assert train_mod.run(cfg) is None
    out = capsys.readouterr().out
    assert f"skip {rid}: leased by host node-17 pid 4242, job 991_3" in out and "another sweep is running it" in out
    assert not list((tmp_path / "unit" / "runs").glob("*.json"))
    (tmp_path / "unit" / "leases" / f"{rid}.lease").unlink()
    record = train_mod.run(cfg)                                  # free: it runs, and its lease goes with the record
    assert record["status"] in ("ok", "degenerate") and not list((tmp_path / "unit" / "leases").iterdir())


def test_a_run_killed_after_its_record_leaves_a_lease_and_checkpoint_that_the_next_launch_removes(
        tmp_path, synthetic_glue, capsys):
    cfg = tiny(tmp_path, synthetic_glue, "experiment=unit")
    record = train_mod.run(cfg)
    rid, out = record["run_id"], tmp_path / "unit" / "runs"
    checkpoint = record_mod.checkpoint_path(out, rid)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    # a live owner (another host, fresh heartbeat: a force=true rerun, say): its lease and checkpoint stay
    held = write_lease(tmp_path / "unit" / "leases", rid, age=3)
    checkpoint.write_bytes(b"in use")
    busy = held.with_name(held.name + ".takeover")              # a live taker's lock (this process) stays too
    busy.write_text(json.dumps({"token": "d" * 32, "host": socket.gethostname(), "pid": os.getpid()}))
    capsys.readouterr()
    assert train_mod.run(cfg)["run_id"] == rid
    assert held.exists() and checkpoint.exists() and busy.exists() and "removed" not in capsys.readouterr().out
    busy.unlink()
    # killed on this host after writing the record: its process is gone; the relaunch removes both,
    # and the takeover lock of a taker killed while it held it
    left = write_lease(tmp_path / "unit" / "leases", rid, host=socket.gethostname(), pid=dead_pid())
    lock = left.with_name(left.name + ".takeover")
    lock.write_text(json.dumps({"token": "e" * 32, "host": socket.gethostname(), "pid": dead_pid()}))
    assert train_mod.run(cfg)["run_id"] == rid
    said = capsys.readouterr().out
    assert not left.exists() and not checkpoint.exists() and not lock.exists(), said
    assert f"lease {rid}: removed, left by host {socket.gethostname()}" in said and "its process is gone" in said
    assert f"lease {rid}: removed a takeover lock left by a process that is gone" in said
    assert f"{rid}: removed {checkpoint}" in said and f"skip {rid}: complete record" in said
    assert not list((tmp_path / "unit" / "leases").iterdir())


def test_the_lease_goes_when_a_run_ends_without_a_record(tmp_path, synthetic_glue):
    (synthetic_glue / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(train_mod.InputError, match="maybe"):
        train_mod.run(tiny(tmp_path, synthetic_glue, "experiment=unit"))
    assert not list((tmp_path / "unit" / "leases").iterdir())


# ---------------------------------------------------------------- preemption: mid-epoch checkpoints
def learning_cola(results, glue, *extra):
    """tests/test_runner.py's learning CoLA run (dev scores change every epoch), with Child-Tuning_F
    (its mask stream) and R3F (its noise stream and an extra loss term): 3 epochs of 20 steps."""
    return compose_cfg("model=tiny_bert", "task=cola", "trainer.epochs=3", "trainer.batch_size=8", "trainer.lr=1e-2",
                       "seed=1", "impl.progress_bar=false", "method=child_tuning_f+r3f", f"paths.results={results}",
                       f"paths.glue_dir={glue}", f"paths.cache={results}/cache", *extra)


@pytest.fixture(scope="module")
def cola_full(tmp_path_factory):
    root = tmp_path_factory.mktemp("cola")
    glue = write_synthetic_glue(root / "glue", tasks=("CoLA",), n_train=160)
    full = train_mod.run(learning_cola(root / "full", glue))
    mcc = [h["metrics"]["matthews_corrcoef"] for h in full["history"]]
    assert len(set(mcc)) == 3 and full["history"][0]["loss_terms"]["symmetric_kl"] > 0, full["history"]
    return glue, full


def signal_at_step(monkeypatch, step: int, signum=signal.SIGTERM):
    """Send this process `signum` during training step `step` (a real signal, the real handler)."""
    real, calls = loop_mod.train_step, []

    def step_and_signal(*a, **k):
        calls.append(1)
        if len(calls) == step:
            os.kill(os.getpid(), signum)
        return real(*a, **k)
    monkeypatch.setattr(loop_mod, "train_step", step_and_signal)


@pytest.mark.slow
@pytest.mark.parametrize("step", [7, 20, 33])       # inside epoch 1, its last step, inside epoch 2
def test_a_signal_checkpoints_at_the_next_step_and_the_resumed_run_is_bitwise_identical(
        tmp_path, cola_full, monkeypatch, step):
    glue, full = cola_full
    before = signal.getsignal(signal.SIGTERM)
    signal_at_step(monkeypatch, step)
    with pytest.raises(signals.Preempted, match=f"SIGTERM: stopped at step {step} .checkpoint") as caught:
        train_mod.run(learning_cola(tmp_path, glue))
    assert caught.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before                  # the handler is given back
    default = tmp_path / "default"
    assert not list((default / "runs").glob("*.json")) and not list((default / "leases").iterdir())
    (ckpt,) = (default / "checkpoints").glob("*.pt")
    partial = train_mod.torch.load(ckpt, weights_only=False)["state"]["partial"]
    assert partial["batches"] == (step - 1) % 20 + 1 and len(partial["losses"]) == partial["batches"]
    monkeypatch.undo()
    resumed = train_mod.run(learning_cola(tmp_path, glue))
    # the same batches, masks, noise and dropout after the resume: per-epoch train loss, the extra
    # loss term, steps and dev metrics all equal to the bit
    assert resumed["history"] == full["history"] and resumed["metrics"] == full["metrics"]
    assert resumed["steps"] == full["steps"] == 60 and not ckpt.exists()


@pytest.mark.slow
def test_a_signal_after_the_last_step_still_writes_the_record_then_exits(tmp_path, cola_full, monkeypatch):
    glue, full = cola_full
    real, calls = loop_mod.evaluate, []

    def evaluate_and_signal(*a, **k):
        calls.append(1)
        if len(calls) == 3:                                  # during the last epoch's dev evaluation
            os.kill(os.getpid(), signal.SIGUSR1)
        return real(*a, **k)
    monkeypatch.setattr(loop_mod, "evaluate", evaluate_and_signal)
    with pytest.raises(signals.Preempted, match="finished and recorded"):
        train_mod.run(learning_cola(tmp_path, glue))
    (path,) = (tmp_path / "default" / "runs").glob("*.json")
    assert json.loads(path.read_text())["history"] == full["history"]


def test_preempted_exits_through_the_earlier_handler_or_with_128_plus_signal():
    seen = []
    with pytest.raises(SystemExit) as ended:
        signals.Preempted(signal.SIGUSR2, lambda signum, frame: seen.append(signum), "x").exit()
    assert seen == [signal.SIGUSR2] and ended.value.code == 128 + signal.SIGUSR2
    with pytest.raises(SystemExit) as ended:
        signals.Preempted(signal.SIGTERM, signal.SIG_DFL, "x").exit()
    assert ended.value.code == 143


def rte_command(tmp_path, glue, results):
    return [sys.executable, "-m", "childtuning.train", "model=tiny_bert", "task=rte", "method=child_tuning_f",
            "trainer.epochs=2", "trainer.batch_size=8", "trainer.checkpoint=true", "impl.num_threads=1",
            "impl.progress_bar=false", f"paths.glue_dir={glue}", f"paths.cache={tmp_path}/cache",
            f"paths.results={results}"]


ENV = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def rte_full(tmp_path_factory):
    """An uninterrupted run from the command line: 2 epochs of 80 steps."""
    root = tmp_path_factory.mktemp("rte")
    glue = write_synthetic_glue(root / "glue", tasks=("RTE",), n_train=640)
    done = subprocess.run(rte_command(root, glue, root / "full"), cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    (path,) = (root / "full" / "default" / "runs").glob("*.json")
    return root, glue, json.loads(path.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_a_signalled_process_exits_for_requeue_and_its_relaunch_matches(rte_full, signum):
    """The command line as SLURM runs it: the signal comes from outside, during epoch 2."""
    root, glue, full = rte_full
    command = rte_command(root, glue, root / signum.name)
    for _ in range(3):
        # On a loaded machine the signal can land between epoch 1's checkpoint and the stop check that
        # follows it, so the run stops at the epoch end (step 80): a valid stop, but not the mid-epoch
        # one this test is about. Start again from nothing then (at most three tries).
        shutil.rmtree(root / signum.name, ignore_errors=True)
        proc = subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        checkpoints = root / signum.name / "default" / "checkpoints"
        deadline = time.time() + 300
        while not list(checkpoints.glob("*.pt")) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)                               # epoch 1's checkpoint: epoch 2 (80 steps) has begun
        os.kill(proc.pid, signum)
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 128 + signum, out
        stopped = int(out.split("stopped at step ")[1].split()[0])
        if stopped != 80:
            break
    assert 80 < stopped < 160 and "checkpoint" in out       # inside epoch 2, not at an epoch end
    again = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and f"at step {stopped}, {stopped - 80} batches into epoch 2" in again.stdout
    (path,) = (root / signum.name / "default" / "runs").glob("*.json")
    resumed = json.loads(path.read_text())
    assert resumed["history"] == full["history"] and resumed["metrics"] == full["metrics"]


# ---------------------------------------------------------------- corrupt records
@pytest.fixture
def one_record(tmp_path, synthetic_glue):
    record = train_mod.run(tiny(tmp_path, synthetic_glue, "experiment=unit"))
    return tmp_path, record, tmp_path / "unit" / "runs" / f"{record['run_id']}.json"


def test_each_kind_of_corrupt_record_is_named(one_record):
    _, record, path = one_record
    text = path.read_text()
    assert integrity.read(path) == (record, None) and record["checksum"] == record_mod.checksum(record)
    legacy = {k: v for k, v in record.items() if k != "checksum"}          # written before checksums
    assert integrity.problem(legacy, path) is None
    edited = {**record, "metrics": {"accuracy": 99.0}}
    seed = {**record, "config": {**record["config"], "seed": 7}}
    cases = {
        text[: len(text) // 2]: "not valid JSON",
        "[1, 2]": "not a JSON object",
        json.dumps({k: v for k, v in record.items() if k != "history"}): "incomplete record, missing history",
        json.dumps({**record, "schema_version": 1}): "schema_version 1",
        json.dumps(edited): "checksum mismatch",
        json.dumps(record_mod.sign(seed)): "is not the id of its config",
    }
    for body, reason in cases.items():
        path.write_text(body)
        got, why = integrity.read(path)
        assert got is None and reason in why, (reason, why)
    foreign = path.with_name("tiny_bert.rte.vanilla.s9.0123456789.json")
    foreign.write_text(text)
    assert "holds run " + record["run_id"] in integrity.read(foreign)[1]


def test_the_aggregator_lists_corrupt_records_and_counts_none(one_record):
    results, record, path = one_record
    runs = path.parent
    good = json.loads(path.read_text())
    for seed in (2, 3):                       # sound records of two more seeds, one of them to be damaged
        other = {**good, "seed": seed, "config": {**good["config"], "seed": seed}}
        other["run_id"] = train_mod.run_id(other["config"])
        integrity_ok = record_mod.sign(other)
        (runs / f"{other['run_id']}.json").write_text(json.dumps(integrity_ok))
    damaged = sorted(runs.glob("*.s3.*.json"))[0]
    damaged.write_text(damaged.read_text().replace('"seed": 3', '"seed": 4', 1))
    (runs / "half.json").write_text(path.read_text()[:100])
    held = lease.Lease(results / "unit" / "leases", record["run_id"], 60, 30)
    held.acquire()                                                               # a lease is not a record
    try:
        cells = aggregate("unit", results)
    finally:
        held.release()
    assert int(cells["n"].sum()) == 2
    md = (results / "unit" / "table.md").read_text()
    assert f"corrupt record, not counted (a relaunch sets it aside and reruns the run): {damaged.name}: " \
           "checksum mismatch" in md
    assert "half.json: not valid JSON" in md


@pytest.mark.slow
def test_a_relaunch_sets_a_corrupt_record_aside_and_reruns(one_record, synthetic_glue, capsys):
    results, record, path = one_record
    damaged = path.read_text().replace('"status": "', '"status": "x', 1)
    path.write_text(damaged)
    capsys.readouterr()
    again = train_mod.run(tiny(results, synthetic_glue, "experiment=unit"))
    out = capsys.readouterr().out
    assert "corrupt record" in out and "checksum mismatch" in out and f"start {record['run_id']}" in out
    assert integrity.read(path)[0] == again and again["metrics"] == record["metrics"]
    (kept,) = (path.parent / "corrupt").glob(f"{path.name}.*[0-9]")
    assert kept.read_text() == damaged                                     # moved aside, never deleted
    assert "checksum mismatch" in kept.with_name(kept.name + ".reason").read_text()


# ---------------------------------------------------------------- a full or unwritable disk
@pytest.fixture
def no_data(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a results folder that cannot be written must fail before the data is read")
    monkeypatch.setattr(train_mod, "load_data", boom)


def test_an_unwritable_results_folder_fails_before_any_work(tmp_path, synthetic_glue, no_data):
    blocker = tmp_path / "a_file"
    blocker.write_text("")                                  # a real failure: the folder would be inside a file
    said = rf"cannot write run records in {blocker}/unit/runs: .*paths.results"
    with pytest.raises(storage.StorageError, match=said):
        train_mod.run(tiny(blocker, synthetic_glue, "experiment=unit"))


def full_disk_at(path: Path) -> None:
    """Make writes to `path` fail as on a full disk, with a real ENOSPC from the kernel: /dev/full
    takes the name (the runner opens the name and writes through it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to("/dev/full")


needs_dev_full = pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full (not Linux)")


@needs_dev_full
def test_a_full_disk_fails_before_any_work(tmp_path, synthetic_glue, no_data):
    runs = tmp_path / "unit" / "runs"
    full_disk_at(runs / f".write-probe.{os.getpid()}")          # the probe's file
    with pytest.raises(storage.StorageError, match=rf"cannot write run records in {runs}: No space left on device "
                                                   r"\(ENOSPC\); the file system is full: free space there, or point "
                                                   r"the runs elsewhere with paths.results"):
        train_mod.run(tiny(tmp_path, synthetic_glue, "experiment=unit"))
    assert not list(runs.iterdir())                              # nothing left behind


@pytest.mark.slow
@needs_dev_full
def test_a_failed_final_write_keeps_the_old_record_and_prints_the_new_one(one_record, synthetic_glue, capsys,
                                                                           monkeypatch):
    results, record, path = one_record
    before = path.read_bytes()
    real_build = train_mod.build_record

    def build_then_fill_the_disk(*a, **k):       # after training (a run clears stale temporary files first)
        full_disk_at(path.with_name(f".{path.name}.tmp{os.getpid()}"))   # write_atomic's temporary file
        return real_build(*a, **k)
    monkeypatch.setattr(train_mod, "build_record", build_then_fill_the_disk)
    capsys.readouterr()
    with pytest.raises(storage.StorageError, match="could not write the record .*No space left on device.*"
                                                   "RECORD NOT WRITTEN"):
        train_mod.run(tiny(results, synthetic_glue, "experiment=unit", "force=true"))
    assert path.read_bytes() == before and not list(path.parent.glob(".*tmp*"))
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("RECORD NOT WRITTEN"))
    printed = json.loads(line.split(": ", 1)[1])
    assert printed["metrics"] == record["metrics"] and integrity.problem(printed, path) is None
    assert not list((results / "unit" / "leases").iterdir())


@pytest.mark.slow
def test_a_slurm_style_sweep_requeues_on_submitits_signal_and_resumes(rte_full):
    """hydra/launcher=submitit_local, the SLURM launcher's local twin: the job is sent submitit's
    preemption signal (USR2) during epoch 2; it checkpoints at the next step, submitit requeues it
    (its local controller restarts the job), and the restarted job resumes to the same record."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    root, glue, full = rte_full
    results = root / "submitit"
    cmd = [sys.executable, "-m", "childtuning.train", "-m", "exp=smoke", "hydra/launcher=submitit_local",
           "hydra.launcher.timeout_min=10", "method=child_tuning_f", "seed=1", "task.max_train_samples=null",
           "trainer.checkpoint=true", "impl.num_threads=1", f"paths.glue_dir={glue}", f"paths.cache={root}/cache",
           f"paths.results={results}"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.time() + 300
    while not list(results.glob("smoke/checkpoints/*.pt")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    (lease_file,) = results.glob("smoke/leases/*.lease")
    job_pid = json.loads(lease_file.read_text())["pid"]          # the submitit job process running the run
    os.kill(job_pid, signal.SIGUSR2)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    log = "\n".join(p.read_text() for p in results.glob("smoke/hydra/*/.submitit/*/*_log.*"))
    assert "caught SIGUSR2" in log and "Requeued job" in log and "resumed from" in log, log
    stopped = int(log.split("stopped at step ")[1].split()[0])
    assert 80 < stopped < 160 and f"at step {stopped}, {stopped - 80} batches into epoch 2" in log
    (path,) = results.glob("smoke/runs/*.json")
    resumed = json.loads(path.read_text())
    assert resumed["run_id"] == full["run_id"] and resumed["history"] == full["history"]


def test_a_killed_writers_temporary_files_are_cleared_by_the_next_owner(tmp_path, synthetic_glue):
    cfg = tiny(tmp_path, synthetic_glue, "experiment=unit")
    rid = train_mod.run_id(train_mod.validate(cfg))
    unit = tmp_path / "unit"
    left = [unit / "runs" / f".{rid}.json.tmp99999", unit / "checkpoints" / f".{rid}.pt.tmp99999"]
    for path in left:                                   # what kill -9 during a write leaves
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{half")
    train_mod.run(cfg)
    assert not any(p.exists() for p in left)
