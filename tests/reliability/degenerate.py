"""Degenerate input accepted silently before: NaN samples (an audio file, a plugin dataset), zero time steps (a
file's, or dataset.steps=0), a zero-size filterbank, non-finite neuron parameters, a one-class dataset."""

from __future__ import annotations

import numpy as np

from .kit import case


def _not_written(ctx, out="run"):
    if (ctx.dir / out).exists():
        ctx.lost.append(f"written: {out}/ was created for a refused run: "
                        f"{sorted(p.name for p in (ctx.dir / out).iterdir())}")


@case("degenerate input", "a one-class training set (would report 100 %)", "error", ["two classes"])
def _(ctx):
    r = ctx.train("--out", "run", data=ctx.npz(y_train=np.zeros(16, np.int64), y_test=np.zeros(8, np.int64)))
    _not_written(ctx)
    return r


@case("degenerate input", "an arrays file with zero time steps", "error", ["0 time steps"])
def _(ctx):
    x = np.zeros((16, 0, 4), np.float32)
    r = ctx.train("--out", "run", data=ctx.npz(x_train=x, x_test=x[:8]))
    _not_written(ctx)
    return r


@case("degenerate input", "dataset.steps=0", "error", ["dataset.steps"])
def _(ctx):
    r = ctx.snnkit("train", "--set", "dataset.steps=0", "--epochs", 1, "--quiet", "--out", "run")
    _not_written(ctx)
    return r


@case("degenerate input", "a zero-size filterbank (dataset.n_mels=0)", "error", ["0 input channels"])
def _(ctx):
    r = ctx.snnkit("train", "--set", "dataset.n_mels=0", "--epochs", 1, "--quiet", "--out", "run")
    _not_written(ctx)
    return r


@case("degenerate input", "a non-finite neuron parameter (neuron.tau_m=nan)", "error", ["lif.tau_m", "finite"])
def _(ctx):
    r = ctx.train("--set", "neuron.tau_m=nan", "--out", "run")
    _not_written(ctx)
    return r


@case("degenerate input", "a NaN sample in an audio file (fsdd)", "error", ["NaN", "0_x_6.wav"])
def _(ctx):
    import soundfile as sf

    rec = ctx.dir / "data" / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for d in range(2):
        for t in range(8):
            wave = (rng.standard_normal(2000) * 0.1).astype(np.float32)
            if (d, t) == (0, 6):
                wave[100] = np.nan
            sf.write(rec / f"{d}_x_{t}.wav", wave, 8000, subtype="FLOAT")
    r = ctx.snnkit("train", "--dataset", "fsdd", "--data-dir", ctx.dir / "data", "--hidden", "8,8,8", "--epochs", 1,
                   "--quiet", "--out", "run")
    _not_written(ctx)
    return r


@case("degenerate input", "a plugin dataset that yields NaN samples", "error", ["NaN", "nan-data"])
def _(ctx):
    ctx.plugin("nan-data", """
        import torch
        from snnkit_core import ArrayData, Dataset, hookimpl

        class NanData(Dataset):
            name = "nan-data"
            num_classes = 2
            input_size = 4

            def load(self, split):
                y = torch.arange(16) % 2
                x = torch.rand(16, 10, 4)
                x[5, 3, 1] = float("nan")
                return ArrayData(x, y)

        @hookimpl
        def register_datasets(register):
            register(NanData)
    """)
    r = ctx.snnkit("train", "--dataset", "nan-data", "--hidden", "8,8,8", "--epochs", 1, "--quiet", "--out", "run")
    _not_written(ctx)
    return r
