"""Run directories: who owns one, what makes a folder a run, and writes that a crash cannot tear.

A run directory ``RUN`` holds ``config.toml``, ``manifest.json``, ``metrics.jsonl`` (one JSON object per
finished epoch), ``checkpoint.pt`` and ``status.json``. Three rules keep it consistent:

* **One owner.** A process that writes into ``RUN`` first takes an OS-level lock on ``RUN/.lock``
  (``fcntl.flock``, held for the run's life; the file holds the holder's PID). A second process fails at
  once with :class:`~snnkit_core.contract.errors.RunDirError` naming that PID. The OS drops the lock when its holder
  dies, so a lock left by a killed process is stale and the next process takes it over (the PID still in the
  file tells that the previous holder did not end cleanly).
* **Write order.** At the end of epoch ``e`` the metrics line for ``e`` is appended (and fsynced) *before*
  the checkpoint of ``e`` is renamed into place. The checkpoint is the truth: it also carries every epoch's
  metrics record, so ``--resume`` rewrites ``metrics.jsonl`` from it (a torn or extra last line from a crash
  is dropped, and a lost line comes back). Every other file is written to ``NAME.tmp<pid>`` and renamed;
  leftover ``*.tmp*`` files are removed by the next owner.
* **Nothing else is overwritten.** A new run refuses a non-empty folder that is not a run and a run that
  already has a checkpoint (that one is for ``--resume``).

``status.json`` is ``{"state": "running" | "finished" | "diverged" | "interrupted", "pid", "message",
"updated"}``. :func:`read_status` reports a "running" run whose process is gone as "killed".

Fault injection (tests only): with ``SNNKIT_FAULT_AT=POINT[:N]`` the process ends with ``os._exit(86)`` at
the N-th (default first) time it reaches ``POINT``: ``metrics`` (after the epoch's line is appended),
``checkpoint-tmp`` (after the temporary checkpoint is written, before the rename), ``checkpoint`` (after
the rename), ``status`` (after status.json is replaced), ``config``, ``manifest``.

This module imports no torch at module level, so commands that only read run folders start fast.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from snnkit_core.contract.errors import CheckpointError, RunDirError

try:  # POSIX; elsewhere the lock falls back to a PID file checked for a live holder
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS
    fcntl = None

LOCK = ".lock"
STATUS = "status.json"
STATES = ("running", "finished", "diverged", "interrupted")
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


# ------------------------------------------------------------------------------------------ atomic writes


def _tmp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp{os.getpid()}")


def atomic_write_text(path: Path, text: str, fault: str | None = None) -> None:
    """Write ``text`` to ``path`` through a temporary file, fsync and rename: readers see the old or the new
    file, never a part."""
    tmp = _tmp_name(path)
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    if fault:
        fault_point(fault)


def save_checkpoint(state: dict, path: Path) -> None:
    """``torch.save`` to ``checkpoint.pt.tmp<pid>``, fsync, rename."""
    import torch

    tmp = _tmp_name(path)
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    fault_point("checkpoint-tmp")
    os.replace(tmp, path)
    fault_point("checkpoint")


def append_metrics(path: Path, record: dict) -> None:
    """Append one JSON line and fsync it (it must be on disk before the checkpoint that counts it)."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())
    fault_point("metrics")


