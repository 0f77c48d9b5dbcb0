"""How every command turns an error into one message naming the cause and the fix (no traceback).

Kept apart from ``main`` so command modules can import it without importing ``main`` (which imports them):
``import snnkit_cli.data_cmds`` first then works too. :func:`expected_errors` wraps each command (snnkit's own
errors); :func:`one_line` is the last stop in ``main`` for what no command expected: a failing disk or stdout
(:func:`os_error_message`), a number too large for the machine, and a plugin that broke its contract
(:func:`plugin_fault`)."""

from __future__ import annotations

import errno
import functools
import os
import re
import sys
import traceback
from pathlib import Path

import click

from snnkit_core.contract.errors import SnnkitError

#: errno -> what the user can do about it
FIXES = {
    errno.ENOSPC: "the disk is full: free space on it, or write somewhere else",
    errno.EDQUOT: "your disk quota is used up: free space, or write somewhere else",
    errno.EIO: "the disk or its connection failed: check it (`dmesg` shows why), or write to another disk",
    errno.EROFS: "that file system is mounted read-only: write somewhere else",
    errno.EACCES: "you lack permission there: fix its permissions (chmod), or choose another place",
    errno.EPERM: "you lack permission there: fix its permissions (chmod), or choose another place",
    errno.ENOLCK: "that file system refuses file locks (common on network mounts such as NFS): put the run "
                  "directory on a local disk",
    errno.ENOENT: "check the path",
    errno.EISDIR: "a folder is where a file is expected: give the file's path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.ENAMETOOLONG: "the path is too long: choose a shorter one",
    errno.EMFILE: "too many files are open: raise the limit (ulimit -n)",
    errno.ENOMEM: "the machine ran out of memory: use smaller sizes, or close other programs",
}


