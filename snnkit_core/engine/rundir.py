"""Run directories: :class:`RunDir` owns every read and write of one; the guarantees and their tests are in
docs/reliability.md, "Run directories". This module imports no torch at module level."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from snnkit_core.contract.atomic import atomic_write, fault_point
from snnkit_core.contract.errors import CheckpointError, ConfigError, RunDirError, torch_error_reason
from snnkit_core.engine.config import TrainConfig, absolute, dump_toml
from snnkit_core.engine.metrics import csv_text, summary

try:  # the lock is an OS file lock (flock), so it dies with its holder: Linux and macOS
    import fcntl
except ImportError:  # pragma: no cover - Windows: RunDir.acquire refuses, saying so
    fcntl = None

LOCK = ".lock"
STATUS = "status.json"
STATES = ("running", "finished", "diverged", "interrupted")


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def is_run(path: Path) -> bool:
    """A folder snnkit wrote: its manifest.json holds a ``run_id`` (written first), or it has the layout of a run
    from before run ids (a manifest.json with snnkit's and torch's versions beside a config.toml), or nothing but a
    lock and temporary files (a process killed before its manifest landed)."""
    path = Path(path)
    man = RunDir(path).read_json(RunDir.MANIFEST)
    if isinstance(man, dict) and (
            "run_id" in man or {"snnkit", "torch"} <= set(man) and (path / RunDir.CONFIG).exists()):
        return True
    names = {p.name for p in path.iterdir()}
    return bool(names) and all(n == LOCK or ".tmp" in n for n in names)


def _shown(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def check_writable(path: Path, what: str = "--out") -> None:
    """Fail now, not after data loading, when ``path`` cannot become or be written as a run directory."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{what} {path} is a file, not a folder; choose a folder path")
    probe_in = next((p for p in (path, *path.parents) if p.exists()), path)  # the nearest folder that exists
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


#: locks this process holds: resolved path -> [fd, depth] (re-entrant, so the CLI and the core may both hold it)
_held: dict[str, list[int]] = {}
#: config keys that may differ on ``--resume`` (where the data is and what computes, never the maths). The CLI's
#: refusal of other options and the checkpoint-versus-config.toml check both read this one tuple.
MAY_MOVE_ON_RESUME = ("data_dir", "device", "backend", "data_on_device")
#: what ``--init-from RUN`` takes from RUN: its network weights only (optimizer, scheduler, RNG and records stay
#: behind), so every config key may differ as long as the weights fit the network the new config builds.
TAKEN_BY_INIT_FROM = ("model",)
#: the keys a checkpoint written by ``snnkit train`` holds
CHECKPOINT_KEYS = ("epoch", "model", "optimizer", "rng")


