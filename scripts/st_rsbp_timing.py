"""Seconds per training sample / epoch and peak memory of ``st-rsbp`` against the batch size.

Each batch size runs in a fresh process (so its peak resident memory is its own): the Fashion-MNIST network of
the paper (784-400-R400-10, dense recurrence in layer 1, T = 400, Poisson input at 0.2 spikes/step for a
white pixel), ``--steps`` training steps on real training images after one warm-up step, one CPU thread.

    python scripts/st_rsbp_timing.py --batch-sizes 1,16,64 --out docs/results/st-rsbp/timing.json

Reported per batch size: seconds per sample (median step time / B), the implied seconds per 60,000-sample
epoch of training (no evaluation), the peak RSS of the process (ru_maxrss) and its growth over the state
after the network and the data were built (what the training steps themselves need).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def one(batch: int, steps: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from snnkit_connectivity.reservoir import Reservoir
    from snnkit_core.contract.interfaces import Batch
    from snnkit_core.engine.assembly import assemble
    from snnkit_datasets.mnist import FMNIST
    from snnkit_neurons.lif_rsbp import LIFRSBP
    from snnkit_rules.st_rsbp import STRSBP

    data = FMNIST(encoding="poisson", max_rate=0.2, steps=400).load("train")
    rule = STRSBP()
    net = assemble(LIFRSBP, Reservoir(layers="1", topology="dense"), [rule], input_size=784, num_classes=10,
                   hidden=[400, 400], seed=0, neuron_params={"v_th": 15.0})
    opt = rule.make_optimizer([{"params": [p for p in net.parameters() if p.requires_grad]}], 1e-3, 0.0)
    g = torch.Generator().manual_seed(0)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for i in range(steps + 1):
        idx = torch.arange(i * batch, (i + 1) * batch)
        x = data.batch(idx, generator=g).transpose(0, 1).contiguous()
        t0 = time.perf_counter()
        rule.train_step(net, Batch(x, data.y[idx], idx), opt)
        if i:  # the first step warms up allocators
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    per_sample = statistics.median(times) / batch
    return {"batch_size": batch, "steps_timed": steps, "s_per_step_median": round(statistics.median(times), 4),
            "s_per_sample": round(per_sample, 5), "s_per_60k_epoch": round(per_sample * 60000, 1),
            "peak_rss_mib": round(peak / 1024, 1), "rss_growth_mib": round((peak - base) / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", default="1,16,64")
    ap.add_argument("--steps", type=int, default=0, help="timed steps per batch size (0: 12 for B=1, 4 otherwise)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.steps or (12 if args.one == 1 else 4), args.threads)))
        return
    rows = []
    for b in [int(v) for v in args.batch_sizes.split(",")]:
        cmd = [sys.executable, __file__, "--one", str(b), "--steps", str(args.steps), "--threads", str(args.threads)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    out = {"network": "784-400-R400-10 (reservoir layers=1, dense), lif-rsbp v_th=15, T=400, fmnist poisson 0.2",
           "threads": args.threads, "machine": platform.processor() or platform.machine(),
           "note": "shared 2-core CPU, other jobs running: times are upper bounds", "rows": rows}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
