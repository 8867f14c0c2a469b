"""A run left to the default thread count uses the cores this process may use (childtuning/threads.py),
says so in its record, and a set impl.num_threads wins."""
import os

import pytest
import torch

from childtuning import threads
from helpers.configs import compose_cfg


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A machine of 32 CPUs with no quota and none of the variables set; returns the cgroup file to edit."""
    for var in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(32)), raising=False)
    quota = tmp_path / "cpu.max"
    monkeypatch.setattr(threads, "CGROUP_FILES", (quota, tmp_path / "v1" / "cpu.cfs_quota_us"))
    return quota


def test_the_default_follows_the_variables_then_the_quota_then_the_affinity(machine, monkeypatch):
    assert threads.usable_cores() == (16, "32 CPU(s) in this process's affinity, capped at 16")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert threads.usable_cores() == (3, "3 CPU(s) in this process's affinity")
    machine.write_text("150000 100000\n")                  # a container limited to 1.5 CPUs
    assert threads.usable_cores() == (2, "control group quota of 2 core(s)")
    machine.write_text("max 100000\n")                     # no limit
    assert threads.usable_cores()[0] == 3
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    assert threads.usable_cores() == (4, "SLURM_CPUS_PER_TASK=4")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.usable_cores() == (1, "OMP_NUM_THREADS=1")
    assert threads.threads_for(6) == 6 and threads.threads_for(None) == 1


@pytest.mark.slow
def test_a_run_with_the_default_uses_and_records_the_usable_cores(machine, monkeypatch, synthetic_glue, tmp_path):
    import childtuning.train as train_mod

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)     # one CPU for this process
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)                         # as torch's own default would be on a 2-core machine
        record = train_mod.run(compose_cfg("exp=smoke", "method=vanilla", "trainer.epochs=1", f"paths.results={tmp_path}",
                                           f"paths.glue_dir={synthetic_glue}", f"paths.cache={tmp_path}/cache",
                                           "impl.num_threads=null"))
        assert record["config"]["impl"]["num_threads"] is None and record["device"]["threads"] == 1
        record = train_mod.run(compose_cfg("exp=smoke", "method=vanilla", "trainer.epochs=1", f"paths.results={tmp_path}",
                                           f"paths.glue_dir={synthetic_glue}", f"paths.cache={tmp_path}/cache",
                                           "impl.num_threads=2", "force=true"))
        assert record["device"]["threads"] == 2
    finally:
        torch.set_num_threads(before)
