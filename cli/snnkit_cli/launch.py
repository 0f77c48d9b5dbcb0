"""``snnkit train --devices N``: start N training processes on this machine (as torchrun would), watch them, and
end them together.

What the launcher promises (docs/reliability.md, "Multi-process faults"):

* Every collective waits at most ``--rank-timeout`` seconds (``SNNKIT_RANK_TIMEOUT``) for the other processes, so a
  frozen or stuck process ends the run instead of hanging it; the run keeps its last checkpoint.
* SIGINT, SIGTERM and SIGHUP sent to the launcher stop every process (they run in their own process group, so a
  terminal's Ctrl-C reaches them through here, as SIGTERM); rank 0 writes ``status.json``, and a process still
  there after a grace period is killed. A process whose launcher dies gets SIGTERM (Linux).
* One line says what failed (which process, how) and how to continue, with ``--devices``; a process that only
  lost its peers stays silent (exit code :data:`PEER_LOST`) so the cause is not buried under their tracebacks.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import click
from attrs import frozen

from snnkit_core.contract.errors import ConfigError
from snnkit_core.engine.config import TrainConfig, dump_toml

from .render import console, err_console

PEER_LOST = 75  # exit code of a process whose collective failed because another process exited or stopped answering
LAUNCHED = "SNNKIT_LAUNCHED"  # set in the processes --devices starts: they leave the one message to the launcher
TIMEOUT_ENV = "SNNKIT_RANK_TIMEOUT"
DEFAULT_TIMEOUT = 300
GRACE = 5.0  # seconds the processes get to write status.json and exit after a signal, before SIGKILL
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def launch_train(devices: int, cfg: TrainConfig, run_dir: Path, resume: bool, quiet: bool, loggers: tuple = (),
                 threads: int | None = None, force: bool = False, change: bool = False) -> None:
    """Run the already-resolved ``cfg`` in ``devices`` processes: each gets the config as a file (new run) or the
    run directory (``--resume``), so every process trains exactly what this command parsed. ``force``: allow more
    processes than CPU cores; ``change``: resume with another number of processes than the run's."""
    from snnkit_core.engine.distributed import env_world

    if env_world().active:
        raise ConfigError("--devices starts its own processes; under torchrun, leave it out (torchrun sets the number)")
    _precheck(cfg)
    check_devices(devices, cfg, force)
    console.print(f"[bold]snnkit train[/] --devices {devices}: {devices} processes, global batch "
                  f"{devices} x {cfg.batch_size} -> {run_dir}")
    extra = (
        (["--quiet"] if quiet else [])
        + [arg for name in loggers for arg in ("--logger", name)]
        + (["--threads", str(threads), "--force-threads"] if threads else [])  # this process checked it
        + (["--change-devices"] if change else [])
    )
    if resume:
        code, cause = launch(devices, ["train", "--resume", str(run_dir), *extra])
    else:
        with tempfile.TemporaryDirectory(prefix="snnkit-launch-") as tmp:
            path = Path(tmp) / "config.toml"
            path.write_text(dump_toml({"train": cfg.to_dict()}))
            code, cause = launch(devices, ["train", "--config", str(path), "--out", str(run_dir), *extra])
    if code != 0:
        _end_run(run_dir, devices, code, cause)


