"""Diagnose a reward-prop run layer by layer: firing rates, S = 2 share, how many membranes sit in the
pseudo-derivative window, readout scale against the one-hot targets, and the replaced gradient against the
true gradient of the same MSE loss (norms and cosine) on one batch of ``--split`` (test, or val: what tuning
may look at), with the run's best weights.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/nrr_diagnose.py runs/nrr/fsdd/NRR-SNN-seed0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from snnkit_core.engine.data import indexed_batches, load_protocol_splits, to_batch
from snnkit_core.engine.rundir import RunDir
from snnkit_core.engine.training import build, load_weights


class _Keep:
    def zero_grad(self, set_to_none=True):
        pass

    def step(self, closure=None):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--data-dir")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--out")
    ap.add_argument("--split", default="test", choices=("test", "val", "train"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = RunDir(args.run).config()
    if args.data_dir:
        cfg = cfg.evolve(data_dir=args.data_dir)
    built = build(cfg)
    load_weights(built, args.run, "best" if (Path(args.run) / "best.pt").exists() else "last")
    train, val, test, _ = load_protocol_splits(built)
    data = {"train": train, "val": val, "test": test}[args.split]
    x, y, idx = next(iter(indexed_batches(data, args.batch, False, torch.Generator().manual_seed(0))))
    batch = to_batch(built, x, y, idx)
    net, rule = built.network, built.gradient_rule
    report = {"run": args.run, "split": args.split, "layers": []}
    with torch.no_grad():
        out = net(batch.x)
    for layer, tr in enumerate(out.hidden):
        s = tr.s
        info = {"layer": layer, "rate": float((s > 0).float().mean()), "mean_S": float(s.mean()),
                "share_S2": float((s == 2).float().mean()),
                "silent_neurons": float(((s > 0).float().mean((0, 1)) == 0).float().mean())}
        report["layers"].append(info)
    target = F.one_hot(batch.y, out.out.shape[-1]).float()
    report["readout"] = {"out_mean": float(out.out.mean()), "out_std": float(out.out.std()),
                         "out_at_label": float((out.out * target).sum(-1).mean()), "target_mean": float(target.mean()),
                         "mse": float(F.mse_loss(out.out, target.expand_as(out.out)))}
    # replaced gradients (the rule's own step, no update)
    net.zero_grad(set_to_none=True)
    rule.train_step(net, batch, _Keep())
    rp = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    # the true gradient of the same MSE (plain autograd through the default scans)
    net.zero_grad(set_to_none=True)
    net.plan(rules=())
    o = net(batch.x)
    F.mse_loss(o.out, target.unsqueeze(0).expand_as(o.out)).backward()
    true = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    net.plan(rules=built.rules)
    report["gradients"] = {}
    for n in sorted(set(rp) | set(true)):
        a, b = rp.get(n), true.get(n)
        rec = {"reward_prop_norm": None if a is None else float(a.norm()),
               "true_norm": None if b is None else float(b.norm())}
        if a is not None and b is not None and float(a.norm()) > 0 and float(b.norm()) > 0:
            rec["cosine"] = float(F.cosine_similarity(a.flatten(), b.flatten(), dim=0))
        report["gradients"][n] = rec
    # membranes in the window: where a replaced gradient can act at all (nrr: |V_f - θ| < 0.5)
    txt = json.dumps(report, indent=2)
    print(txt)
    if args.out:
        Path(args.out).write_text(txt)


if __name__ == "__main__":
    main()
