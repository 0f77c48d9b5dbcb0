"""Class 7 of the reliability issue: failures that printed a traceback instead of one line naming the cause and
the fix. I/O failures are injected with ``SNNKIT_FAULT_AT=FILE:N:ERRNO`` (the N-th write of the file named FILE
raises that OSError before anything is written; ``lock`` is the run's lock). Plugin contract violations run a small
plugin distribution on ``PYTHONPATH`` (class "contract")."""

from __future__ import annotations

import subprocess
import sys

from .kit import BOOT, SMALL, case, metrics


def _resumes(ctx, run="run", epochs=2):
    """--resume after the fault: the run must end with every epoch once, as if nothing had happened."""
    code, out = ctx.snnkit("train", "--resume", run)
    got = [r["epoch"] for r in metrics(ctx.dir / run)] if (ctx.dir / run / "metrics.jsonl").exists() else []
    if code != 0 or got != list(range(1, epochs + 1)):
        ctx.lost.append(f"--resume after the fault did not finish the run: exit {code}, epochs {got}")


@case("io errors", "disk full (ENOSPC) at epoch 1's metrics.csv, then --resume", "error",
      ["No space left on device (ENOSPC)", "snnkit train --resume"])
def _(ctx):
    r = ctx.train("--out", "run", env={"SNNKIT_FAULT_AT": "metrics.csv:2:ENOSPC"})
    _resumes(ctx)
    return r


@case("io errors", "I/O error (EIO) writing the first checkpoint", "error", ["(EIO)", "checkpoint.pt"])
def _(ctx):
    r = ctx.train("--out", "run", env={"SNNKIT_FAULT_AT": "checkpoint.pt:1:EIO"})
    if list((ctx.dir / "run").glob("*.tmp*")):
        ctx.lost.append("a temporary file was left in run/")
    return r


@case("io errors", "the run's lock refused (ENOLCK, a network mount)", "error", ["(ENOLCK)", "local disk"])
def _(ctx):
    return ctx.train("--out", "run", env={"SNNKIT_FAULT_AT": "lock:1:ENOLCK"})


@case("io errors", "stdout a closed pipe (snnkit list-plugins | head -1)", "ok")
def _(ctx):
    res = subprocess.run(f"'{sys.executable}' -c \"{BOOT}\" list-plugins --json | head -c 1 >/dev/null",
                         shell=True, cwd=ctx.dir, env=ctx.env(), capture_output=True, text=True, timeout=120)
    ctx.outputs.append(res.stderr)
    return res.stderr.strip() == ""


@case("io errors", "stdout closed (snnkit runs >&-)", "ok")
def _(ctx):
    ctx.train("--out", "runs/a", epochs=1)
    res = subprocess.run(f"'{sys.executable}' -c \"{BOOT}\" runs >&-", shell=True, cwd=ctx.dir, env=ctx.env(),
                         capture_output=True, text=True, timeout=120)
    ctx.outputs.append(res.stderr)
    return "Traceback" not in res.stderr and "Exception ignored" not in res.stderr


@case("io errors", "read-only run folder: eval, plot, export", "ok",
      ["not recorded", "give --out DIR", "choose another --out FILE"])
def _(ctx):
    ctx.train("--out", "run", epochs=1)
    ro = {"SNNKIT_FAULT_AT": "test.json:1:EROFS"}
    results = [ctx.snnkit("eval", "run", "--split", "test", env=ro),
               ctx.snnkit("plot", "run", "--metrics-only", env={"SNNKIT_FAULT_AT": "curves.png:1:EROFS"}),
               ctx.snnkit("plot", "run", "--metrics-only", "--out", "elsewhere"),
               ctx.snnkit("export", "run", env={"SNNKIT_FAULT_AT": "network.nir:1:EROFS"})]
    codes = [c for c, _ in results]
    ok = codes[0] == 0 and codes[1] != 0 and codes[2] == 0 and (ctx.dir / "elsewhere" / "curves.png").exists()
    return (0 if ok and codes[3] != 0 else 1), "\n".join(o for _, o in results)


