"""Noise robustness (the NRR-SNN paper's Fig. 6-7): accuracy of a trained run under noise of proportion P.

Noise, two kinds. ``multiplicative`` (the default; the NRR-SNN authors' code): every hidden layer's input x
becomes ``x * (1 + P * sgn(u - 0.5))`` per element and time step, u uniform in [0, 1) (the ``input-noise`` rule's
perturbation, attached to the trained network for the evaluation). ``uniform``: each entry of the network input
(after the dataset's own encoding) is replaced, with probability P, by a value uniform over [lo, hi], the smallest
and largest input value of the evaluated split. Draws are seeded with ``seed`` and the index of P.

Accuracy. Per sample: argmax of the rule's class scores (Σ_t of the readout). Per frame (the authors' code's
measure): argmax of the readout ``out[t]`` at each step against the sample's label, averaged over all steps
and samples.

Robust ratio. The paper defines RobustRatio = Acc(noiseless train, noisy test) / Acc(noisy train, noisy test).
This module computes the numerator (and ``ratio = Acc(P) / Acc(0)``, the share of the clean accuracy kept); the
denominator is the test accuracy of a run trained with the ``input-noise`` rule at the same P.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from snnkit.run import open_for_eval
from snnkit_core.contract.errors import ConfigError, SnnkitError
from snnkit_core.contract.interfaces import ArrayData
from snnkit_core.engine.data import indexed_batches, to_batch
from snnkit_core.engine.rundir import RunDir

KINDS = ("multiplicative", "uniform")


def add_noise(x: torch.Tensor, p: float, lo: float, hi: float, generator: torch.Generator) -> torch.Tensor:
    """``x`` with each entry replaced, with probability ``p``, by U(lo, hi) (draws on the CPU from ``generator``)."""
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"a noise proportion must be in [0, 1]; got {p}")
    if p == 0:
        return x
    u = torch.rand(x.shape, generator=generator)
    v = lo + (hi - lo) * torch.rand(x.shape, generator=generator)
    return torch.where((u < p).to(x.device), v.to(x.device, x.dtype), x)


def parse_proportions(text: str) -> list[float]:
    """"0.3" or "0,0.1,0.2" -> floats in [0, 1] (refused with a message otherwise)."""
    try:
        ps = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--noise takes proportions in [0, 1], e.g. 0.3 or 0,0.1,0.2; got {text!r}") from None
    bad = [p for p in ps if not 0.0 <= p <= 1.0]
    if not ps or bad:
        raise ConfigError(f"--noise takes proportions in [0, 1], e.g. 0.3 or 0,0.1,0.2; got {text!r}")
    return ps


def _range(data: ArrayData, batch_size: int) -> tuple[float, float]:
    lo, hi = float("inf"), float("-inf")
    gen = torch.Generator().manual_seed(0)
    for x, _, _ in indexed_batches(data, batch_size, False, gen):
        lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
    return lo, hi


def noisy_accuracy(built, data: ArrayData, p: float, batch_size: int, seed: int, lo: float, hi: float,
                   kind: str = "uniform") -> dict[str, float]:
    """Per-sample and per-frame accuracy of ``built`` on ``data`` with noise of proportion ``p`` (``kind``)."""
    if kind not in KINDS:
        raise ConfigError(f"noise kind must be one of {', '.join(KINDS)}; got {kind!r}")
    with torch.random.fork_rng(devices=[]), _hidden_noise(built, p if kind == "multiplicative" else 0.0):
        torch.manual_seed(seed)  # the multiplicative draws come from torch's generator, here forked and seeded
        return _accuracy(built, data, p if kind == "uniform" else 0.0, batch_size, seed, lo, hi)


@contextlib.contextmanager
def _hidden_noise(built, p: float):
    """The ``input-noise`` rule's perturbation on every hidden layer's input for the block (none when p is 0)."""
    if p == 0:
        yield
        return
    from snnkit_core.contract.plugins import get_registry

    rule = get_registry().get("rule", "input-noise")(p=p)
    rule.setup(built.network)
    try:
        yield
    finally:
        for handle in rule.handles:
            handle.remove()


def _accuracy(built, data: ArrayData, p: float, batch_size: int, seed: int, lo: float, hi: float) -> dict:
    net, rule = built.network, built.gradient_rule
    gen = torch.Generator().manual_seed(seed)
    enc = torch.Generator().manual_seed(0)  # the dataset's own encoding draws: as in evaluation
    correct, frames, n, steps = 0, 0, 0, 0
    net.eval()
    try:
        with torch.no_grad():
            for x, y, idx in indexed_batches(data, batch_size, False, enc, built.device):
                batch = to_batch(built, add_noise(x, p, lo, hi, gen), y, idx)
                out = net(batch.x)
                correct += int((rule.logits(out).argmax(1) == batch.y).sum())
                frames += int((out.out.argmax(-1) == batch.y.unsqueeze(0)).sum())
                n += len(y)
                steps += out.out.shape[0] * len(y)
    finally:
        net.train()
    return {"accuracy": correct / max(n, 1), "frame_accuracy": frames / max(steps, 1), "n": n}


def noise_curve(run_dir: str | Path, proportions: Iterable[float], *, seed: int = 0, split: str = "test",
                checkpoint: str = "best", data_dir: str | None = None, batch_size: int | None = None,
                device: str | None = None, write: bool = True, kind: str = "multiplicative") -> dict[str, Any]:
    """Accuracy (per sample and per frame) and ratio Acc(P)/Acc(0) of a run for each noise proportion P.

    P = 0 is always evaluated (the ratio's reference). With ``write``, the record goes to
    ``RUN_DIR/noise/<split>.json`` (not under ``eval/``, whose files are per-split eval records).
    """
    run = RunDir(run_dir)
    ps = sorted(set([0.0, *[float(p) for p in proportions]]))
    cfg = run.config()
    changes: dict[str, Any] = {"device": device or cfg.device}
    if data_dir:
        changes["data_dir"] = data_dir
    cfg = cfg.evolve(**changes)
    built, used, ck, have = open_for_eval(run.path, cfg, checkpoint)
    if split not in have:
        raise SnnkitError(f"run {run} has splits {sorted(have)}, not {split!r}")
    data, bs = have[split], batch_size or cfg.batch_size
    lo, hi = _range(data, bs)
    rows = []
    for i, p in enumerate(ps):
        rows.append({"p": p, **noisy_accuracy(built, data, p, bs, seed * 1000 + i, lo, hi, kind)})
    clean = rows[0]
    for r in rows:
        r["ratio"] = r["accuracy"] / clean["accuracy"] if clean["accuracy"] > 0 else None
        r["frame_ratio"] = r["frame_accuracy"] / clean["frame_accuracy"] if clean["frame_accuracy"] > 0 else None
    rec = {"run": str(run), "split": split, "checkpoint": used, "epoch": int(ck.get("epoch", -1)) + 1, "seed": seed,
           "kind": kind, "noise_range": [lo, hi], "ratio": "Acc(P) / Acc(0) (see snnkit_cli.robustness)", "rows": rows}
    if write:
        run.write_json(f"noise/{split}.json", rec)
    return rec


def plot_noise(records: dict[str, list[dict]], path: Path, title: str = "") -> Path:
    """Accuracy and ratio against P, one line per label: ``records[label] = rows`` (or mean rows with ``sd``)."""
    from snnkit_cli.plots import figure, save

    fig = figure(figsize=(9, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    for label, rows in records.items():
        ps = [r["p"] for r in rows]
        for ax, key in ((ax1, "accuracy"), (ax2, "ratio")):
            ys = [100 * r[key] if key == "accuracy" else r[key] for r in rows]
            sd = [r.get(f"{key}_sd") for r in rows]
            if all(s is not None for s in sd):
                sd = [100 * s if key == "accuracy" else s for s in sd]
                ax.errorbar(ps, ys, yerr=sd, marker="o", capsize=3, label=label)
            else:
                ax.plot(ps, ys, marker="o", label=label)
    ax1.set(xlabel="noise proportion P", ylabel="test accuracy (%)", title=title or "accuracy under noise")
    ax2.set(xlabel="noise proportion P", ylabel="Acc(P) / Acc(0)", title="robust ratio (clean-trained)")
    ax1.legend()
    return save(fig, path)
