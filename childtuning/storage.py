"""The results folder can take a run's files: a write probe before any work, and a clear error
(with the metrics printed) when a write fails at the end."""
from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

from .errors import InputError
from .record import sign

PROBE_BYTES = 1 << 20     # 1 MiB: more than a record (tens of kB); a quota or a full disk refuses it
FIX = {errno.ENOSPC: "the file system is full: free space there, or point the runs elsewhere with "
                     "paths.results=/a/folder/with/space (or CHILDTUNING_RESULTS)",
       errno.EDQUOT: "your disk quota is used up: free space in your quota, or point the runs elsewhere with "
                     "paths.results=... (or CHILDTUNING_RESULTS)",
       errno.EACCES: "you may not write there: fix the folder's permissions, or use paths.results=/a/writable/folder",
       errno.EPERM: "you may not write there: fix the folder's permissions, or use paths.results=/a/writable/folder",
       errno.ENOTDIR: "a part of that path is a file, not a folder: use paths.results=/a/writable/folder",
       errno.EROFS: "the file system is read-only: use paths.results=/a/writable/folder (or CHILDTUNING_RESULTS)"}


class StorageError(InputError):
    """The results folder cannot take a run's files (full, over quota, read-only, no permission).
    An InputError: no record is written, the run's lease is released, the command exits 2."""


def explain(e: OSError) -> str:
    return FIX.get(e.errno, "check the folder (df -h, ls -ld) and paths.results")


def probe(folder: Path) -> None:
    """Create `folder` and write, flush and delete a 1 MiB file in it; raise StorageError naming
    the folder, the cause and the fix. Runs before any data or model is loaded."""
    folder = Path(folder)
    path = folder / f".write-probe.{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view, written = memoryview(bytes(PROBE_BYTES)), 0
            while written < PROBE_BYTES:
                written += os.write(fd, view[written:])
            os.fsync(fd)         # a full disk or quota may only refuse the data at flush (NFS)
        finally:
            os.close(fd)
    except OSError as e:
        code = errno.errorcode.get(e.errno, e.errno)
        raise StorageError(f"cannot write run records in {folder}: {e.strerror or e} ({code}); {explain(e)}") from None
    finally:
        try:
            path.unlink()
        except OSError:
            pass


def unwritten(record: dict, path: Path, e: OSError) -> StorageError:
    """A write of `record` to `path` failed: print the record (so the metrics survive in the job's
    log, signed, ready to be saved by hand) and return the error to raise. The previous file at
    `path`, if any, is untouched."""
    record = sign(record)
    print(f"RECORD NOT WRITTEN ({path}): {json.dumps(record, allow_nan=True)}", flush=True)
    print(f"metrics: {json.dumps(record.get('metrics'), allow_nan=True)}", file=sys.stderr, flush=True)
    return StorageError(f"could not write the record {path}: {e.strerror or e}; {explain(e)}. The whole record "
                        "(metrics included) is printed on this job's standard output as the line starting "
                        "'RECORD NOT WRITTEN'; the file on disk, if any, is unchanged. Relaunch after fixing it "
                        "(the run resumes from its last checkpoint if it had one), or save that line's JSON "
                        f"as {path.name} by hand")