class RunDir:
    """One run directory, and the only code that reads or writes a file inside one (every write an
    :func:`atomic_write`); its files, their write order and what each guarantees are in docs/reliability.md."""

    CONFIG, MANIFEST, METRICS, CSV = "config.toml", "manifest.json", "metrics.jsonl", "metrics.csv"
    SUMMARY, STATUS, CHECKPOINT, BEST = "summary.json", STATUS, "checkpoint.pt", "best.pt"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        #: 1-based line numbers of ``metrics.jsonl`` that the last :meth:`metrics` call skipped
        self.damaged: list[int] = []

    def __fspath__(self) -> str:
        return str(self.path)

    __str__ = __fspath__

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def acquire(self) -> int | None:
        """Take ``.lock`` for this process (re-entrant). Returns the PID of a previous holder that died
        without releasing it (a stale lock, now taken over), else None. Raises :class:`RunDirError` naming the
        holder's PID when another live process owns the run."""
        run = self.path
        key = str(run.resolve())
        if key in _held:
            _held[key][1] += 1
            return None
        if fcntl is None:  # pragma: no cover
            raise RunDirError("run directories are locked with fcntl.flock, which this platform lacks (Linux and "
                              "macOS have it); snnkit cannot guard a run directory against a second writer here")
        try:
            fd = os.open(run / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunDirError(f"cannot lock run directory {run} ({exc.strerror}: {run / LOCK}); check its "
                              "permissions") from None
        try:
            previous = _read_pid(fd)
            try:
                fault_point("lock", run / LOCK)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise OSError(exc.errno, exc.strerror, str(run / LOCK)) from None  # e.g. ENOLCK: the file named
                raise RunDirError(self._in_use(_read_pid(fd))) from None
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        _held[key] = [fd, 1]
        return previous if previous and previous != os.getpid() else None

    def release(self) -> None:
        key = str(self.path.resolve())
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
    def locked(self) -> Iterator[int | None]:
        """Hold ``.lock`` for the block (see :meth:`acquire`)."""
        stale = self.acquire()
        try:
            yield stale
        finally:
            self.release()

    def holder(self) -> int | None:
        """PID of the live process holding ``.lock``, or None."""
        path = self.path / LOCK
        if not path.exists() or fcntl is None:
            return None
        if str(self.path.resolve()) in _held:
            return os.getpid()
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            pid = _read_pid(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return pid or -1
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def _in_use(self, pid: int | None) -> str:
        return (f"run directory {self.path} is in use by process {pid if pid and pid > 0 else '(unknown PID)'}, which "
                f"holds {self.path / LOCK}. Wait for that run to end (or stop it), or choose another --out.")

    def check_new(self, owned: bool = False) -> None:
        """Raise :class:`RunDirError` unless ``path`` may hold a new run: it does not exist yet, is empty, or is a
        run that never finished an epoch (a killed first epoch is started over). ``owned``: this process holds the
        lock already (the check is repeated under it)."""
        path = self.path
        check_writable(path)
        if not path.exists():
            return
        entries = sorted(p.name for p in path.iterdir() if not (owned and (p.name == LOCK or ".tmp" in p.name)))
        if not entries:
            return
        if not is_run(path):
            raise RunDirError(f"--out {path} is a non-empty folder that is not a snnkit run (it holds "
                              f"{_shown(entries)}); snnkit would overwrite or append to those files. Choose a new or "
                              f"empty folder.")
        if not owned and (pid := self.holder()):
            raise RunDirError(self._in_use(pid))
        done, files = self.holds()
        if (path / self.CHECKPOINT).exists():
            raise CheckpointError(f"{path} already holds a run ({self._held_text(done, files)}); snnkit will not "
                                  f"overwrite it. Continue it with snnkit train --resume {path}, start a new run from "
                                  f"its weights with --init-from {path}, or choose another --out")
        if done:
            raise CheckpointError(f"{path} holds a run ({self._held_text(done, files)}) whose checkpoint.pt is gone; "
                                  f"snnkit will not overwrite it. Choose another --out, or move that run away first.")

    def holds(self) -> tuple[int, list[str]]:
        """What a new run here would overwrite: the finished epochs (by metrics.jsonl, summary.json or a "finished"
        status.json; -1: finished, count unknown) and the names of the run's record and weight files."""
        names = (self.METRICS, self.CHECKPOINT, self.BEST, self.SUMMARY, "eval", "noise", "seeds.json")
        summ, st = self.read_json(self.SUMMARY), self.read_json(STATUS)
        counted = summ.get("epochs_done") if isinstance(summ, dict) else 0
        done = max(len(self.metrics()), counted if isinstance(counted, int) else 0)
        finished = isinstance(st, dict) and st.get("state") == "finished"
        return done or -int(finished), [n for n in names if (self.path / n).exists()]

    @staticmethod
    def _held_text(done: int, files: list[str]) -> str:
        return (f"{done} finished epoch(s)" if done > 0 else "a finished run") + "; files " * bool(files) + ", ".join(
            files)

    def remove_leftover_tmp(self) -> list[Path]:
        """Delete ``*.tmp<pid>`` files a killed writer left (only the lock holder may call this)."""
        removed = []
        for p in self.path.iterdir():
            if ".tmp" in p.name and p.is_file():
                p.unlink(missing_ok=True)
                removed.append(p)
        return removed

    def write_bytes(self, name: str, data: bytes, fault: str | None = None) -> Path:
        """Write ``data`` to ``name`` (a path inside the run; folders are made) with :func:`atomic_write`."""
        return atomic_write(self.path / name, data, fault)

    def write_text(self, name: str, text: str, fault: str | None = None) -> Path:
        return self.write_bytes(name, text.encode(), fault)

    def write_json(self, name: str, obj: Any, fault: str | None = None) -> Path:
        return self.write_text(name, json.dumps(obj, indent=2) + "\n", fault)

    def write_config(self, cfg) -> None:
        """``config.toml`` from a :class:`~snnkit_core.engine.config.TrainConfig`."""
        self.write_text(self.CONFIG, dump_toml({"train": cfg.to_dict()}), fault="config")

    def save_checkpoint(self, state: dict, name: str = CHECKPOINT) -> None:
        """``torch.save`` of ``state`` to ``name`` through :meth:`write_bytes`."""
        import torch

        buf = io.BytesIO()
        torch.save(state, buf)
        self.write_bytes(name, buf.getvalue(), fault="checkpoint" if name == self.CHECKPOINT else "best")

    def write_records(self, records: list[dict]) -> list[str]:
        """``metrics.jsonl`` (one JSON line per finished epoch) and the files derived from it, ``metrics.csv`` and
        ``summary.json``, from ``records`` (the checkpoint's), each rewritten only when it differs. Idempotent: every
        start, resume and epoch end calls it. Returns the names rewritten."""
        texts = ((self.METRICS, "".join(json.dumps(r) + "\n" for r in records), "metrics"),
                 (self.CSV, csv_text(records), "csv"), (self.SUMMARY, json.dumps(summary(records), indent=2) + "\n",
                                                        "summary"))
        changed = []
        for name, text, fault in texts:
            try:
                same = (self.path / name).read_text() == text
            except (OSError, UnicodeDecodeError):
                same = False
            if not same:
                self.write_text(name, text, fault)
                changed.append(name)
        return changed

    def write_status(self, state: str, message: str = "", **extra: Any) -> None:
        """``status.json``; ``extra`` adds keys (the training loop's ``warnings``, ``stopped_early``)."""
        if state not in STATES:
            raise ValueError(f"status state must be one of {STATES}; got {state!r}")
        record = {"state": state, "pid": os.getpid(), "message": message,
                  "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}
        self.write_text(STATUS, json.dumps(record, indent=1) + "\n", fault="status")

    def read_json(self, name: str) -> Any:
        """The JSON file ``name``, or None when it is missing or not JSON."""
        try:
            return json.loads((self.path / name).read_text())
        except (OSError, ValueError):
            return None

    def config_toml(self) -> dict:
        """The ``[train]`` table of ``config.toml`` as plain TOML values (no validation; see :meth:`config`)."""
        import tomllib

        try:
            data = tomllib.loads((self.path / self.CONFIG).read_text())
        except FileNotFoundError:
            raise CheckpointError(f"{self.path} is not a run directory: it has no {self.CONFIG}") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise CheckpointError(f"{self.path / self.CONFIG} cannot be read ({exc}); restore it from a copy") from None
        return data.get("train", data)

    def config(self) -> TrainConfig:
        """The run's :class:`~snnkit_core.engine.config.TrainConfig` (a run from before validation existed, with no
        ``val_fraction``, trained on all of train)."""
        return TrainConfig.from_dict({"val_fraction": 0.0, **self.config_toml()}, source=str(self.path / self.CONFIG))

    def metrics(self) -> list[dict]:
        """The epoch records of ``metrics.jsonl`` in order, damaged lines skipped (see the class docstring)."""
        self.damaged = []
        try:
            lines = (self.path / self.METRICS).read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                rec = None
            if isinstance(rec, dict) and isinstance(rec.get("epoch"), int):
                out.append(rec)
            else:
                self.damaged.append(i)
        return out

    def damage_note(self) -> str | None:
        """One line naming the damaged metrics lines the last :meth:`metrics` skipped, or None."""
        if not self.damaged:
            return None
        return (f"{self.path / self.METRICS}: skipped damaged line(s) {', '.join(map(str, self.damaged))} (not epoch "
                f"records); `snnkit train --resume {self.path}` rewrites the file from the checkpoint")

    def load_checkpoint(self, name: str = CHECKPOINT) -> dict:
        """A checkpoint (``weights_only``), checked: every failure is a :class:`CheckpointError` naming the file and
        the way out. ``best.pt`` may be a bare state dict (``{"model": ...}`` is returned)."""
        import torch

        path = self.path / name
        if not path.exists():
            raise CheckpointError(self.missing_checkpoint(name))
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
            raise CheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__}: "
                                  f"{torch_error_reason(exc)}); it "
                                  f"may be corrupt or truncated. Restore it from a copy, or start a new run.") from None
        if name != self.CHECKPOINT:
            if not isinstance(ck, dict):
                raise CheckpointError(f"{path} is not a snnkit weights file (a dict with 'model')")
            return ck if "model" in ck else {"model": ck}
        missing = [k for k in CHECKPOINT_KEYS if not isinstance(ck, dict) or k not in ck]
        if missing:
            raise CheckpointError(f"checkpoint {path} loads but lacks {', '.join(map(repr, missing))}: it was not "
                                  f"written by `snnkit train`. Restore it from a copy, or start a new run.")
        if isinstance(ck["epoch"], bool) or not isinstance(ck["epoch"], int) or ck["epoch"] < 0:
            raise CheckpointError(f"checkpoint {path} has epoch {ck['epoch']!r}, not a count of finished epochs")
        return ck

    def missing_checkpoint(self, name: str = CHECKPOINT) -> str:
        """Why ``name`` is missing, saying what the folder holds and a safe next command."""
        path = self.path
        if name == self.BEST:
            return f"{path} has no {self.BEST} (only runs with a validation split write one); use --weights last"
        entries = sorted(p.name for p in path.iterdir() if p.name != LOCK) if path.is_dir() else []
        if not entries or not is_run(path):
            held = f"it holds {_shown(entries)}" if entries else "it is empty" if path.is_dir() else "no such folder"
            return (f"{path} is not a snnkit run ({held}; no manifest.json written by snnkit train), so it has no "
                    f"{name}; give the folder of a run that `snnkit train` wrote")
        done, files = self.holds()
        if done:
            best = f"{self.BEST} remains: snnkit eval {path} --checkpoint best reads it. " if self.BEST in files else ""
            return (f"{path} holds a run ({self._held_text(done, files)}) but no {name} (deleted?), so it cannot be "
                    f"resumed or read with it. {best}Its records stay; to train it again, start a new run elsewhere: "
                    f"snnkit train --config {path / self.CONFIG} --out NEW_DIR")
        return (f"{path} has no {name} yet (the run stopped before its first epoch ended); start it again: "
                f"snnkit train --config {path / self.CONFIG} --out {path}")

    def status(self, epochs: int | None = None) -> dict[str, Any]:
        """status.json, with "running" turned into "killed" when its process is gone. Without status.json (an older
        run): "running" while a live process holds ``.lock``, "finished" if metrics.jsonl has ``epochs`` records,
        else "killed"."""
        st = self.read_json(STATUS)
        if not isinstance(st, dict) or st.get("state") not in STATES:
            done = len(self.metrics())
            state = "running" if self.holder() else "finished" if epochs is not None and done >= epochs else "killed"
            return {"state": state, "pid": None, "message": "", "updated": None}
        if st["state"] == "running" and not self.holder():
            pid = st.get("pid")
            if not (isinstance(pid, int) and pid == os.getpid()):
                st = dict(st, state="killed")
        return st

    def check_resume_options(self, given: dict[str, Any]) -> None:
        """Refuse options given with ``--resume`` that are not in :data:`MAY_MOVE_ON_RESUME` (name -> value)."""
        named = [f"--{k.replace('_', '-')}" for k, v in given.items()
                 if k not in MAY_MOVE_ON_RESUME and v not in (None, (), [])]
        if named:
            cfg = self.path / self.CONFIG
            raise ConfigError(
                f"--resume continues {self.path} exactly as its config.toml says, so {', '.join(named)} cannot apply. "
                f"To train a changed copy, start a new run from its config with the options you want: "
                f"snnkit train --config {cfg} --out NEW_DIR {' '.join(g + ' ...' for g in named)}"
                f" (add --init-from {self.path} to start from its weights)")

    def check_unchanged(self, saved: dict | None, now: dict) -> None:
        """Refuse a resume whose config differs from the checkpoint's in a key outside :data:`MAY_MOVE_ON_RESUME`."""
        if not isinstance(saved, dict):
            return
        changed = sorted(k for k in set(saved) | set(now) if k not in MAY_MOVE_ON_RESUME and saved.get(k) != now.get(k))
        if changed:
            diff = "; ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in changed)
            raise CheckpointError(
                f"{self.path / self.CONFIG} was edited after checkpoint {self.path / self.CHECKPOINT} was written "
                f"({diff}). --resume continues a run exactly as it was: undo the edit, or start a new run from these "
                f"weights with snnkit train --config {self.path / self.CONFIG} --init-from {self.path} --out NEW_DIR")

    def resume_config(self, given: dict[str, Any], moved: dict[str, Any], write: bool = True):
        """The config to resume: ``given`` options outside :data:`MAY_MOVE_ON_RESUME` are refused; ``moved`` holds new
        values of those keys (None: unchanged), written back to ``config.toml`` when ``write`` (rank 0)."""
        self.check_resume_options(given)
        cfg = self.config()
        changes = {k: v for k, v in moved.items() if v is not None}
        if changes.get("data_dir"):
            changes["data_dir"] = absolute(changes["data_dir"])
        if changes:
            cfg = cfg.evolve(**changes)
            if write:
                self.write_config(cfg)
        return cfg

    def completed(self, epochs: int) -> str | None:
        """Why there is nothing to resume when every epoch is done or the run stopped early (with how to train
        further), else None."""
        st = self.read_json(STATUS)
        if isinstance(st, dict) and (early := st.get("stopped_early")):
            return (f"{self.path} stopped early at epoch {early} (--patience), nothing to resume. To train further, "
                    f"start a new run from its weights: snnkit train --config {self.path / self.CONFIG} --init-from "
                    f"{self.path} --out NEW_DIR")
        if int(self.load_checkpoint()["epoch"]) + 1 < epochs:
            return None
        return (f"{self.path} is complete: all {epochs} epochs are done, nothing to resume. To train further, start "
                f"a new run from its weights: snnkit train --config {self.path / self.CONFIG} --init-from {self.path} "
                f"--epochs N --out NEW_DIR")

    def checkpoint_records(self, ck: dict) -> list[dict]:
        """The epoch records a checkpoint counts (from metrics.jsonl for a checkpoint from before they were in it)."""
        saved = ck.get("records") if isinstance(ck.get("records"), list) else self.metrics()
        return [r for r in saved if isinstance(r, dict)][: int(ck["epoch"]) + 1]

    def repair(self, epochs: int) -> list[str]:
        """A complete run's derived files rebuilt from its checkpoint (a kill or an I/O error after the last
        checkpoint landed leaves them an epoch behind, or status.json "running"); returns the names rewritten."""
        ck = self.load_checkpoint()
        fixed = self.write_records(self.checkpoint_records(ck))
        if not isinstance(st := self.read_json(STATUS), dict) or st.get("state") != "finished":
            self.write_status("finished", f"{epochs} of {epochs} epochs", warnings=(ck.get("health") or {}).get(
                "warnings", []))
            fixed.append(STATUS)
        return fixed
