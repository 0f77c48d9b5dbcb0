"""Choose NRR-SNN learning rates and epochs on the VALIDATION split only (seed 0), for the ablation runs.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/nrr_tune.py --variants "deep-image NRR-SNN" --lrs 1e-4,1e-3,3e-3 \
        --epochs 60 --datasets fsdd

Each (dataset, variant, lr) is one ``snnkit train`` run (the command of scripts/nrr_ablation.py with the lr
replaced) under runs/nrr_tune/. Printed and written to OUT/tune.jsonl, one line per run: the best validation
accuracy and its epoch, the training accuracy there and at the last epoch, and the validation accuracy at
epochs 10/30/last (to see whether it is still rising). Test accuracy is not read.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nrr_ablation import DATASETS, ROOT, SNNKIT, VARIANTS, slug  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None,
                    help="where the corpora are (default: what snnkit train finds: SNNKIT_DATA, then its usual places)")
    ap.add_argument("--variants", default="deep-image NRR-SNN")
    ap.add_argument("--datasets", default="fsdd")
    ap.add_argument("--lrs", default="1e-4,1e-3,3e-3")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--rp-step", default="20", help="reward-prop StepLR period (the code's 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", default=str(ROOT / "runs/nrr_tune"))
    ap.add_argument("--out", default=str(ROOT / "docs/results/nrr"))
    args = ap.parse_args()
    for ds in args.datasets.split(","):
        for var in args.variants.split(","):
            for lr in args.lrs.split(","):
                argv = list(VARIANTS[var])
                argv[argv.index("--lr") + 1] = lr
                if "reward-prop" in argv:
                    argv[argv.index("rule.reward-prop.step_size=10")] = f"rule.reward-prop.step_size={args.rp_step}"
                run = Path(args.runs) / ds / f"{slug(var)}-lr{lr}-e{args.epochs}-seed{args.seed}"
                cmd = [*SNNKIT, "train", "--neuron", "nrr", *argv, *DATASETS[ds], "--epochs", str(args.epochs),
                       "--seed", str(args.seed), "--threads", "1", "--quiet", "--out", str(run)]
                if ds != "espeak-digits" and args.data_dir:
                    cmd += ["--data-dir", args.data_dir]
                done = run / "status.json"
                if not (done.exists() and json.loads(done.read_text()).get("state") == "finished"):
                    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                m = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
                best = max(m, key=lambda r: r["val_accuracy"])
                at = {e: round(m[e - 1]["val_accuracy"], 4) for e in (10, 30, len(m)) if e <= len(m)}
                rec = {"dataset": ds, "variant": var, "lr": float(lr), "epochs": args.epochs, "seed": args.seed,
                       "best_val": round(best["val_accuracy"], 4), "best_epoch": best["epoch"],
                       "train_at_best": round(best["train_accuracy"], 4),
                       "train_last": round(m[-1]["train_accuracy"], 4), "val_at_epoch": at,
                       "command": " ".join(cmd[2:]).replace(sys.executable, "python")}
                print(json.dumps(rec), flush=True)
                with open(Path(args.out) / "tune.jsonl", "a") as f:
                    f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
