"""Resource limits: sizes that would allocate until the machine runs out, refused with the figures before anything
is allocated; ``--threads`` against the cores. Under the sweep's 8 GiB address-space cap, a case that allocates
what it asks for is a blow-up."""

from __future__ import annotations

import numpy as np

from .kit import case


def _not_written(ctx, out="run"):
    if (ctx.dir / out).exists():
        ctx.lost.append(f"written: {out}/ was created for a refused run: "
                        f"{sorted(p.name for p in (ctx.dir / out).iterdir())}")


@case("resources", "absurd hidden size (--hidden 100000000,8,8)", "error", ["GiB", "--force-memory"])
def _(ctx):
    r = ctx.snnkit("train", "--dataset", "arrays", "--data-dir", ctx.npz(), "--hidden", "100000000,8,8",
                   "--epochs", 1, "--quiet", "--out", "run")
    _not_written(ctx)
    return r


@case("resources", "absurd step count (dataset.steps=100000000)", "error", ["GiB", "time steps", "--force-memory"])
def _(ctx):
    r = ctx.snnkit("train", "--set", "dataset.steps=100000000", "--epochs", 1, "--quiet", "--out", "run")
    _not_written(ctx)
    return r


@case("resources", "absurd filterbank (dataset.n_mels=10000000)", "error", ["GiB", "--force-memory"])
def _(ctx):
    r = ctx.snnkit("train", "--set", "dataset.n_mels=10000000", "--epochs", 1, "--quiet", "--out", "run")
    _not_written(ctx)
    return r


@case("resources", "a label of 10^9 in y_train (a 10^9-class readout)", "error", ["class indices", "1000000000"])
def _(ctx):
    y = np.arange(16) % 2
    y[0] = 10**9
    r = ctx.train("--out", "run", data=ctx.npz(y_train=y))
    _not_written(ctx)
    return r


@case("resources", "bench at an absurd step count (--steps 100000000)", "error", ["GiB", "--steps"])
def _(ctx):
    return ctx.snnkit("bench", "--device", "cpu", "--workload", "tiny", "--steps", "100000000")


@case("resources", "--seeds 1000000000", "error", ["--seeds", "at most"])
def _(ctx):
    r = ctx.train("--seeds", "1000000000", "--out", "run")
    _not_written(ctx)
    return r


@case("resources", "a sweep file whose grid makes 10^10 runs", "error", ["runs", "at most"])
def _(ctx):
    values = "[" + ", ".join(str(v) for v in range(1, 101)) + "]"
    grid = "\n".join(f"{k} = {values}" for k in ("epochs", "batch_size", "limit", "neuron.tau_m", "neuron.v_th"))
    (ctx.dir / "s.toml").write_text(f'seeds = 1\n[base]\ndataset = "arrays"\ndata_dir = "{ctx.npz()}"\n'
                                    f'hidden = [8, 8, 8]\n[grid]\n{grid}\n')
    r = ctx.snnkit("sweep", "s.toml", "--out", "sw")
    _not_written(ctx, "sw")
    return r


@case("resources", "--threads 100000 (huge)", "error", ["--threads", "cores"])
def _(ctx):
    r = ctx.train("--threads", "100000", "--out", "run")
    _not_written(ctx)
    return r
