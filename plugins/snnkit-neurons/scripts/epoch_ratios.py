"""Per-epoch training time of several configurations as ratios to the first, measured in ONE process with
interleaved rounds (configuration 1, 2, ..., then again), medians; for a noisy shared machine.

    OMP_NUM_THREADS=1 python plugins/snnkit-neurons/scripts/epoch_ratios.py --rounds 5 [--limit 512]

Configurations: lif + srsc + bptt (the default run), alif + srsc + bptt, nrr + sparse + reward-prop, each on the
shipped dataset with hidden 128-128-128; ``--before`` adds alif on the reference scan and nrr + reward-prop on
the rule's hooked step loop (the paths before their fast scans), for the speed-up; ``--more`` adds alif and nrr
with ``sparse`` under ``bptt``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import snnkit
import snnkit_rules.reward_prop as reward_prop

CONFIGS = {
    "lif+srsc+bptt": dict(neuron="lif", conn="srsc", rules=["bptt"]),
    "alif+srsc+bptt": dict(neuron="alif", conn="srsc", rules=["bptt"]),
    "nrr+sparse+reward-prop": dict(neuron="nrr", conn="sparse", rules=["reward-prop"]),
}
MORE = {
    "alif+sparse+bptt": dict(neuron="alif", conn="sparse", rules=["bptt"]),
    "nrr+sparse+bptt": dict(neuron="nrr", conn="sparse", rules=["bptt"]),
}
BEFORE = {
    "alif+srsc+bptt (reference)": dict(neuron="alif", conn="srsc", rules=["bptt"], backend="reference"),
    "nrr+sparse+reward-prop (hooked loop)": dict(neuron="nrr", conn="sparse", rules=["reward-prop"], no_rp=True),
}


def epoch_seconds(settings: dict, limit: int | None) -> float:
    """One training epoch of a freshly built model (the data split and batches as snnkit train makes them)."""
    settings = dict(settings)
    no_rp = settings.pop("no_rp", False)
    model = snnkit.build(hidden=(128, 128, 128), epochs=1, seed=0, limit=limit, recipes=False, **settings)
    train, _, _ = model.splits()
    opt = model.optimizer()
    real = reward_prop.find
    if no_rp:  # the rule finds no reward-prop implementation: it runs its hooked reference loop
        reward_prop.find = lambda *args, **kw: None
    try:
        t0 = time.perf_counter()
        for batch in model.batches(train, 0):
            model.step(batch, opt)
        return time.perf_counter() - t0
    finally:
        reward_prop.find = real


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--limit", type=int, default=None, help="examples of the dataset to use (default: all)")
    ap.add_argument("--before", action="store_true", help="also time the paths without the fast scans")
    ap.add_argument("--more", action="store_true", help="also time alif and nrr with sparse under bptt")
    args = ap.parse_args()
    torch.set_num_threads(1)
    configs = {**CONFIGS, **(MORE if args.more else {}), **(BEFORE if args.before else {})}
    times: dict[str, list[float]] = {name: [] for name in configs}
    for r in range(args.rounds):
        for name, settings in configs.items():
            times[name].append(epoch_seconds(settings, args.limit))
        print(f"round {r + 1}: " + ", ".join(f"{n} {t[-1]:.2f}s" for n, t in times.items()), flush=True)
    base = statistics.median(times["lif+srsc+bptt"])
    for name, t in times.items():
        med = statistics.median(t)
        print(f"{name:40s} median {med:7.2f} s/epoch   x{med / base:5.2f} of lif+srsc+bptt")


if __name__ == "__main__":
    main()