@case("io errors", "unwritable export target", "error", ["cannot be written", "--out"])
def _(ctx):
    ctx.train("--out", "run", epochs=1)
    return ctx.snnkit("export", "run", "--out", "/proc/snnkit-sweep.nir")


@case("io errors", "unwritable $SNNKIT_CACHE: list-plugins and a cached dataset", "ok", ["final test accuracy"])
def _(ctx):
    env = {"SNNKIT_CACHE": "/proc/snnkit-sweep-cache"}
    code, out = ctx.snnkit("list-plugins", env=env)
    if code != 0:
        return code, out
    return ctx.snnkit("train", "--dataset", "espeak-digits", "--limit", 16, "--epochs", 1, *SMALL, "--out", "run",
                      env=env)


@case("io errors", "a folder named like a data file (--data-dir d.npz/)", "error", ["is a folder"])
def _(ctx):
    (ctx.dir / "d.npz").mkdir()
    return ctx.snnkit("train", "--dataset", "arrays", "--data-dir", ctx.dir / "d.npz", *SMALL, "--out", "run")


@case("io errors", "a latin-1 --config file and a latin-1 config.toml", "error", ["UTF-8", "c.toml"])
def _(ctx):
    data = ctx.npz()
    (ctx.dir / "c.toml").write_bytes(f'[train]\n# r\xe9glages\ndataset = "arrays"\ndata_dir = "{data}"\n'
                                     .encode("latin-1"))
    code, out = ctx.snnkit("train", "--config", "c.toml", "--out", "run", "--quiet")
    ctx.train("--out", "ok", epochs=1, data=data)
    cfg = ctx.dir / "ok" / "config.toml"
    cfg.write_bytes(cfg.read_bytes().replace(b"[train]", "[train]\n# r\xe9glages".encode("latin-1")))
    code2, out2 = ctx.snnkit("eval", "ok")
    return (code if code2 != 0 else 0), out + out2


@case("io errors", "out-of-range integers: --seed 2**63, --epochs 10**20", "error", ["seed must be", "epochs must be"])
def _(ctx):
    results = [ctx.train("--seed", 2**63, "--out", "a"), ctx.train("--out", "b", epochs=10**20)]
    return (0 if any(c == 0 for c, _ in results) else 1), "\n".join(o for _, o in results)


# ----------------------------------------------------------------------------------------- contract

_BROKEN = """
    import torch
    from snnkit_core import hookimpl
    from snnkit_neurons.lif import LIF
    from snnkit_rules.bptt import BPTT

    class Raises(LIF):
        name = "raising-neuron"

        def __init__(self, *a, **k):
            raise ValueError("cannot build me")

    class WrongShape(LIF):
        name = "wrong-shape"

        def step(self, *a, **k):
            a_, s, state = super().step(*a, **k)
            return a_[..., :1], s[..., :1], state  # one neuron's outputs where the layer has N

    class WrongReturn(BPTT):
        name = "wrong-return"

        def train_step(self, network, batch, opt):
            super().train_step(network, batch, opt)
            return None

    @hookimpl
    def register_neurons(register):
        register(Raises)
        register(WrongShape)

    @hookimpl
    def register_rules(register):
        register(WrongReturn)
"""

for label, args in {"a neuron constructor that raises": ["--neuron", "raising-neuron"],
                    "a wrong shape from step": ["--neuron", "wrong-shape"],
                    "a train_step returning the wrong thing": ["--rule", "wrong-return"]}.items():

    @case("contract", f"plugin contract: {label}", "error", ["plugin 'broken-contract'", "not snnkit"])
    def _(ctx, args=args):
        ctx.plugin("broken-contract", _BROKEN)
        return ctx.train(*args, "--conn", "ff", "--out", "run", epochs=1)
