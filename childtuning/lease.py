"""Run leases: a run claims its id before it starts, so sweeps that share a results folder (two
people, a relaunch beside a running sweep, a requeued job) execute each run once. No server: a
lease is a file, `<results>/<experiment>/leases/<run_id>.lease`, holding its owner (host, pid,
job id, a random token) as JSON; its modification time is the heartbeat, renewed by a daemon
thread every `heartbeat_s` while the run works. The lease goes when the run's record is written
or the run ends without one (failure, bad input, preemption); a killed run leaves it behind. A
run killed after its record was written (while it scores its targets, say) leaves a lease no one
would take over, since a relaunch skips the run: the next launch that reaches the run removes it
(`clear_stale`, called by childtuning/train.py for a complete record).

A lease is live unless its heartbeat is older than `timeout_s`, or it names this host and a
process that no longer exists, or it names this SLURM job at an earlier restart (SLURM requeued
the job; its earlier process is gone). A stale lease is taken over, with a line naming the old
owner. Takers serialise on an exclusive `<run_id>.lease.takeover` file and re-read the lease
under it, so of two processes that find the same stale lease one takes it and the other skips.

What this assumes of the shared file system (local disks, NFSv3+, Lustre, GPFS and BeeGFS give
it): a hard link to an existing name fails (atomic exclusive create; the link count of the
source says whether a link that reported an error went through, the classic NFS caveat); rename
and unlink are atomic; the nodes' clocks agree to well within `timeout_s` (the heartbeat is a
file time, compared with the reader's clock). Containers that share a hostname but not a process
table must not share a results folder (the "process gone" test would misfire).
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

SUFFIX = ".lease"
_HELD: set[str] = set()      # tokens of the leases this process holds now


def job_id() -> str | None:
    """This process's scheduler job: a SLURM array task, a SLURM job, or a submitit local job."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or env.get("SUBMITIT_LOCAL_JOB_ID") or None


def restart_count() -> int:
    """How often SLURM has requeued this job (SLURM_RESTART_COUNT; 0 when not set)."""
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    except ValueError:
        return 0


@dataclass
class Owner:
    """Who holds a lease, as its file says, and how old its heartbeat is."""
    run_id: str
    host: str
    pid: int
    job: str | None
    restart: int
    token: str
    started_at: str
    age: float = 0.0      # seconds since the heartbeat (not stored)

    def describe(self) -> str:
        job = f", job {self.job}" + (f" restart {self.restart}" if self.restart else "") if self.job else ""
        return f"host {self.host} pid {self.pid}{job}, started {self.started_at}, heartbeat {self.age:.0f} s ago"


def process_gone(pid: int) -> bool:
    """Whether no process `pid` runs on this host (a zombie, killed but not yet reaped, is gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:       # another user's process: it exists
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def read_owner(path: Path) -> Owner | None:
    """The lease at `path`, or None when there is none. An unreadable or half-written file reads
    as an owner with no identity, live until its heartbeat is stale."""
    try:
        age = time.time() - path.stat().st_mtime
        data = json.loads(path.read_text(encoding="utf-8"))
        fields = {k: data[k] for k in Owner.__dataclass_fields__ if k != "age"}
        return Owner(**fields, age=age)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return None
        return Owner(run_id=path.stem, host="?", pid=-1, job=None, restart=0, token="?", started_at="?", age=age)


def stale_reason(owner: Owner, timeout_s: float) -> str | None:
    """Why `owner`'s lease may be taken over, or None while it is live."""
    if owner.age > timeout_s:
        return f"heartbeat {owner.age:.0f} s old, over lease.timeout_s={timeout_s:g}"
    if owner.host == socket.gethostname() and owner.pid > 0:
        if owner.pid != os.getpid() and process_gone(owner.pid):
            return "its process is gone"
        if owner.pid == os.getpid() and owner.token not in _HELD:
            return "left by an earlier run of this process id"
    if owner.job and owner.job == job_id() and owner.restart < restart_count():
        return "SLURM requeued that job; this is its next start"
    return None


def _link_exclusive(src: Path, dst: Path) -> bool:
    """Give `src` the second name `dst` unless `dst` exists: atomic, also on NFS (where a link can
    report an error but have happened: the link count of `src` says)."""
    try:
        os.link(src, dst)
    except FileExistsError:
        pass
    except OSError:
        pass
    try:
        return os.stat(src).st_nlink == 2
    except OSError:
        return False


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".takeover")


