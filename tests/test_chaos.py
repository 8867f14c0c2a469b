"""The chaos test (issue 17): two sweeps over one grid and one results folder, started at once,
while a killer sends SIGKILL or SIGTERM to the process running a random run at random moments;
each killed sweep is relaunched until the grid is complete. Every declared run must end with
exactly one sound record, the table must equal an uninterrupted sweep's, and no run may be
executed by two live processes at once (the leases). The figures are printed as one JSON line."""
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime

import pytest

import childtuning.train as train_mod
from childtuning import integrity
from childtuning.aggregate import aggregate
from helpers.configs import compose_cfg
from helpers.glue import write_synthetic_glue
from helpers.paths import REPO

RUNS = 4                          # the smoke grid: vanilla and Child-Tuning_D x seeds 1, 2
KILLS = 5
# tests/test_runner.py's learning CoLA run (dev scores differ by seed and epoch, so equal tables
# mean equal runs): 3 epochs x 20 steps, checkpoints at epoch ends and on SIGTERM.
GRID = ("exp=smoke", "task=cola", "task.max_train_samples=null", "trainer.epochs=3",
        "trainer.lr=1e-2", "trainer.checkpoint=true", "impl.num_threads=1", "lease.heartbeat_s=0.5",
        "lease.timeout_s=20")


class Sweep:
    """One `python -m childtuning.train -m` process; its output lines, each with the time read."""

    def __init__(self, name, results, glue):
        cmd = [sys.executable, "-m", "childtuning.train", "-m", *GRID, f"paths.results={results}",
               f"paths.glue_dir={glue}", f"paths.cache={results}/cache", f"hydra.sweep.dir={results}/hydra/{name}"]
        self.name, self.lines = name, []
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"})
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append((time.time(), line.rstrip("\n")))
        self.ended = time.time()

    def executions(self):
        """(run id, start, end) of each run this process started; end: its record, its stop, or its death."""
        out, open_ = [], {}
        for t, line in self.lines:
            words = line.split()
            if line.startswith("start "):
                open_[words[1]] = t
            elif words and words[0].rstrip(":") in open_ and (" | " in line or "stopped at step" in line):
                rid = words[0].rstrip(":")
                out.append((rid, open_.pop(rid), t))
            elif line.startswith("preempted: "):
                rid = words[1].rstrip(":")
                if rid in open_:
                    out.append((rid, open_.pop(rid), t))
        out += [(rid, t, self.ended) for rid, t in open_.items()]
        return out


