"""The one way snnkit writes a file (run directories, feature caches, plots, exports), and the fault points
the crash-consistency and I/O-error tests use."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

FAULT_ENV = "SNNKIT_FAULT_AT"
FAULT_EXIT = 86

_fault_counts: dict[str, int] = {}


def fault_point(name: str, path: Path | None = None) -> None:
    """When ``$SNNKIT_FAULT_AT`` is ``POINT[:N]`` naming this point, end the process abruptly the N-th time here
    (crash tests); ``POINT:N:ENOSPC`` (any errno name) raises that ``OSError`` on ``path`` instead (I/O tests)."""
    point, nth, code = (os.environ.get(FAULT_ENV, "") + "::").split(":")[:3]
    if point != name:
        return
    _fault_counts[name] = _fault_counts.get(name, 0) + 1
    if _fault_counts[name] == int(nth or 1):
        if code:
            raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)), None if path is None else str(path))
        os._exit(FAULT_EXIT)


def atomic_write(path: Path, data: bytes, fault: str | None = None) -> Path:
    """The one way snnkit writes a file: a temporary file in the same folder, fsync, rename, fsync of the folder.
    Readers see the old or the new file, never a part, and the rename survives a power cut. A failed write
    leaves no temporary file; the fault point named by the file's name fires before anything is written."""
    path = Path(path)
    fault_point(path.name, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fault:  # e.g. checkpoint-tmp: the new file is written but not yet in place
        fault_point(f"{fault}-tmp")
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    if fault:
        fault_point(fault)
    return path


def _fsync_dir(path: Path) -> None:
    """fsync a folder so a rename inside it survives a power cut (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