def _remove_stale_lock(lock: Path, timeout_s: float) -> bool:
    """Remove a takeover lock whose taker died holding it (its process gone from this host, or the
    lock older than timeout_s); True when one was removed."""
    try:
        age = time.time() - lock.stat().st_mtime
        holder = json.loads(lock.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        holder = {}
    gone = (isinstance(holder, dict) and holder.get("host") == socket.gethostname()
            and isinstance(holder.get("pid"), int) and holder["pid"] != os.getpid() and process_gone(holder["pid"]))
    if gone or age > timeout_s:
        lock.unlink(missing_ok=True)
        return True
    return False


@contextmanager
def _takeover_lock(path: Path, token: str, timeout_s: float):
    """The exclusive `<lease>.takeover` file (naming its holder), held for the body: yields True
    when this process holds it, False when another does (it waits up to a second for that one to
    finish, and removes a lock left stale by a taker that died holding it)."""
    lock = _lock_path(path)
    lock_tmp = path.parent / f".{lock.name}.{token}.tmp"
    lock_tmp.write_text(json.dumps({"token": token, "host": socket.gethostname(), "pid": os.getpid()}),
                        encoding="utf-8")
    try:
        got = _link_exclusive(lock_tmp, lock)
    finally:
        lock_tmp.unlink(missing_ok=True)
    if not got:
        if not _remove_stale_lock(lock, timeout_s):
            deadline = time.time() + 1.0   # another process is taking it over now (milliseconds): see who won
            while lock.exists() and time.time() < deadline:
                time.sleep(0.01)
        yield False
        return
    try:
        yield True
    finally:
        lock.unlink(missing_ok=True)


class Lease:
    """The lease of one run id in `folder`. `acquire()` returns None when this process now holds
    it, or the live Owner that does; `release()` gives it back; `lost()` says whether another
    process took it over (this one then stops without writing a record)."""

    def __init__(self, folder: Path, run_id: str, timeout_s: float, heartbeat_s: float, log=print):
        self.folder, self.run_id = Path(folder), run_id
        self.path = self.folder / f"{run_id}{SUFFIX}"
        self.timeout_s, self.heartbeat_s, self.log = float(timeout_s), float(heartbeat_s), log
        self.token = uuid.uuid4().hex
        self.held = False
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ claim
    def acquire(self) -> Owner | None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(3):                 # a lease can vanish (released) between our create and read
            if self._create():
                return self._start()
            owner = read_owner(self.path)
            if owner is None:
                continue
            reason = stale_reason(owner, self.timeout_s)
            if reason is None:
                return owner
            taken = self._take_over(owner, reason)
            if taken is not None:
                return taken if isinstance(taken, Owner) else self._start()
        return read_owner(self.path) or Owner(self.run_id, "?", -1, None, 0, "?", "?")

    def _create(self) -> bool:
        me = Owner(run_id=self.run_id, host=socket.gethostname(), pid=os.getpid(), job=job_id(),
                   restart=restart_count(), token=self.token,
                   started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        body = {k: v for k, v in asdict(me).items() if k != "age"}
        tmp = self.folder / f".{self.path.name}.{self.token}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(body, f)
                f.flush()
                os.fsync(f.fileno())
            return _link_exclusive(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def _take_over(self, seen: Owner, reason: str):
        """Replace the stale lease `seen`, under the takeover lock. Returns True when this process
        now holds the lease, the live Owner that does, or None to try again."""
        with _takeover_lock(self.path, self.token, self.timeout_s) as got:
            if not got:
                return None
            now = read_owner(self.path)
            if now is None:
                return None                # released meanwhile: claim it afresh
            if now.token != seen.token or stale_reason(now, self.timeout_s) is None:
                return now                 # someone else's fresh lease
            self.path.unlink()
            if not self._create():           # a fresh claimer came in between: it holds the run now
                return read_owner(self.path) or None
            self.log(f"lease {self.run_id}: taken over from {seen.describe()} ({reason})")
            return True

    # ------------------------------------------------------------------ heartbeat
    def _start(self) -> None:
        self.held = True
        _HELD.add(self.token)
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.run_id}", daemon=True)
        self._thread.start()
        return None

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            owner = read_owner(self.path)
            if owner is None or owner.token != self.token:
                self._lost = (f"lease {self.run_id} was taken over by {owner.describe()}" if owner else
                              f"lease {self.run_id} was removed by another process")
                self.log(self._lost)
                return
            try:
                os.utime(self.path)
            except FileNotFoundError:
                continue                    # removed between the read and the touch: the next beat says so
            except OSError as e:           # a file-system hiccup: keep trying until the lease goes stale
                self.log(f"lease {self.run_id}: heartbeat failed ({e}); retrying")

    def lost(self) -> str | None:
        return self._lost

    # ------------------------------------------------------------------ release
    def release(self) -> None:
        """Stop the heartbeat and delete the lease if it is still this process's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if not self.held:
            return
        self.held = False
        _HELD.discard(self.token)
        owner = read_owner(self.path)
        if owner is not None and owner.token == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def held_tokens() -> frozenset[str]:
    """The tokens of the leases this process holds now."""
    return frozenset(_HELD)


def live_owner(folder: Path, run_id: str, timeout_s: float) -> Owner | None:
    """The live owner of `run_id`'s lease in `folder`, or None (no lease, or a stale one)."""
    owner = read_owner(Path(folder) / f"{run_id}{SUFFIX}")
    return owner if owner is not None and stale_reason(owner, timeout_s) is None else None


def clear_stale(folder: Path, run_id: str, timeout_s: float, log=print) -> bool:
    """Remove `run_id`'s lease if it is stale (its owner died, e.g. killed after writing the run's
    record), under the takeover lock so that a fresh claim made meanwhile is never removed, and a
    takeover lock whose holder died. Returns whether a lease was removed; a live lease, or none, is
    left as it is."""
    path = Path(folder) / f"{run_id}{SUFFIX}"
    if _remove_stale_lock(_lock_path(path), timeout_s):       # a taker killed while it held the lock
        log(f"lease {run_id}: removed a takeover lock left by a process that is gone")
    seen = read_owner(path)
    if seen is None or (reason := stale_reason(seen, timeout_s)) is None:
        return False
    with _takeover_lock(path, uuid.uuid4().hex, timeout_s) as got:
        now = read_owner(path) if got else None
        if now is None or now.token != seen.token or stale_reason(now, timeout_s) is None:
            return False
        path.unlink(missing_ok=True)
    log(f"lease {run_id}: removed, left by {seen.describe()} ({reason})")
    return True
