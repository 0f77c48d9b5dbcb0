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
:func:`noise_curve` gives the numerator (and ``ratio = Acc(P) / Acc(0)``, the share of the clean accuracy kept);
:func:`robust_ratio` the ratio as defined: the denominator is a run trained with the ``input-noise`` rule at P,
evaluated with its own noise, drawn from the same seed as the numerator's.
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
    with torch.random.fork_rng(devices=[]), hidden_noise(built, p if kind == "multiplicative" else 0.0):
        torch.manual_seed(seed)  # the multiplicative draws come from torch's generator, here forked and seeded
        return _accuracy(built, data, p if kind == "uniform" else 0.0, batch_size, seed, lo, hi)


@contextlib.contextmanager
def hidden_noise(built, p: float):
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
    built, used, ck, data, bs = _open_split(run, split, checkpoint, data_dir, batch_size, device)
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


def _open_split(run: RunDir, split: str, checkpoint: str, data_dir: str | None, batch_size: int | None,
                device: str | None):
    """``(built, weights used, checkpoint, data of split, batch size)`` of a run, rebuilt for evaluation."""
    cfg = run.config()
    changes: dict[str, Any] = {"device": device or cfg.device}
    if data_dir:
        changes["data_dir"] = data_dir
    cfg = cfg.evolve(**changes)
    built, used, ck, have = open_for_eval(run.path, cfg, checkpoint)
    if split not in have:
        raise SnnkitError(f"run {run} has splits {sorted(have)}, not {split!r}")
    return built, used, ck, have[split], batch_size or cfg.batch_size


def trained_noise(cfg) -> float:
    """The ``input-noise`` proportion p a run was trained with (0.0 for a run trained without the rule)."""
    if "input-noise" not in cfg.rules:
        return 0.0
    from snnkit_core.contract.plugins import get_registry

    default = {q.name: q.default for q in get_registry().get("rule", "input-noise").params}["p"]
    return float(cfg.params.get("rule.input-noise", {}).get("p", default))


def _network_spec(cfg) -> tuple:
    """What two runs must share for their accuracies to form a robust ratio (everything but the noise rule)."""
    params = {k: v for k, v in cfg.params.items() if k not in ("rule.input-noise", "train")}
    return (cfg.dataset, cfg.neuron, cfg.conn, tuple(cfg.hidden), tuple(r for r in cfg.rules if r != "input-noise"),
            repr(sorted(params.items())))


def pair_noise_runs(clean: RunDir, candidates: Iterable[str | Path]) -> dict[float, Path]:
    """``{p: run}``: among ``candidates``, the runs trained with the ``input-noise`` rule at p > 0 with the seed of
    ``clean`` (a run trained without noise); refused when one differs from it in more than the noise."""
    ccfg = clean.config()
    if trained_noise(ccfg) > 0:
        raise ConfigError(f"run {clean} was trained with input noise (p = {trained_noise(ccfg)}); the robust ratio's "
                          "numerator needs a run trained without it (rule.input-noise.p = 0 or no input-noise rule)")
    found: dict[float, Path] = {}
    for path in candidates:
        cfg = RunDir(path).config()
        p = trained_noise(cfg)
        if p == 0 or cfg.seed != ccfg.seed:
            continue
        if _network_spec(cfg) != _network_spec(ccfg):
            raise ConfigError(f"{path} differs from {clean} in more than its input noise (network, dataset or "
                              "rule); the robust ratio compares the same network trained with and without noise")
        if p in found:
            raise ConfigError(f"two runs trained with noise p = {p} and seed {ccfg.seed}: {found[p]} and {path}; "
                              "point --robust-ratio at a folder with one run per p and seed")
        found[p] = Path(path)
    return found


def robust_ratio(clean_run: str | Path, noisy_runs: Iterable[str | Path], proportions: Iterable[float] | None = None,
                 *, seed: int = 0, split: str = "test", checkpoint: str = "best", data_dir: str | None = None,
                 batch_size: int | None = None, device: str | None = None, write: bool = True) -> dict[str, Any]:
    """The paper's RobustRatio(P) = Acc(``clean_run`` tested with noise P) / Acc(run trained with noise P, tested
    with it), the authors' multiplicative noise, for each P of ``proportions`` (default: every p of the paired
    noise-trained runs, see :func:`pair_noise_runs`). Both accuracies draw the noise from the seed
    ``noise_curve`` gives the same P (``seed * 1000`` + the index of P after 0), so the numerator is
    ``noise_curve``'s accuracy. With ``write``, the record goes to ``CLEAN_RUN/noise/robust-ratio-<split>.json``.
    """
    run = RunDir(clean_run)
    paired = pair_noise_runs(run, noisy_runs)
    ps = sorted(paired) if proportions is None else sorted({float(p) for p in proportions} - {0.0})
    missing = [p for p in ps if p not in paired]
    if not ps or missing:
        raise SnnkitError(f"no run trained with input noise p = {', '.join(map(str, missing)) or '> 0'} and seed "
                          f"{run.config().seed} beside {run} (found p = {sorted(paired)}); train one with --rule "
                          "input-noise --set rule.input-noise.p=P, or leave that P out of --noise")
    built, used, ck, data, bs = _open_split(run, split, checkpoint, data_dir, batch_size, device)
    clean = noisy_accuracy(built, data, 0.0, bs, seed * 1000, 0.0, 0.0, "multiplicative")["accuracy"]
    rows = [{"p": 0.0, "clean_trained": clean, "noise_trained": clean, "robust_ratio": 1.0, "noise_run": str(run)}]
    for i, p in enumerate(ps, 1):
        num = noisy_accuracy(built, data, p, bs, seed * 1000 + i, 0.0, 0.0, "multiplicative")["accuracy"]
        nbuilt, _, _, ndata, nbs = _open_split(RunDir(paired[p]), split, checkpoint, data_dir, batch_size, device)
        den = noisy_accuracy(nbuilt, ndata, 0.0, nbs, seed * 1000 + i, 0.0, 0.0, "multiplicative")["accuracy"]
        rows.append({"p": p, "clean_trained": num, "noise_trained": den, "robust_ratio": num / den if den else None,
                     "noise_run": str(paired[p])})
    rec = {"run": str(run), "split": split, "checkpoint": used, "seed": seed, "kind": "multiplicative",
           "ratio": "Acc(trained without noise, tested with noise P) / Acc(trained with noise P, tested with it)",
           "rows": rows}
    if write:
        run.write_json(f"noise/robust-ratio-{split}.json", rec)
    return rec


def mean_ratios(records: list[dict]) -> list[dict]:
    """Per P over several :func:`robust_ratio` records (e.g. one per seed): mean and sd (n - 1) of each term."""
    import statistics

    by_p: dict[float, list[dict]] = {}
    for rec in records:
        for r in rec["rows"]:
            by_p.setdefault(r["p"], []).append(r)
    out = []
    for p, rows in sorted(by_p.items()):
        row: dict[str, Any] = {"p": p, "n": len(rows)}
        for key in ("clean_trained", "noise_trained", "robust_ratio"):
            vals = [r[key] for r in rows if r[key] is not None]
            row[key] = statistics.fmean(vals) if vals else None
            row[f"{key}_sd"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        out.append(row)
    return out


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
