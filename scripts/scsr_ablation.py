"""ScSr-SNN ablation on FSDD with tssl-bp: ff, Sr, Sr-BIP, SrSc, SrSc-BIP, several seeds, mean ± sd.

    nice -n 10 python scripts/scsr_ablation.py \
        --hidden 64,64,64 --epochs 10 --seeds 0,1,2 --out docs/results/scsr-ablation.json

Every variant uses the scsr-fsdd preset with only ``conn`` and ``rules`` changed, so hidden sizes,
epochs, lr and neuron parameters are identical. Reports the final-epoch test accuracy (and the best epoch's).
CPU only, one thread per run (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from snnkit_cli import presets
from snnkit_core.engine.config import TrainConfig
from snnkit_core.engine.training import train

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"ff (TSSL-BP)": ("ff", ("tssl-bp",)), "Sr": ("self", ("tssl-bp",)), "Sr-BIP": ("self", ("tssl-bp", "bip")),
            "SrSc": ("srsc", ("tssl-bp",)), "SrSc-BIP": ("srsc", ("tssl-bp", "bip"))}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="scsr-fsdd", help="a preset name (snnkit presets)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--hidden", default=None, help="override the preset's hidden sizes, e.g. 64,64,64")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", default=str(ROOT / "docs/results/scsr-ablation.json"))
    return ap.parse_args()


def base_config(args) -> TrainConfig:
    """The preset with the command line's overrides."""
    base = presets.get(args.preset).config()
    changes = {"device": "cpu"}
    if args.data_dir:
        changes["data_dir"] = args.data_dir
    if args.hidden:
        changes["hidden"] = args.hidden
    if args.epochs:
        changes["epochs"] = args.epochs
    if args.lr:
        changes["lr"] = args.lr
    if args.limit:
        changes["limit"] = args.limit
    return base.evolve(**changes)


def run_variants(args, base: TrainConfig, results: dict, out_path: Path) -> None:
    """Train every (variant, seed) not yet in ``results``, saving after each."""
    seeds = [int(s) for s in args.seeds.split(",")]
    for name in args.variants.split(","):
        conn, rules = VARIANTS[name]
        for seed in seeds:
            key = f"{name}/seed{seed}"
            if key in results["runs"]:
                continue
            cfg = base.evolve(conn=conn, rules=rules, seed=seed)
            t0 = time.perf_counter()
            recs = [r.to_json() for r in train(cfg)]
            results["runs"][key] = {"variant": name, "seed": seed, "final_test_accuracy": recs[-1]["test_accuracy"],
                                    "best_test_accuracy": max(r["test_accuracy"] for r in recs),
                                    "final_train_accuracy": recs[-1]["train_accuracy"],
                                    "test_accuracy_per_epoch": [r["test_accuracy"] for r in recs],
                                    "seconds_per_epoch": statistics.mean(r["seconds"] for r in recs),
                                    "wall_seconds": time.perf_counter() - t0, "bip": recs[-1].get("bip")}
            print(f"{key}: final {recs[-1]['test_accuracy']:.4f}  ({time.perf_counter() - t0:.0f} s)", flush=True)
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps(results, indent=1))


def summarise(results: dict) -> dict:
    """Per variant: final test accuracy mean ± sd over seeds, the best epoch's mean, seconds per epoch."""
    summary = {}
    for name in VARIANTS:
        runs = [r for r in results["runs"].values() if r["variant"] == name]
        if not runs:
            continue
        acc = [100 * r["final_test_accuracy"] for r in runs]
        best = [100 * r["best_test_accuracy"] for r in runs]
        summary[name] = {
            "n": len(runs), "mean": statistics.mean(acc), "sd": statistics.stdev(acc) if len(acc) > 1 else 0.0,
            "best_epoch_mean": statistics.mean(best),
            "seconds_per_epoch": statistics.mean(r["seconds_per_epoch"] for r in runs),
        }
    return summary


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    base = base_config(args)
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    results["config"] = {k: v for k, v in base.to_dict().items() if k not in ("conn", "rules")}
    results.setdefault("runs", {})
    run_variants(args, base, results, out_path)
    summary = results["summary"] = summarise(results)
    out_path.write_text(json.dumps(results, indent=1))
    print("| variant | n | final test acc % (mean ± sd) | best-epoch acc % (mean) | s/epoch |")
    print("| --- | --- | --- | --- | --- |")
    for name, s in summary.items():
        print(f"| {name} | {s['n']} | {s['mean']:.2f} ± {s['sd']:.2f} | {s['best_epoch_mean']:.2f} | "
              f"{s['seconds_per_epoch']:.1f} |")


if __name__ == "__main__":
    main()
