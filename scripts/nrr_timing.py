"""Time of one training step of reward-prop against bptt on the same network (nrr + sparse, 1 thread, CPU).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/nrr_timing.py --out docs/results/nrr/timing.jsonl

Both rules train the identical network (same seed, sizes, neuron, mask, linear vote readout) on the same
random batches shaped like FSDD's (T = 100 steps, 40 channels, batch 64); bptt uses cross-entropy, reward-prop
its MSE with hooks. Reported: median seconds per step (forward + backward + Adam) and per forward alone, and the
per-epoch estimate for FSDD's 1,500 training samples. Rounds alternate between the rules so machine load hits
both alike; the load average is recorded.

Round 2's deep-image network (the nrr-deep-image-fsdd preset: the 39 x 39 fbank-l1 image, 2-D conv
kernel 5 stride 2 -> 1,600 -> pool -> sparse recurrent 128 -> 128, batch 32, T = 39):

    OMP_NUM_THREADS=1 .venv/bin/python scripts/nrr_timing.py --hidden deep-image
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from snnkit_core.contract.interfaces import Batch
from snnkit_core.contract.plugins import get_registry
from snnkit_core.engine.assembly import assemble


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", default="128", help="hidden sizes; 'deep' = 160,128,128 with the conv stage "
                    "(deep NRR-SNN); 'deep-image' = round 2's 1600,128,128 static-image model "
                    "(sets batch 32, 39 steps, 39 channels)")
    ap.add_argument("--batch", type=int, default=None, help="default 64 (32 for deep-image)")
    ap.add_argument("--steps", type=int, default=None, help="default 100 (39 for deep-image)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--per-round", type=int, default=4)
    ap.add_argument("--out", default="docs/results/nrr/timing.jsonl")
    return ap.parse_args()


def time_rules(nets: dict, batches: list, rounds: int) -> tuple[dict, dict]:
    """Per rule: seconds of each training step and of each forward pass without gradients, interleaved."""
    step_t = {k: [] for k in nets}
    fwd_t = {k: [] for k in nets}
    for rule, net, opt in nets.values():  # warm-up
        rule.train_step(net, batches[0], opt)
    for _ in range(rounds):
        for name, (rule, net, opt) in nets.items():
            for b in batches:
                t0 = time.perf_counter()
                rule.train_step(net, b, opt)
                step_t[name].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                with torch.no_grad():
                    net(b.x)
                fwd_t[name].append(time.perf_counter() - t0)
    return step_t, fwd_t


def main():
    args = parse_args()
    torch.set_num_threads(1)
    reg = get_registry()
    deep, image = args.hidden == "deep", args.hidden == "deep-image"
    chans = 39 if image else 40
    args.batch = args.batch or (32 if image else 64)
    args.steps = args.steps or (39 if image else 100)
    if image:
        hidden = [1600, 128, 128]
        conn_params = {"conv_kernel": 5, "conv_input": "image", "conv_stride": 2, "recurrent_layers": "1"}
    else:
        hidden = [160, 128, 128] if deep else [int(h) for h in args.hidden.split(",")]
        conn_params = {"conv_kernel": 5, "recurrent_layers": "1"} if deep else {}
    nets = {}
    for name in ("reward-prop", "bptt"):
        rule = reg.get("rule", name)()
        net = assemble(reg.get("neuron", "nrr"), reg.get("connectivity", "sparse")(**conn_params), [rule],
                       input_size=chans, num_classes=10, hidden=hidden, seed=0, readout="linear")
        opt = rule.make_optimizer([{"params": list(net.parameters())}], 1e-3, 0.0)
        nets[name] = (rule, net, opt)
    g = torch.Generator().manual_seed(0)
    batches = [Batch(torch.randn(args.steps, args.batch, chans, generator=g),
                     torch.randint(0, 10, (args.batch,), generator=g), torch.arange(args.batch))
               for _ in range(args.per_round)]
    load0 = os.getloadavg()
    step_t, fwd_t = time_rules(nets, batches, args.rounds)
    res = {"hidden": hidden, "conn": conn_params, "batch": args.batch, "steps": args.steps, "threads": 1,
           "input": chans, "loadavg_start": load0, "loadavg": os.getloadavg(), "rules": {}}
    for name in nets:
        s, f = statistics.median(step_t[name]), statistics.median(fwd_t[name])
        res["rules"][name] = {"seconds_per_step": s, "seconds_forward_no_grad": f,
                              "seconds_per_fsdd_epoch_estimate": s * 1500 / args.batch}
    rules = res["rules"]
    res["bptt_over_reward_prop"] = rules["bptt"]["seconds_per_step"] / rules["reward-prop"]["seconds_per_step"]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "a") as fh:  # one JSON object per line, one line per configuration
        fh.write(json.dumps(res) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