@pytest.mark.slow
def test_two_sweeps_and_a_killer_leave_every_run_recorded_once(tmp_path):
    glue = write_synthetic_glue(tmp_path / "glue", tasks=("CoLA",), n_train=160)
    results, rng = tmp_path / "results", random.Random(17)
    runs, leases = results / "smoke" / "runs", results / "smoke" / "leases"
    deadline = time.time() + 600
    slots = {name: Sweep(f"{name}0", results, glue) for name in ("a", "b")}    # both at once
    everyone, kills, launches = list(slots.values()), Counter(), Counter(a=1, b=1)

    def complete():
        return len(list(runs.glob("*.json"))) == RUNS

    def started(owner):
        return datetime.fromisoformat(owner["started_at"]).timestamp()
    signalled, mode, wait_for = set(), "training", rng.uniform(1.0, 5.0)

    while time.time() < deadline:
        for name, s in slots.items():                           # relaunch a killed sweep while runs are missing
            if s.proc.poll() is not None and not complete():
                slots[name] = Sweep(f"{name}{launches[name]}", results, glue)
                launches[name] += 1
                everyone.append(slots[name])
        if complete() and all(s.proc.poll() is not None for s in slots.values()):
            break
        if sum(kills.values()) < KILLS:
            # the next victim: a run in training (its first epoch's checkpoint is written), or a run
            # that has held its lease for a random 1-5 s (loading, training or evaluating)
            owned = [json.loads(p.read_text()) for p in leases.glob("*.lease")] if leases.is_dir() else []
            live = {s.proc.pid for s in slots.values() if s.proc.poll() is None} - signalled
            owned = [o for o in owned if o["pid"] in live]
            if mode == "training":
                ripe = [o for o in owned if (results / "smoke" / "checkpoints" / f"{o['run_id']}.pt").exists()]
            else:
                ripe = [o for o in owned if time.time() - started(o) > wait_for]
            if ripe:
                victim = rng.choice(ripe)
                sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
                os.kill(victim["pid"], sig)
                kills[sig.name] += 1
                signalled.add(victim["pid"])
                mode, wait_for = rng.choice(["training", "held"]), rng.uniform(1.0, 5.0)
        time.sleep(0.1)
    for s in everyone:
        s.proc.wait(timeout=60)
        s.reader.join(timeout=60)
    assert complete(), [line for s in everyone for _, line in s.lines][-40:]
    assert sum(kills.values()) >= 1, "the killer found no run to kill"

    # every declared run: exactly one sound record, nothing half-written
    records = sorted(runs.glob("*.json"))
    assert len(records) == RUNS and all(integrity.read(p)[1] is None for p in records)
    assert not list(runs.glob(".*"))
    # a SIGKILL just after a record was written leaves its lease (and perhaps its checkpoint): the
    # relaunch a user makes next skips every run and removes what the killed runs left behind
    left_behind = len(list(leases.glob("*"))) + len(list(results.glob("smoke/checkpoints/*")))
    last = Sweep("final", results, glue)
    assert last.proc.wait(timeout=300) == 0
    last.reader.join(timeout=60)
    everyone.append(last)
    assert sum(line.startswith("skip ") and "complete record" in line for _, line in last.lines) == RUNS
    assert not any(line.startswith("start ") for _, line in last.lines)
    assert not list(leases.glob("*")) and not list(results.glob("smoke/checkpoints/*")), last.lines
    # no run executed by two live processes at once; each run completed (recorded) exactly once
    spans = defaultdict(list)
    for s in everyone:
        for rid, start, end in s.executions():
            spans[rid].append((start, end, s.name))
    duplicates = sum(1 for rid, xs in spans.items() for i, a in enumerate(xs) for b in xs[i + 1:]
                     if a[2] != b[2] and a[0] < b[1] and b[0] < a[1])
    completed = Counter(line.split(":")[0] for s in everyone for _, line in s.lines
                        if " | " in line and line.split(":")[0] in spans)
    assert duplicates == 0, spans
    assert sorted(completed.values()) == [1] * RUNS, completed
    text = "\n".join(line for s in everyone for _, line in s.lines)

    # the table equals an uninterrupted sweep's (the same runs one after another, in this process)
    clean = tmp_path / "clean"
    for method in ("vanilla", "child_tuning_d"):
        for seed in (1, 2):
            train_mod.run(compose_cfg(*GRID, f"method={method}", f"seed={seed}",
                                      f"paths.results={clean}", f"paths.glue_dir={glue}", f"paths.cache={clean}/cache"))

    def table(folder):
        return aggregate("smoke", folder).drop(columns="seconds_mean").to_csv(index=False)
    assert table(results) == table(clean)
    for p in records:
        rec = json.loads(p.read_text())
        twin = json.loads((clean / "smoke" / "runs" / p.name).read_text())
        assert rec["history"] == twin["history"], p.name

    figures = {"runs": RUNS, "records": len(records), "corrupt": 0, "lost": 0, "duplicate_records": 0,
               "duplicate_live_executions": duplicates, "kills": dict(kills), "sweeps_launched": len(everyone),
               "executions": sum(len(v) for v in spans.values()),
               "resumed_from_checkpoint": text.count("resumed from"),
               "lease_takeovers": text.count("taken over from"), "left_behind_then_removed": left_behind,
               "skipped_leased_by_live_owner": text.count("leased by")}
    print("\nchaos: " + json.dumps(figures))