def rewrite_metrics(path: Path, records: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def read_metrics(path: Path, *, tolerate_torn_tail: bool = True, skip_bad: bool = False) -> list[dict]:
    """The records of ``metrics.jsonl``. A torn last line (a crash mid-append) is skipped; a bad line before
    the end raises :class:`CheckpointError` naming the file and line, or is skipped with ``skip_bad`` (for
    listings, which must show every run however damaged)."""
    if not path.exists():
        return []
    lines = path.read_text(errors="replace").splitlines()
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or not isinstance(rec.get("epoch"), int):
                raise ValueError("not an epoch record")
        except ValueError:
            if skip_bad:
                continue
            if tolerate_torn_tail and all(not ln.strip() for ln in lines[i + 1 :]):
                break  # the last line was cut off by a crash
            raise CheckpointError(
                f"{path} line {i + 1} is not a metrics record ({line[:60]!r}); fix or delete that line"
            ) from None
        out.append(rec)
    return out


def remove_leftover_tmp(run: Path) -> list[Path]:
    """Delete ``*.tmp<pid>`` files a killed writer left (only the lock holder may call this)."""
    removed = []
    for p in run.iterdir():
        if ".tmp" in p.name and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


# ------------------------------------------------------------------------------------------ ownership


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


#: locks this process holds: resolved path -> [fd, depth] (re-entrant, so the CLI and the core may both hold it)
_held: dict[str, list[int]] = {}


def acquire(run: Path) -> int | None:
    """Take ``run/.lock`` for this process (re-entrant). Returns the PID of a previous holder that died
    without releasing it (a stale lock, now taken over), else None. Raises :class:`RunDirError` naming the
    holder's PID when another live process owns the run."""
    run = Path(run)
    key = str(run.resolve())
    if key in _held:
        _held[key][1] += 1
        return None
    try:
        fd = os.open(run / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise RunDirError(f"cannot lock run directory {run} ({exc.strerror}: {run / LOCK}); check its permissions") from None
    try:
        previous = _read_pid(fd)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                holder = _read_pid(fd)
                raise RunDirError(
                    f"run directory {run} is in use by process {holder if holder else '(unknown PID)'}, which holds "
                    f"{run / LOCK}. Wait for that run to end (or stop it), or choose another --out."
                ) from None
        elif previous and previous != os.getpid() and _pid_alive(previous):  # pragma: no cover - no fcntl
            raise RunDirError(f"run directory {run} is in use by process {previous} ({run / LOCK}); choose another --out")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    _held[key] = [fd, 1]
    return previous if previous and previous != os.getpid() else None


def release(run: Path) -> None:
    key = str(Path(run).resolve())
    entry = _held.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] > 0:
        return
    del _held[key]
    fd = entry[0]
    try:
        os.ftruncate(fd, 0)  # an empty lock file means "ended cleanly"; a PID left behind means the holder died
    except OSError:
        pass
    os.close(fd)  # closing drops the flock


@contextlib.contextmanager
def locked(run: Path) -> Iterator[int | None]:
    """Hold ``run/.lock`` for the block (see :func:`acquire`)."""
    stale = acquire(run)
    try:
        yield stale
    finally:
        release(run)


def holder(run: Path) -> int | None:
    """PID of the live process holding ``run/.lock``, or None."""
    path = Path(run) / LOCK
    if not path.exists():
        return None
    if str(Path(run).resolve()) in _held:
        return os.getpid()
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        pid = _read_pid(fd)
        if fcntl is None:  # pragma: no cover
            return pid if pid and _pid_alive(pid) else None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return pid or -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------ what a run is


def is_run(path: Path) -> bool:
    """A folder snnkit wrote: a status.json (written first) or a manifest.json with snnkit's keys, or nothing but a
    lock and temporary files (a process killed right after taking the lock)."""
    path = Path(path)
    for name, key in (("manifest.json", "snnkit"), (STATUS, "state")):
        try:
            if key in json.loads((path / name).read_text()):
                return True
        except (OSError, ValueError, TypeError):
            pass
    names = {p.name for p in path.iterdir()}
    return bool(names) and all(n == LOCK or ".tmp" in n for n in names)


def check_writable(path: Path, what: str = "--out") -> None:
    """Fail now, not after data loading, when ``path`` cannot become or be written as a run directory."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{what} {path} is a file, not a folder; choose a folder path")
    probe_in = path
    while not probe_in.exists():
        if probe_in.parent == probe_in:
            break
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise RunDirError(f"{what} {path} cannot be created: {probe_in} is a file, not a folder")
    try:  # os.access says yes to root even on a read-only mount: try a real write
        fd, name = tempfile.mkstemp(prefix=".snnkit-probe", dir=probe_in)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise RunDirError(
            f"{what} {path} cannot be written: {probe_in} is not writable ({exc.strerror}). Choose another {what}."
        ) from None


def check_new_run(path: Path, owned: bool = False) -> None:
    """Raise :class:`RunDirError` unless ``path`` may hold a new run: it does not exist yet, is empty, or is a
    run that never finished an epoch (no checkpoint; a killed first epoch is started over). ``owned``: this
    process holds the lock already (the check is repeated under it)."""
    path = Path(path)
    check_writable(path)
    if not path.exists():
        return
    entries = sorted(p.name for p in path.iterdir() if not (owned and (p.name == LOCK or ".tmp" in p.name)))
    if not entries:
        return
    if not is_run(path):
        shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
        raise RunDirError(
            f"--out {path} is a non-empty folder that is not a snnkit run (it holds {shown}); snnkit would overwrite "
            f"or append to those files. Choose a new or empty folder."
        )
    pid = None if owned else holder(path)
    if pid:
        raise RunDirError(
            f"run directory {path} is in use by process {pid}, which holds {path / LOCK}. Wait for that run to end "
            f"(or stop it), or choose another --out."
        )
    if (path / "checkpoint.pt").exists():
        raise CheckpointError(
            f"{path} already holds a run; use --resume {path} to continue it, --init-from {path} to start a new "
            f"run from its weights, or another --out"
        )


def make_unique_dir(parent: Path, name: str) -> Path:
    """Create ``parent/name`` (or ``name-2``, ``name-3`` ...) atomically: two runs started in the same second
    never share a folder."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for i in range(1, 10_000):
        path = parent / (name if i == 1 else f"{name}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunDirError(f"could not find a free run directory name {name}-N under {parent}")


# ------------------------------------------------------------------------------------------ status


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def write_status(run: Path, state: str, message: str = "") -> None:
    if state not in STATES:
        raise ValueError(f"status state must be one of {STATES}; got {state!r}")
    record = {"state": state, "pid": os.getpid(), "message": message, "updated": _now()}
    atomic_write_text(Path(run) / STATUS, json.dumps(record, indent=1) + "\n", fault="status")


def read_status(run: Path, epochs: int | None = None) -> dict[str, Any]:
    """status.json, with "running" turned into "killed" when its process is gone. Without status.json (an older
    run): "running" while a live process holds ``.lock``, "finished" if metrics.jsonl has ``epochs`` records,
    else "killed"."""
    run = Path(run)
    try:
        st = json.loads((run / STATUS).read_text())
        if not isinstance(st, dict) or st.get("state") not in STATES:
            raise ValueError
    except (OSError, ValueError):
        done = len(read_metrics(run / "metrics.jsonl", skip_bad=True))
        state = "running" if holder(run) else "finished" if epochs is not None and done >= epochs else "killed"
        return {"state": state, "pid": None, "message": "", "updated": None}
    if st["state"] == "running" and not holder(run):
        pid = st.get("pid")
        if not (isinstance(pid, int) and pid == os.getpid()):
            st = dict(st, state="killed")
    return st
