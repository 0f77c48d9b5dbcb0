"""tssl-bp vs bptt experiments: backward forms, recipes and the done-when comparison.

    OMP_NUM_THREADS=1 nice -n 10 python scripts/tssl_experiments.py --dataset fsdd \
        --variants tssl-2021,tssl-hybrid --seeds 0,1 --epochs 5 --val 0.15 --out docs/results/tssl-fsdd-val.json

Every variant is the CLI default network (``snnkit train --neuron lif --conn srsc``: 128-128-128, batch 32) with
only what the variant names changed. ``--val F`` carves a validation split from the TRAINING data (a seeded
permutation, seed 12345, independent of the run's seed; the last F of it) and trains on the rest: each epoch's
``val_accuracy`` is measured on that split and ``test_accuracy`` on the untouched test split (recorded, never
used to choose). ``--val 0`` trains on the whole training split, as ``snnkit train`` does.

Per run it records per-epoch accuracies and, for tssl-bp, the per-layer diagnostics of ``describe`` (spike
rate, silent/saturated shares, backward-branch shares, gradient norms before clipping).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from snnkit_core.engine.config import TrainConfig
from snnkit_core.engine.data import load_protocol_splits
from snnkit_core.engine.training import build, evaluate, train

ROOT = Path(__file__).resolve().parents[1]

# name -> (conn, rules, readout, {section: {param: value}})
VARIANTS = {
    "tssl-default": ("srsc", ("tssl-bp",), None, {}),
    "tssl-bip-default": ("srsc", ("tssl-bp", "bip"), None, {}),
    "tssl-2021": ("srsc", ("tssl-bp",), None, {"rule.tssl-bp": {"backward": "2021"}}),
    "tssl-2021-bip": ("srsc", ("tssl-bp", "bip"), None, {"rule.tssl-bp": {"backward": "2021"}}),
    "tssl-2021-bound1": ("srsc", ("tssl-bp",), None, {"rule.tssl-bp": {"backward": "2021", "bound": 1.0}}),
    "tssl-2020": ("srsc", ("tssl-bp",), None, {"rule.tssl-bp": {"backward": "2020"}}),
    "tssl-hybrid": ("srsc", ("tssl-bp",), None, {"rule.tssl-bp": {"backward": "hybrid"}}),
    "tssl-hybrid-bip": ("srsc", ("tssl-bp", "bip"), None, {"rule.tssl-bp": {"backward": "hybrid"}}),
    "tssl-surrogate": ("srsc", ("tssl-bp",), None, {"rule.tssl-bp": {"backward": "surrogate"}}),
    "bptt-linear": ("srsc", ("bptt",), None, {}),
    "bptt-spiking": ("srsc", ("bptt",), "spiking", {}),
    # the ScSr ablation (fixed default backward)
    "ff": ("ff", ("tssl-bp",), None, {}),
    "Sr": ("self", ("tssl-bp",), None, {}),
    "Sr-BIP": ("self", ("tssl-bp", "bip"), None, {}),
    "SrSc": ("srsc", ("tssl-bp",), None, {}),
    "SrSc-BIP": ("srsc", ("tssl-bp", "bip"), None, {}),
}


def parse_sets(items):
    """--set section.param=value (section: neuron, conn, dataset, rule.NAME) -> params dict."""
    out: dict[str, dict] = {}
    for item in items or ():
        key, _, val = item.partition("=")
        section, _, name = key.rpartition(".")
        try:
            v = json.loads(val)
        except json.JSONDecodeError:
            v = val
        out.setdefault(section, {})[name] = v
    return out


def merge(a, b):
    out = {k: dict(v) for k, v in a.items()}
    for k, v in b.items():
        out.setdefault(k, {}).update(v)
    return out


def carve(data, frac):
    """(train part, validation part): a seeded permutation (seed 12345) of the training split; the last frac."""
    import attrs

    n = len(data)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(12345))
    n_val = int(round(frac * n))
    parts = perm[: n - n_val].sort().values, perm[n - n_val:].sort().values
    return tuple(attrs.evolve(data, x=data.rows(i), y=data.y[i]) for i in parts)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="espeak-digits")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--variants", required=True)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--hidden", default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--val", type=float, default=0.0)
    ap.add_argument("--set", action="append", default=[], help="section.param=value for every variant")
    ap.add_argument("--tag", default="", help="suffix of the run keys (to keep runs with other --set apart)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--report", action="store_true", help="only print the tables of --out (with diagnostics)")
    return ap.parse_args()


def variant_config(args, name: str, seed: int, sets: dict) -> TrainConfig:
    """The CLI default network with what variant ``name`` and the command line change."""
    conn, rules, readout, params = VARIANTS[name]
    ch = dict(neuron="lif", conn=conn, rules=rules, dataset=args.dataset, epochs=args.epochs, seed=seed,
              device="cpu", readout=readout, params=merge(params, sets))
    for k in ("data_dir", "hidden", "batch_size", "lr", "limit"):
        v = getattr(args, k)
        if v is not None:
            ch[k] = v
    return TrainConfig(**ch)


def train_run(args, cfg: TrainConfig, key: str) -> list[dict]:
    """Train one run; a row per epoch (validation on the carved split with --val, test on the test split)."""
    built = build(cfg)
    tr, _, te, _ = load_protocol_splits(built)
    if args.val > 0:
        tr, va = carve(tr, args.val)
        data = (tr, va)
    else:
        data = (tr, te)
    epochs = []
    for rec in train(cfg, built=built, data=data):
        d = rec.to_json()
        row = {"epoch": d["epoch"], "train_accuracy": d["train_accuracy"], "train_loss": d["train_loss"],
               "seconds": d["seconds"]}
        if args.val > 0:
            row["val_accuracy"] = d["test_accuracy"]
            row["test_accuracy"] = evaluate(built, te, cfg.batch_size)[1]
        else:
            row["test_accuracy"] = d["test_accuracy"]
        if "tssl" in d:
            row["tssl"] = d["tssl"]
        epochs.append(row)
        print(f"{key} ep{row['epoch']}: train {row['train_accuracy']:.3f} "
              + (f"val {row['val_accuracy']:.3f} " if "val_accuracy" in row else "")
              + f"test {row['test_accuracy']:.3f} ({row['seconds']:.0f} s)", flush=True)
    return epochs


def main() -> None:
    args = parse_args()
    if args.report:
        report(json.loads(Path(args.out).read_text()))
        return
    torch.set_num_threads(1)
    sets = parse_sets(args.set)
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.exists() else {"runs": {}}
    for name in args.variants.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            key = f"{name}{args.tag}/seed{seed}"
            if key in results["runs"]:
                continue
            cfg = variant_config(args, name, seed, sets)
            t0 = time.perf_counter()
            epochs = train_run(args, cfg, key)
            results["runs"][key] = {"variant": name, "seed": seed, "config": cfg.to_dict(), "val": args.val,
                                    "epochs": epochs, "wall_seconds": time.perf_counter() - t0}
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps(results, indent=1))
    report(results)


def _ms(v):
    return f"{statistics.mean(v):.1f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.1f}" if v else "-"


def report(results):
    """Final-epoch accuracies (mean ± sd over seeds), the epoch best on validation (when there is one), and the
    final epoch's diagnostics per layer (mean over seeds)."""
    rows = {}
    for key, r in results["runs"].items():
        rows.setdefault(key.rsplit("/", 1)[0], []).append(r)
    print("| variant | n | epochs | final test % | final val % | test % at best-val epoch | per seed (final test) |")
    print("|---|---|---|---|---|---|---|")
    for name, runs in rows.items():
        fin = [r["epochs"][-1] for r in runs]
        test = [100 * e["test_accuracy"] for e in fin]
        val = [100 * e["val_accuracy"] for e in fin if "val_accuracy" in e]
        at_best = [100 * max(r["epochs"], key=lambda e: e["val_accuracy"])["test_accuracy"] for r in runs
                   if "val_accuracy" in r["epochs"][0]]
        print(f"| {name} | {len(runs)} | {len(runs[0]['epochs'])} | {_ms(test)} | {_ms(val)} | {_ms(at_best)} | "
              + ", ".join(f"{t:.1f}" for t in test) + " |")
    print()
    print("| variant | layer | spike rate | silent | saturated | exact at spikes | exact between spikes | surrogate | "
          "grad norm |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, runs in rows.items():
        diag = [r["epochs"][-1].get("tssl") for r in runs]
        if not all(diag):
            continue
        for layer in diag[0]:
            def m(k, layer=layer, diag=diag):
                return statistics.mean(d[layer][k] for d in diag)
            print(f"| {name} | {layer} | {m('spike_rate'):.3f} | {m('silent'):.2f} | {m('saturated'):.2f} | "
                  f"{m('exact_spike'):.2f} | {m('exact_silent'):.2f} | {m('surrogate'):.2f} | {m('grad_norm'):.3g} |")


if __name__ == "__main__":
    main()