def _end_run(run_dir: Path, devices: int, code: int, cause: str) -> None:
    """After a failed or interrupted launch: ``status.json`` says ``interrupted`` (not ``running``) with the cause,
    and one line tells the user what happened and how to continue."""
    from snnkit_core.engine.rundir import RunDir

    run = RunDir(run_dir)
    hint = f"snnkit train --devices {devices} --resume {run_dir}"
    try:
        done = int(run.load_checkpoint()["epoch"]) + 1
    except Exception:  # noqa: BLE001 - no (readable) checkpoint: no epoch to continue from
        done = 0
    kept = f"{run_dir} keeps the {done} epoch(s) that finished; continue with: {hint}" if done else (
        f"no epoch finished, so there is nothing to resume: train again with another --out (or delete {run_dir})")
    status = run.read_json(RunDir.STATUS)
    if not isinstance(status, dict) and code not in (128 + signal.SIGINT, 128 + signal.SIGTERM, 128 + signal.SIGHUP):
        raise click.ClickException(cause)  # it failed before the run began (its message is above)
    if isinstance(status, dict) and status.get("state") in ("running", "interrupted"):
        with contextlib.suppress(Exception):  # best effort: a locked or unwritable folder keeps what it has
            with run.locked():
                extra = {k: v for k, v in status.items() if k not in ("state", "pid", "message", "updated")}
                run.write_status("interrupted", f"{cause}; {kept}", **extra)
    if code in (128 + signal.SIGINT, 128 + signal.SIGTERM, 128 + signal.SIGHUP):
        err_console.print(f"{cause}; {kept}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(code)
    raise click.ClickException(f"{cause}; {kept}")


def _precheck(cfg: TrainConfig) -> None:
    """Errors every process would hit, said once here: unknown components, bad parameters, an unusable device.
    (Nothing that reads data: the processes do that.)"""
    from snnkit_core.engine.training import build

    build(cfg)  # every component and parameter, as each process will build them


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity, else the machine's count)."""
    with contextlib.suppress(AttributeError, OSError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def check_devices(devices: int, cfg: TrainConfig, force: bool = False) -> None:
    """Refuse more processes than there are GPUs (CUDA) or, on the CPU, CPU cores (unless ``force``): each
    process is a full training process, and more of them than cores starve each other and the machine."""
    if cfg.device.startswith("cuda") or cfg.device == "auto":
        import torch

        if torch.cuda.is_available():
            if devices > torch.cuda.device_count():
                raise ConfigError(f"--devices {devices} needs {devices} GPUs (one per process); torch sees "
                                  f"{torch.cuda.device_count()}")
            return
    cores = cpu_cores()
    if devices > cores and not force:
        raise ConfigError(f"--devices {devices} would start {devices} training processes on {cores} CPU core(s); "
                          f"they would starve each other and the machine. Use --devices {cores} or fewer, or add "
                          "--force-devices to start them anyway")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the launcher dies, even by SIGKILL (Linux; elsewhere nothing)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


def _start(procs: list[subprocess.Popen], nprocs: int, argv: Sequence[str], env: dict[str, str] | None) -> None:
    port = str(free_port())
    base = dict(os.environ if env is None else env)
    # N processes on one machine share its cores (torchrun sets 1 thread; here an even share, unless set)
    base.setdefault("OMP_NUM_THREADS", str(max(1, cpu_cores() // nprocs)))
    base[LAUNCHED] = "1"
    for rank in range(nprocs):
        e = {**base, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(nprocs),
             "LOCAL_WORLD_SIZE": str(nprocs), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        # their own process group: a terminal's Ctrl-C reaches them once, forwarded from here
        procs.append(subprocess.Popen([sys.executable, "-m", "snnkit_cli", *argv], env=e, process_group=0,
                                      preexec_fn=die_with_parent))


@contextlib.contextmanager
def _forwarding(procs: list[subprocess.Popen], got: list[int]) -> Iterator[None]:
    """While the block runs, SIGINT / SIGTERM / SIGHUP to this process (recorded in ``got``) stop every child:
    SIGTERM, which a training process takes as Ctrl-C (and which ends one still starting without a traceback)."""

    def forward(signum, _frame):
        got.append(signum)
        _signal_all(procs, signal.SIGTERM)

    old = {s: signal.signal(s, forward) for s in FORWARDED}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _signal_all(procs: list[subprocess.Popen], signum: int) -> None:
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(OSError):
                os.kill(p.pid, signal.SIGCONT)  # a stopped process acts on the signal only once it runs again
                os.kill(p.pid, signum)


def launch(nprocs: int, argv: Sequence[str], env: dict[str, str] | None = None, poll: float = 0.1,
           grace: float = GRACE) -> tuple[int, str]:
    """Run ``python -m snnkit_cli *argv`` in ``nprocs`` processes on this machine, as torchrun would (``RANK``,
    ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``; ``OMP_NUM_THREADS`` = cores / N unless set),
    and wait. When one fails, or this process gets a signal, every process is asked to stop (SIGTERM, or the
    signal) and killed after ``grace`` seconds. Returns ``(0, "")`` or the exit code and one line naming the cause."""
    procs: list[subprocess.Popen] = []
    got: list[int] = []
    with _forwarding(procs, got):
        _start(procs, nprocs, argv, env)  # in place: a signal meanwhile reaches those already started
        codes: dict[int, int] = {}
        causes: dict[int, int] = {}
        alive: set[int] = set()
        stop_at = None
        while len(codes) < nprocs:
            new = {r: rc for r, p in enumerate(procs) if r not in codes and (rc := p.poll()) is not None}
            codes.update(new)
            if stop_at is None and (got or any(new.values())):
                # the first failure: what ended now is the cause; what still runs is asked to stop
                causes = {r: rc for r, rc in new.items() if rc != 0}
                alive = {r for r in range(nprocs) if r not in codes}
                stop_at = time.monotonic() + grace
                if not got:  # (a signal was passed on already: a second one could cut rank 0's last writes)
                    _signal_all(procs, signal.SIGTERM)
            if stop_at is not None and time.monotonic() > stop_at:
                _kill_rest(procs)
            if len(codes) < nprocs:
                time.sleep(poll)
    if got:
        return 128 + got[0], f"interrupted by {signal.Signals(got[0]).name}"
    return _cause(causes, alive)


def _kill_rest(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(OSError):
                p.kill()
            p.wait()


def _cause(causes: dict[int, int], alive: set[int]) -> tuple[int, str]:
    """The one line for the first failure: a process's own error or death comes before the ones that only lost
    it; when every failure is a lost peer, the processes still running then had stopped answering."""
    if not causes:
        return 0, ""
    own = {r: c for r, c in causes.items() if c != PEER_LOST}
    if own:
        rank, rc = min(own.items())
        if rc < 0:
            return 1, f"training process rank {rank} was killed by {signal.Signals(-rc).name}; the others were stopped"
        return rc, (f"training process rank {rank} failed with exit code {rc} (its message is above); the others "
                    "were stopped")
    if alive:
        timeout = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT))
        return 1, (f"training process rank {', '.join(map(str, sorted(alive)))} stopped answering for {timeout} s "
                   "(--rank-timeout): frozen, stopped or stuck; every process was stopped")
    return 1, "the training processes lost contact with each other; every process was stopped"


def lost_peer(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed collective: another process exited, or stopped answering past the timeout."""
    import torch.distributed as dist

    text = str(exc).lower()
    return isinstance(exc, getattr(dist, "DistError", ())) or (
        isinstance(exc, RuntimeError) and any(w in text for w in ("gloo", "nccl", "connection", "timed out")))


@contextlib.contextmanager
def peer_errors(world_size: int) -> Iterator[None]:
    """Under several processes, a failed collective ends this process with one line, or silently with
    :data:`PEER_LOST` under ``--devices`` (the launcher names the cause), never with a traceback. The group is
    not torn down (a peer is gone): the process exits at once, after the run directory has its status."""
    try:
        yield
    except (RuntimeError, OSError) as exc:
        if world_size <= 1 or not lost_peer(exc):
            raise
        if not os.environ.get(LAUNCHED):
            rank = os.environ.get("RANK", "?")
            why = "timed out" if "Timed out" in str(exc) else "lost its connection"
            err_console.print(f"Error: training process rank {rank} {why} waiting for the other processes (one of "
                              "them exited, froze or is stuck; see its message); continue with: snnkit train "
                              f"--devices {world_size} --resume RUN_DIR", markup=False, highlight=False,
                              soft_wrap=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(PEER_LOST)


def stop_on_sigterm() -> None:
    """SIGTERM and SIGHUP act as Ctrl-C on rank 0 of several processes: the run writes ``status.json``
    (interrupted) and exits, instead of dying with ``running`` in it. The other ranks write nothing: they exit."""
    from snnkit_core.engine.distributed import env_world

    main = env_world().main

    def interrupt(signum, _frame):
        if not main:
            os._exit(128 + signum)
        signal.signal(signum, signal.SIG_IGN)  # once: a second one must not cut the status write short
        raise KeyboardInterrupt

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, interrupt)


@frozen
class Devices:
    """``--devices`` and the flags that go with it, passed from the command to the launcher."""

    n: int | None = None
    force: bool = False
    change: bool = False

    @property
    def many(self) -> bool:
        return bool(self.n and self.n > 1)


def prepare_process(threads: int | None, rank_timeout: float | None, force_threads: bool = False) -> None:
    """What ``snnkit train`` sets before anything else: threads, freed-memory reuse, ``--rank-timeout`` (for this
    process and the ones it starts), and SIGTERM / SIGHUP as Ctrl-C in a process of several."""
    from snnkit_core.engine.distributed import env_world

    from .host import keep_freed_memory, set_threads

    set_threads(threads, force_threads)
    keep_freed_memory()
    if rank_timeout is not None:
        os.environ[TIMEOUT_ENV] = repr(float(rank_timeout))
    if env_world().active:
        stop_on_sigterm()


def resume_devices(run, devices: int | None, change: bool) -> int | None:
    """How many processes resume ``run``: as many as it was trained with (``world_size`` in its manifest.json)
    unless ``--devices`` (or torchrun) gives another number, which is refused without ``change``: the global
    batch, and so the results, would change. With ``change``, the manifest records the new number."""
    from snnkit_core.engine.distributed import env_world
    from snnkit_core.engine.rundir import RunDir

    manifest = run.read_json(RunDir.MANIFEST)
    saved = manifest.get("world_size") if isinstance(manifest, dict) else None
    if isinstance(saved, bool) or not isinstance(saved, int) or saved < 1:
        return devices  # a run from before manifests recorded it: as asked
    world = env_world()
    now = world.size if world.active else (devices or saved)
    if now != saved and not change:
        raise ConfigError(f"{run.path} was trained with {saved} process(es) (world_size in its manifest.json); "
                          f"resuming with {now} changes the global batch and so the results. Resume with --devices "
                          f"{saved} (or leave --devices out), or add --change-devices to continue with {now}")
    if now != saved and world.main and (world.active or now == 1):  # the process that will write the run
        run.write_json(RunDir.MANIFEST, {**manifest, "world_size": now}, fault="manifest")
    if not world.active and devices is None and saved > 1:
        console.print(f"resuming with --devices {saved}, the number of processes {run.path} was trained with",
                      markup=False, highlight=False, soft_wrap=True)
    return None if world.active else now


def interrupted_hint(run_dir: Path, epochs: int, last: int | None) -> None:
    """After Ctrl-C: how to continue, with the run's ``--devices`` (rank 0 alone says it; under ``--devices`` the
    launcher does)."""
    from snnkit_core.engine.distributed import env_world

    world = env_world()
    if not world.main or os.environ.get(LAUNCHED):
        return
    done = f" after epoch {last} of {epochs}" if last is not None else ""
    devices = f"--devices {world.size} " if world.active else ""
    err_console.print(f"interrupted{done}; {run_dir} keeps every epoch that finished. Continue with: snnkit train "
                      f"{devices}--resume {run_dir}", markup=False, highlight=False, soft_wrap=True)
