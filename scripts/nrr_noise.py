"""Noise curves of the ablation's runs (paper Fig. 6-7): accuracy and Acc(P)/Acc(0) for P in 0, 0.1, ..., 0.5,
NRR-SNN against the feed-forward SNN (and BP-RSNN), mean ± sd over seeds. Run after scripts/nrr_ablation.py:

    OMP_NUM_THREADS=1 .venv/bin/python scripts/nrr_noise.py --out docs/results/nrr

Each run is `snnkit eval RUN --noise 0,0.1,0.2,0.3,0.4,0.5` (best-on-validation weights, noise seed 0, test
split); writes OUT/noise-<dataset>.json and OUT/noise-<dataset>.png (OUT/<name>-<dataset>.* with --name).

Round 2 (deep-image runs, whose directories carry the chosen lr, e.g. deep-image-NRR-SNN-lr1e-3-step20-seed0):

    OMP_NUM_THREADS=1 .venv/bin/python scripts/nrr_noise.py --variants "deep-image NRR-SNN,deep-image BP-RSNN" \
        --plot-variants "deep-image NRR-SNN,deep-image BP-RSNN" --name noise-image

A variant's run of seed S is RUNS/<dataset>/<variant slug>-seed<S>, or else the one directory
RUNS/<dataset>/<variant slug>-lr*-seed<S> (an error if several match).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from snnkit_cli.robustness import noise_curve, plot_noise

ROOT = Path(__file__).resolve().parents[1]
PS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]


def rel(path: Path) -> str:
    """``path`` relative to the repository root when under it (records stay valid in any checkout)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def find_run(base: Path, var: str, seed: str) -> Path | None:
    """The finished run directory of ``var`` and ``seed`` under ``base`` (untagged name first, then ``-lr*`` tagged)."""
    stem = var.replace(" ", "-").replace("+", "_")
    run = base / f"{stem}-seed{seed}"
    if (run / "summary.json").exists():
        return run
    tagged = sorted(d for d in base.glob(f"{stem}-lr*-seed{seed}") if (d / "summary.json").exists())
    if len(tagged) > 1:
        raise SystemExit(f"several runs match {var} seed {seed}: {[d.name for d in tagged]}")
    return tagged[0] if tagged else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default=str(ROOT / "runs/nrr"))
    ap.add_argument("--datasets", default="fsdd,espeak-digits")
    ap.add_argument("--variants", default="ff,ff+adapt,BP-RSNN,NRR-SNN,deep BP-RSNN,deep NRR-SNN")
    ap.add_argument("--plot-variants", default="ff,BP-RSNN,NRR-SNN,deep NRR-SNN", help="the lines of the PNG")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--data-dir", default=None,
                    help="where the corpora are (default: what snnkit train finds: SNNKIT_DATA, then its usual places)")
    ap.add_argument("--out", default=str(ROOT / "docs/results/nrr"))
    ap.add_argument("--name", default="noise", help="output file stem: OUT/<name>-<dataset>.json/.png")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for ds in args.datasets.split(","):
        table, curves = {"dataset": ds, "p": PS, "noise_seed": 0, "variants": {}}, {}
        for var in args.variants.split(","):
            per_seed = []
            for seed in args.seeds.split(","):
                run = find_run(Path(args.runs) / ds, var, seed)
                if run is None:
                    continue
                rec = noise_curve(run, PS, seed=0, data_dir=args.data_dir if ds != "espeak-digits" else None)
                per_seed.append(rec["rows"])
            if not per_seed:
                continue
            rows = []
            for i, p in enumerate(PS):
                row = {"p": p}
                for key in ("accuracy", "frame_accuracy", "ratio"):
                    vals = [r[i][key] for r in per_seed if r[i][key] is not None]
                    row[key] = statistics.mean(vals)
                    row[f"{key}_sd"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
                rows.append(row)
            table["variants"][var] = {"seeds": len(per_seed), "rows": rows, "per_seed": per_seed}
            curves[var] = rows
        out = Path(args.out)
        for var in table["variants"]:
            table["variants"][var]["runs"] = [rel(find_run(Path(args.runs) / ds, var, s)) for s in args.seeds.split(",")
                                              if find_run(Path(args.runs) / ds, var, s) is not None]
        (out / f"{args.name}-{ds}.json").write_text(json.dumps(table, indent=2))
        plot_noise({v: r for v, r in curves.items() if v in args.plot_variants.split(",")},
                   out / f"{args.name}-{ds}.png", title=f"{ds}: test accuracy under noise")
        for var, rows in curves.items():
            print(ds, var, " ".join(f"{r['p']:.1f}:{100 * r['accuracy']:.1f}±{100 * r['accuracy_sd']:.1f}"
                                    f"(r{r['ratio']:.2f})" for r in rows), flush=True)


if __name__ == "__main__":
    main()
