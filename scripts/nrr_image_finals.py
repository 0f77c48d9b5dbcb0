"""Run the deep-image NRR-SNN vs BP-RSNN comparison with the learning rates chosen on validation.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/nrr_image_finals.py --datasets fsdd,espeak-digits --epochs 40

Round 3, the shallow rows on the fbank-l1 input (after scripts/nrr_tune.py chose their lrs at 30 epochs):

    OMP_NUM_THREADS=1 .venv/bin/python scripts/nrr_image_finals.py --datasets fsdd --epochs 30 \
        --variants "fbank ff,fbank ff+adapt,fbank BP-RSNN,fbank NRR-SNN" --name fbank-ablation

For each dataset and variant, the lr with the best validation accuracy in docs/results/nrr/tune.jsonl (seed 0,
same epochs) is used; the seed-0 tuning run is reused (copied: the same command apart from --out), seeds 1, 2
are trained by scripts/nrr_ablation.py, which writes docs/results/nrr/image-ablation-<dataset>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nrr_ablation import ROOT, slug  # noqa: E402

VARS = ("deep-image NRR-SNN", "deep-image BP-RSNN")
SHALLOW_FBANK = ("fbank ff", "fbank ff+adapt", "fbank BP-RSNN", "fbank NRR-SNN")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="fsdd,espeak-digits")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--rp-step", default="20")
    ap.add_argument("--variants", default=",".join(VARS), help='e.g. "fbank ff,fbank ff+adapt,fbank BP-RSNN,fbank '
                                                               'NRR-SNN"')
    ap.add_argument("--name", default="image-ablation")
    args = ap.parse_args()
    variants = args.variants.split(",")
    tune = [
        json.loads(line) for line in (ROOT / "docs/results/nrr/tune.jsonl").read_text().splitlines() if line.strip()
    ]
    for ds in args.datasets.split(","):
        lrs = {}
        for var in variants:
            cand = [
                r
                for r in tune
                if r["dataset"] == ds and r["variant"] == var and r["epochs"] == args.epochs and r["seed"] == 0
            ]
            if not cand:
                raise SystemExit(f"no tuning run for {ds} {var} at {args.epochs} epochs: run scripts/nrr_tune.py first")
            best = max(cand, key=lambda r: r["best_val"])
            lrs[var] = best["command"].split("--lr ", 1)[1].split()[0]  # as written in the command, e.g. 1e-3
            tag = f"-lr{lrs[var]}" + (f"-step{args.rp_step}" if "NRR" in var else "")
            src = ROOT / "runs/nrr_tune" / ds / f"{slug(var)}-lr{lrs[var]}-e{args.epochs}-seed0"
            dst = ROOT / "runs/nrr" / ds / f"{slug(var)}{tag}-seed0"
            if not dst.exists() and src.exists():
                shutil.copytree(src, dst)
        print(ds, lrs, flush=True)
        for var in variants:  # one call per variant: each with its own validation-chosen lr, merged into one table
            subprocess.run(
                [sys.executable, str(ROOT / "scripts/nrr_ablation.py"), "--variants", var, "--datasets", ds, "--epochs",
                 str(args.epochs), "--seeds", args.seeds, "--lr-rp", lrs[var], "--lr-bp", lrs[var], "--rp-step",
                 args.rp_step, "--name", args.name, "--merge"],
                check=True,
            )


if __name__ == "__main__":
    main()
