"""How many CPU threads a run computes with when impl.num_threads is null: the cores this process may use."""
from __future__ import annotations

import os
from pathlib import Path

# A choice, not a measurement: on a large node a run left to the default should not claim every core.
MAX_DEFAULT_THREADS = 16
CGROUP_FILES = (Path("/sys/fs/cgroup/cpu.max"),                     # cgroup v2: "<quota> <period>" or "max <period>"
                Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"))        # cgroup v1: quota (-1: none), period beside it


def _positive_int(text: str | None) -> int | None:
    try:
        value = int(str(text).strip())
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def cgroup_cores() -> int | None:
    """The CPU quota of this process's control group in whole cores (rounded up), or None when unlimited
    or unknown. A container limited to 2 CPUs may still see every core of the host in its affinity."""
    try:
        v2 = CGROUP_FILES[0]
        if v2.is_file():
            quota, period = (v2.read_text().split() + ["", ""])[:2]
        else:
            quota = CGROUP_FILES[1].read_text()
            period = (CGROUP_FILES[1].parent / "cpu.cfs_period_us").read_text()
    except OSError:
        return None
    quota, period = _positive_int(quota), _positive_int(period)
    return -(-quota // period) if quota and period else None


def usable_cores() -> tuple[int, str]:
    """(threads, why): OMP_NUM_THREADS when set (the user's word, which torch also honours), else
    SLURM_CPUS_PER_TASK, else the CPUs this process may run on (its affinity) within its control
    group's quota; at most MAX_DEFAULT_THREADS."""
    for var in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
        n = _positive_int(os.environ.get(var))
        if n:
            return n, f"{var}={n}"
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cores()
    n, why = (quota, f"control group quota of {quota} core(s)") if quota and quota < affinity else \
        (affinity, f"{affinity} CPU(s) in this process's affinity")
    if n > MAX_DEFAULT_THREADS:
        return MAX_DEFAULT_THREADS, f"{why}, capped at {MAX_DEFAULT_THREADS}"
    return n, why


def threads_for(configured: int | None) -> int:
    """The thread count of a run: impl.num_threads when set, else usable_cores()."""
    return configured or usable_cores()[0]
