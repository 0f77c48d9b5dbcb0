"""A/B of asrc's CPU paths in ONE process, alternating step by step, so load drift hits both alike
(docs/performance.md, "asrc: fused scan"). The same src-psmnist/asrc training step (T 784, B 32 by default) is
timed with the fused C scan (products through torch's BLAS, ``mixed_fwd``/``mixed_bwd``) and with
``SNNKIT_CPU_BLAS=0`` (the same node, C neuron steps and torch products called from Python per step, as
before); the bound and the method bound of ``snnkit_cli.bench`` are measured once in the same process.

    OMP_NUM_THREADS=1 python scripts/asrc_ab.py --threads 1 --steps 15
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch


def synthetic_dataset(w):
    """A stand-in Dataset with the workload's sizes (``Built`` holds one; the batches here are made directly)."""
    from snnkit_core import Dataset

    class Synthetic(Dataset):
        name = "asrc-ab-synthetic"
        num_classes = w.classes
        input_size = w.input_size

        def load(self, split):
            raise NotImplementedError("asrc_ab feeds its batches directly")

    return Synthetic()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=15, help="timed training steps per variant (alternating)")
    ap.add_argument("--T", type=int, default=784)
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from snnkit_cli import bench
    from snnkit_cli.host import keep_freed_memory
    from snnkit_core.contract.interfaces import Batch
    from snnkit_core.contract.plugins import get_registry
    from snnkit_core.engine.assembly import assemble
    from snnkit_core.engine.config import TrainConfig
    from snnkit_core.engine.training import Built, make_optimizer

    keep_freed_memory()
    w = bench.resize(next(x for x in bench.WORKLOADS["src-psmnist"] if x.conn == "asrc"), a.T, a.batch)
    reg = get_registry()
    rule = reg.get("rule", "bptt")()
    torch.manual_seed(0)
    x = torch.rand(w.steps, w.batch, w.input_size)
    batch = Batch(x, torch.randint(0, w.classes, (w.batch,)), torch.arange(w.batch))
    net = assemble(reg.get("neuron", w.neuron), reg.get("connectivity", w.conn)(**w.params["conn"]), [rule],
                   input_size=w.input_size, num_classes=w.classes, hidden=w.hidden, neuron_params={}, readout=None,
                   backend="torch", device=torch.device("cpu"), registry=reg, seed=0)
    cfg = TrainConfig(neuron=w.neuron, conn=w.conn, rules=w.rules, hidden=w.hidden, batch_size=w.batch)
    opt = make_optimizer(Built(cfg, net, [rule], synthetic_dataset(w), torch.device("cpu")))
    times: dict[str, list[float]] = {"fused": [], "per-step": []}
    for i in range(2 * (a.steps + 2)):
        label = "fused" if i % 2 == 0 else "per-step"
        os.environ["SNNKIT_CPU_BLAS"] = "1" if label == "fused" else "0"
        t0 = time.perf_counter()
        rule.train_step(net, batch, opt)
        if i >= 4:  # two warm-up steps each
            times[label].append(time.perf_counter() - t0)
    os.environ.pop("SNNKIT_CPU_BLAS")
    cpu = torch.device("cpu")
    bound = 1e3 * bench.lower_bound(w, cpu, bench.copy_bandwidth(cpu))
    extra = 1e3 * bench.span_mixing_time(w, cpu)
    pairs = [p / f for f, p in zip(times["fused"], times["per-step"])]
    out = {"threads": a.threads, "T": w.steps, "batch": w.batch, "load": os.getloadavg()[0], "bound_ms": bound,
           "method_bound_ms": bound + extra}
    for k, v in times.items():
        ms = 1e3 * statistics.median(v)
        out[k] = {"median_ms": ms, "fraction_of_bound": bound / ms, "fraction_of_method_bound": (bound + extra) / ms}
    out["per_step_over_fused"] = {"median": statistics.median(pairs), "min": min(pairs), "max": max(pairs)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
