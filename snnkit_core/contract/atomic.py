"""The one way snnkit writes a file (run directories, feature caches, plots, exports), and the fault points
the crash-consistency tests use."""

from __future__ import annotations

import os
from pathlib import Path

FAULT_ENV = "SNNKIT_FAULT_AT"
FAULT_EXIT = 86

_fault_counts: dict[str, int] = {}


def fault_point(name: str) -> None:
    """End the process abruptly here when ``$SNNKIT_FAULT_AT`` names this point (crash-consistency tests)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _fault_counts[name] = _fault_counts.get(name, 0) + 1
    if _fault_counts[name] == int(nth or 1):
        os._exit(FAULT_EXIT)


def atomic_write(path: Path, data: bytes, fault: str | None = None) -> Path:
    """The one way snnkit writes a file: a temporary file in the same folder, fsync, rename, fsync of the folder.
    Readers see the old or the new file, never a part, and the rename survives a power cut."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if fault:  # e.g. checkpoint-tmp: the new file is written but not yet in place
        fault_point(f"{fault}-tmp")
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    if fault:
        fault_point(fault)
    return path


def _fsync_dir(path: Path) -> None:
    """fsync a folder so a rename inside it survives a power cut (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
