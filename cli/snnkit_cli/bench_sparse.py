"""Event-driven sparsity, measured: the input spike rates of a trained run's layers (:func:`input_rates`) and the
event-driven feedforward product against the dense one at given rates and shapes (:func:`product_sweep`).
``snnkit bench --rates RUN_DIR`` and ``snnkit bench --products`` print them; docs/performance.md quotes them."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

#: (name, rows T·B, in K, out N) of the feedforward products of the issue's W2 (src-psmnist: 1-64-128-128-10,
#: T 784, B 32) and W3 (src-ssc: 140-256x3-35, T 100, B 32) whose input is spikes
PRODUCT_SHAPES = (("W2 64->128", 784 * 32, 64, 128), ("W2 128->128", 784 * 32, 128, 128),
                  ("W2 128->10", 784 * 32, 128, 10), ("W3 256->256", 100 * 32, 256, 256),
                  ("W3 256->35", 100 * 32, 256, 35))
SWEEP_RATES = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)


def _rate(t: torch.Tensor) -> tuple[float, bool]:
    """Nonzero fraction of ``t`` and whether every entry is 0 or 1."""
    return float(torch.count_nonzero(t)) / max(t.numel(), 1), bool(((t == 0) | (t == 1)).all())


def input_rates(run_dir: str | Path, split: str = "test", batches: int = 4, weights: str = "best",
                data_dir: str | None = None) -> dict[str, Any]:
    """Per spiking layer (and a linear readout) of a trained run: the nonzero fraction of the tensor its
    feedforward weights multiply (the encoded network input for layer 0, the previous layer's output after),
    averaged over the first ``batches`` batches of ``split`` (eval mode, the run's batch size, no gradients), and
    whether that input is binary."""
    from snnkit.run import open_for_eval
    from snnkit_core.contract.errors import SnnkitError
    from snnkit_core.engine.data import indexed_batches, to_batch
    from snnkit_core.engine.rundir import RunDir

    run = RunDir(run_dir)
    cfg = run.config().evolve(device="cpu", **({"data_dir": data_dir} if data_dir else {}))
    built, used, ck, have = open_for_eval(run.path, cfg, weights)
    if split not in have:
        raise SnnkitError(f"run {run} has splits {sorted(have)}, not {split!r}; choose one with --split")
    net = built.network.eval()
    names = net.layer_names() + ([] if net.readout == "spiking" else ["readout"])  # a linear readout's input too
    sums = [0.0] * len(names)
    binary = [True] * len(names)
    n = 0
    with torch.no_grad():
        for x, y, idx in indexed_batches(have[split], cfg.batch_size, False, torch.Generator().manual_seed(0)):
            out = net(to_batch(built, x, y, idx).x)
            inputs = [out.input, *(tr.y for tr in out.hidden)]
            for i, t in enumerate(inputs):
                r, b = _rate(t)
                sums[i] += r
                binary[i] &= b
            n += 1
            if n == batches:
                break
    layers = [{"layer": name, "input_rate": s / max(n, 1), "binary": b} for name, s, b in zip(names, sums, binary)]
    return {"run": str(run), "config": {"neuron": cfg.neuron, "conn": cfg.conn, "rules": list(cfg.rules),
                                        "dataset": cfg.dataset, "hidden": list(cfg.hidden)},
            "weights": used, "epoch": int(ck.get("epoch", -1)) + 1, "split": split, "batches": n, "layers": layers}


def _spikes(rows: int, k: int, rate: float, gen: torch.Generator) -> torch.Tensor:
    return (torch.rand(rows, k, generator=gen) < rate).float()


def product_sweep(shapes=None, rates=None, rounds: int = 5, repeats: int = 3) -> list[dict]:
    """Per shape and rate: median seconds of the dense and the event-driven forward product and weight-gradient
    product (float32, binary input with each entry 1 at ``rate``), and their ratio dense / event-driven ("x": above
    1 the event-driven way is faster). Both ways run in this process in ``rounds`` interleaved rounds (dense,
    event-driven, dense, ...), each the median of ``repeats`` calls; the medians over rounds are reported with the
    ratio's range over rounds. Default: :data:`PRODUCT_SHAPES` at :data:`SWEEP_RATES`."""
    from snnkit_connectivity.spike_product import SpikeProduct, failure

    shapes, rates = shapes or PRODUCT_SHAPES, rates or SWEEP_RATES
    if failure() is not None:
        raise RuntimeError(failure())
    gen = torch.Generator().manual_seed(0)
    out = []
    for name, m, k, n in shapes:
        w = torch.randn(n, k, generator=gen, requires_grad=True)
        g = torch.randn(m, n, generator=gen)
        for rate in rates:
            x = _spikes(m, k, rate, gen)
            ways = {"dense": (lambda x=x, w=w: x @ w.t(), lambda x=x, g=g: g.t() @ x),
                    "event": (lambda x=x, w=w: SpikeProduct.forward(_Ctx(), x, w), lambda x=x, g=g: _wgrad(x, g))}
            per = {f"{way}_{p}": [] for way in ways for p in ("fwd", "wgrad")}
            for _ in range(rounds):
                for way, (fwd, wgrad) in ways.items():
                    per[f"{way}_fwd"].append(_median(fwd, repeats))
                    per[f"{way}_wgrad"].append(_median(wgrad, repeats))
            both = [(df + dw) / (ef + ew) for df, dw, ef, ew in
                    zip(per["dense_fwd"], per["dense_wgrad"], per["event_fwd"], per["event_wgrad"])]
            rec = {"shape": name, "rows": m, "in": k, "out": n, "rate": rate}
            rec.update({key: statistics.median(v) for key, v in per.items()})
            rec.update(x_fwd=rec["dense_fwd"] / rec["event_fwd"], x_wgrad=rec["dense_wgrad"] / rec["event_wgrad"],
                       x_both=statistics.median(both), x_both_range=(min(both), max(both)))
            out.append(rec)
    return out


class _Ctx:
    """Stand-in for autograd's ctx when :class:`SpikeProduct`'s forward is timed on its own."""

    def save_for_backward(self, *tensors):
        pass


def _wgrad(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    from snnkit_connectivity.spike_product import run_kernel

    gwt = g.new_empty(x.shape[1], g.shape[1])
    run_kernel("spike_wgrad", x, g, gwt)
    return gwt


def _median(fn, repeats: int, grad: bool = False) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` (after one untimed), without autograd unless ``grad``."""
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with torch.set_grad_enabled(grad):
            fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def interleaved(workloads, device: torch.device, rounds: int = 5, repeats: int = 3, warmup: int = 1) -> list[dict]:
    """The ``torch``-path training step of each workload and its lower bound, timed in ``rounds`` rounds in this
    process: in each round every workload's step (median of ``repeats``) and then its bound, the workloads in turn.
    Per workload: the medians over rounds of the step and the bound, the median (and range) of the per-round
    fraction bound / step, and ``x_first``: the first workload's step / this one's, paired by round (above 1: this
    one is faster). A machine whose load changes moves both halves of each round's ratio alike."""
    from snnkit_cli.bench import copy_bandwidth, input_rates, lower_bound, training_step

    bw = copy_bandwidth(device)
    built = [training_step(w, device) for w in workloads]
    for step, _, _ in built:
        for _ in range(warmup):
            step()
    steps: list[list[float]] = [[] for _ in workloads]
    bounds: list[list[float]] = [[] for _ in workloads]
    for _ in range(rounds):
        for i, (w, (step, _, _)) in enumerate(zip(workloads, built)):
            steps[i].append(_median(step, repeats, grad=True))
            bounds[i].append(lower_bound(w, device, bw, repeats=3))
    out = []
    for i, (w, (_, net, x)) in enumerate(zip(workloads, built)):
        frac = [b / s for b, s in zip(bounds[i], steps[i])]
        first = [a / b for a, b in zip(steps[0], steps[i])]
        out.append({"workload": w.name, "threads": torch.get_num_threads(), "rounds": rounds,
                    "median_ms": 1e3 * statistics.median(steps[i]), "bound_ms": 1e3 * statistics.median(bounds[i]),
                    "fraction_of_bound": statistics.median(frac), "fraction_range": (min(frac), max(frac)),
                    "x_first": statistics.median(first), "x_first_range": (min(first), max(first)),
                    "input_rates": input_rates(net, x), "describe": net.describe()})
    return out