def expected_errors(fn):
    """Turn snnkit's expected errors into a clean message and exit code 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SnnkitError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def _run_of(path: Path) -> Path | None:
    """The run directory ``path`` is in (a folder with status.json or config.toml), or None."""
    for folder in (path, *path.parents):
        if (folder / "status.json").is_file() or (folder / "config.toml").is_file():
            return folder
    return None


def os_error_message(exc: OSError, command: str | None = None) -> str:
    """One line for an I/O failure: the file, the system's reason with its errno name, the fix; for ``train``,
    how to go on once it is fixed (every finished epoch is kept)."""
    code = errno.errorcode.get(exc.errno or 0, "")
    where = re.sub(r"\.tmp\d+$", "", str(exc.filename)) if exc.filename is not None else "a file"  # atomic_write's
    reason = f"{exc.strerror or exc}" + (f" ({code})" if code else "")
    fix = FIXES.get(exc.errno, "check the path, the disk and the permissions")
    text = f"I/O failed on {where}: {reason}. {fix[0].upper()}{fix[1:]}."
    run = _run_of(Path(exc.filename).parent) if command == "train" and exc.filename is not None else None
    if run is not None and (run / "checkpoint.pt").is_file():
        text += f" {run} keeps every finished epoch; once fixed, continue with: snnkit train --resume {run}"
    elif command == "train":
        text += " Then run the same command again."
    return text


def plugin_fault(exc: BaseException) -> str | None:
    """``plugin 'P' broke ...`` when a plugin's component raised or returned what its contract forbids, judged
    from the traceback: the innermost frame in a plugin's code, else the innermost frame holding a component; None
    when no plugin is involved."""
    from snnkit_core.contract import plugins

    if not plugins.is_collected():
        return None
    registry = plugins.get_registry()
    roots = {}  # the source of each component's top-level module: a package's folder, or a module's file
    for comp in registry.all():
        top = sys.modules.get(comp.cls.__module__.split(".")[0])
        if getattr(top, "__file__", None):
            file = Path(top.__file__)
            roots[str(file.parent) + os.sep if file.name == "__init__.py" else str(file)] = comp.plugin
    comps = {c.cls: c for c in registry.all()}
    frames = [f for f, _ in traceback.walk_tb(exc.__traceback__)]
    for frame in reversed(frames):
        plugin = next((p for root, p in roots.items() if frame.f_code.co_filename == root
                       or root.endswith(os.sep) and frame.f_code.co_filename.startswith(root)), None)
        if plugin is not None and plugin not in plugins.FIRST_PARTY:  # a first-party plugin's fault is snnkit's
            owner = next((c for v in frame.f_locals.values() for c in [comps.get(type(v))] if c), None)
            what = f"{owner.kind} {owner.name!r}" if owner else "its code"
            where = "its constructor" if frame.f_code.co_name == "__init__" else frame.f_code.co_name
            return _blame(owner.plugin if owner else plugin, f"{what} raised in {where}", exc)
    for frame in reversed(frames):
        found = [c for value in frame.f_locals.values() for c in _components(value, comps)
                 if c.plugin not in plugins.FIRST_PARTY]
        if found:
            names = " and ".join(dict.fromkeys(f"{c.kind} {c.name!r}" for c in found))
            promise = "; ".join(dict.fromkeys(PROMISES[c.kind] for c in found if c.kind in PROMISES))
            return _blame(found[0].plugin, f"{names} returned what the contract does not allow ({promise}; it "
                                           f"failed in snnkit's {frame.f_code.co_name})", exc)
    return None


#: the promise of each kind of component that snnkit's code relies on right after calling it
PROMISES = {
    "neuron": "step returns (y, s, state) with y and s shaped (B, N) like its input",
    "rule": "train_step returns (loss, logits): a 0-dim loss and (B, K) logits",
    "connectivity": "its recurrence returns input shaped (B, N) for its layer",
    "dataset": "load returns an ArrayData whose x is (n, T, C) and y holds n labels",
}


#: attributes that lead from what a frame holds (the run's build, a network, a layer) to its components; not a
#: network's rules: a failure inside the network's own computation is its layers'
_LINKS = ("gradient_rule", "network", "layers", "output", "neuron")


def _components(value, comps: dict, depth: int = 3) -> list:
    """The registered components ``value`` is or holds (through :data:`_LINKS`, ``depth`` links deep)."""
    found = [comps[type(value)]] if type(value) in comps else []
    if depth == 0 or found:
        return found
    for name in _LINKS:
        try:
            linked = getattr(value, name, None)
            items = list(linked) if name == "layers" and linked is not None else [linked]
        except Exception:  # noqa: BLE001 - a property that fails tells nothing
            continue
        for item in items:
            if item is not None:
                found += _components(item, comps, depth - 1)
    return found


def _blame(plugin: str, what: str, exc: BaseException) -> str:
    return (f"plugin {plugin!r} broke its contract: {what}: {type(exc).__name__}: {exc}. This is an issue with plugin "
            f"{plugin!r}, not snnkit: report it to its authors, or choose another component (snnkit list-plugins)")


def one_line(exc: Exception, command: str | None) -> str | None:
    """The one-line message for an error no command expected, or None to let it through (a bug in snnkit)."""
    if isinstance(exc, SnnkitError):  # e.g. from a plugin's command, which expected_errors does not wrap
        return str(exc)
    if isinstance(exc, OSError):
        return os_error_message(exc, command)
    blamed = plugin_fault(exc)
    if blamed:
        return blamed
    if isinstance(exc, OverflowError):
        return (f"a number is too large for the machine ({type(exc).__name__}: {exc}); use a smaller value "
                "(integers such as --seed must be below 2**63)")
    if isinstance(exc, MemoryError):
        return os_error_message(OSError(errno.ENOMEM, "out of memory"), command)
    return None


def handle_fatal(exc: BaseException, command: str | None) -> None:
    """Re-raise ``exc`` as a one-line :class:`click.ClickException` when :func:`one_line` has a message for it;
    a failing stdout (EPIPE, ``snnkit runs | head -1``) ends quietly, as other command-line tools do."""
    if isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.EBADF) and exc.filename is None:
        quiet_stdout()
        sys.exit(1 if exc.errno == errno.EBADF else 141)
    message = one_line(exc, command) if isinstance(exc, Exception) else None
    if message is None:
        raise exc
    raise click.ClickException(message) from None


def quiet_stdout() -> None:
    """Point stdout at /dev/null, so Python's flush at exit does not fail a second time on a closed pipe."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.close(fd)
    except OSError:
        pass
