"""Preemption: the warning signals of SLURM and submitit become a checkpoint at the next step
boundary and an exit that the launcher requeues.

SLURM sends SIGTERM before it preempts or cancels a job (SIGKILL follows after the grace time;
a job submitted with `--requeue` is then requeued by SLURM itself), and with `--signal=SIG@secs`
a chosen signal before the time limit. submitit asks for SIGUSR2 (its default; the environment
variable SUBMITIT_PREEMPT_SIGNAL changes it) and answers it by requeueing the job (`scontrol
requeue`; its local executor exits 144, which its controller restarts); it only logs SIGTERM.

While a run trains, `Preemption` holds SIGTERM, SIGUSR1, SIGUSR2 and submitit's signal. Its
handler only notes the signal (raising from a handler could land in the middle of an optimizer
step); the loop asks `requested()` after every step, saves a checkpoint and stops (loop.Interrupted),
and `exit()` passes the signal on to the handler that was there before (submitit's requeue) or,
where there was none, exits with 128 + the signal number, as a shell reports a process the signal
killed. The requeued or relaunched run resumes from the checkpoint, bit for bit (tests/test_reliability.py).
"""
from __future__ import annotations

import os
import signal
import sys
import threading

# SLURM's preemption/cancel signal, the usual `--signal` choices, and submitit's (default USR2)
WATCHED = ("SIGTERM", "SIGUSR1", "SIGUSR2")


def watched_signals() -> list[int]:
    names = list(WATCHED)
    submitit = "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2").upper().removeprefix("SIG")
    if submitit not in names:
        names.append(submitit)
    return [getattr(signal, n) for n in names if hasattr(signal, n)]


class Preempted(Exception):
    """A warning signal stopped the run (after its checkpoint, if it had progress to keep)."""

    def __init__(self, signum: int, previous, message: str):
        super().__init__(message)
        self.signum, self.previous = signum, previous

    def exit(self) -> None:
        """Leave the process the way the launcher needs to requeue it: the earlier handler of the
        signal (submitit's requeue, which exits) if there was one, else exit 128 + signum."""
        if callable(self.previous):
            self.previous(self.signum, None)
        sys.exit(128 + self.signum)


class Preemption:
    """A context manager: while inside, the watched signals are noted instead of acted on. Only
    the main thread can install handlers; elsewhere it watches nothing (and says so)."""

    def __init__(self, log=print):
        self.signum: int | None = None
        self.saved: dict[int, object] = {}      # the handlers there before (submitit's, or the defaults)
        self.log = log

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            self.log("preemption signals are not watched (the run is not in the main thread)")
            return self
        for signum in watched_signals():
            self.saved[signum] = signal.signal(signum, self._note)
        return self

    def _note(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum
            print(f"caught {signal.Signals(signum).name}: checkpointing at the next step boundary, then exiting "
                  "for requeue", flush=True)

    def requested(self) -> str | None:
        """The caught signal's name, or None."""
        return signal.Signals(self.signum).name if self.signum is not None else None

    def preempted(self, message: str) -> Preempted:
        """The exception that carries the caught signal, and the handler to pass it on to, to the exit."""
        return Preempted(self.signum, self.saved.get(self.signum), message)

    def __exit__(self, *exc):
        for signum, handler in self.saved.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        return False
