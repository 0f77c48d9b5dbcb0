"""NRR-SNN ablation (paper Table 2) on FSDD (speaker split) and espeak-digits, shallow and deep, several seeds.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/nrr_ablation.py \
        --epochs 30 --seeds 0,1,2 --out docs/results/nrr

Every run is one ``snnkit train`` command (printed in the JSON), 1 thread, run directories under runs/nrr/
(a finished run is not trained again, so the script can be restarted). Variants, all with the ``nrr`` neuron:

* ``ff``: no recurrence, γ = 0 (no adaptive threshold), bptt ("pure feed-forward, pseudo-BP");
* ``ff+adapt``: γ = 1, bptt;
* ``ff+adapt+sparse`` = BP-RSNN: sparse loops (density 0.5), γ = 1, bptt;
* ``NRR-SNN``: the same network trained with reward-prop;
* ``deep`` versions of the last two: conv over frequency (kernel 5, 4 channels) -> sparse recurrent -> ff -> out.
* ``fbank`` versions of the four shallow rows: the same networks on the fbank-l1 input below, one 39-band
  frame per step (39 steps);
* ``deep-image`` versions (the authors' deep model, spec §6.4): the 39 x 39 fbank-l1 input (39 linear mel
  energies x 39 frames at 50 % overlap, each band L1-normalised) x10 as one static image at each of the 39
  steps -> 2-D conv (kernel 5, stride 2, 4 channels: 4 x 20 x 20 = 1,600 spiking neurons) -> 2x2 average pool ->
  sparse recurrent (128) -> ff (128) -> vote readout.

``--lr-rp`` / ``--lr-bp`` / ``--rp-step`` override the learning rates and reward-prop's StepLR period (choose
them on validation with scripts/nrr_tune.py); ``--name`` sets the summary file (``OUT/<name>-<dataset>.json``).

Model choice: the epoch with the best validation accuracy (FSDD: speaker ``lucas`` held out; espeak-digits: a
stratified 10 % of train); test accuracy at that epoch is reported (summary.json), mean ± sd over seeds.
Raw per-epoch records go to OUT/raw/<dataset>/<variant>-seed<k>.jsonl.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNNKIT = [sys.executable, "-m", "snnkit_cli"]

SHALLOW = ["--hidden", "128"]
DEEP = ["--hidden", "160,128,128", "--set", "conn.conv_kernel=5", "--set", "conn.recurrent_layers=1"]
RP = ["--rule", "reward-prop", "--lr", "1e-3", "--set", "rule.reward-prop.step_size=10"]
BP = ["--rule", "bptt", "--lr", "1e-3"]
FBANK = ["--set", "dataset.features=fbank-l1", "--set", "dataset.n_mels=39", "--set", "dataset.steps=39"]
DEEP_IMAGE = ["--hidden", "1600,128,128", "--set", "conn.conv_kernel=5", "--set", "conn.recurrent_layers=1",
              "--set", "conn.conv_input=image", "--set", "conn.conv_stride=2", *FBANK]
VARIANTS = {
    "ff": ["--conn", "ff", "--set", "neuron.gamma=0", *BP, *SHALLOW],
    "ff+adapt": ["--conn", "ff", *BP, *SHALLOW],
    "BP-RSNN": ["--conn", "sparse", *BP, *SHALLOW],
    "NRR-SNN": ["--conn", "sparse", *RP, *SHALLOW],
    "deep BP-RSNN": ["--conn", "sparse", *BP, *DEEP],
    "deep NRR-SNN": ["--conn", "sparse", *RP, *DEEP],
    "deep-image BP-RSNN": ["--conn", "sparse", *BP, *DEEP_IMAGE],
    "deep-image NRR-SNN": ["--conn", "sparse", *RP, *DEEP_IMAGE],
    # round 3: the shallow rows on the authors' fbank-l1 input (39 bands x 39 steps, one frame per step)
    "fbank ff": ["--conn", "ff", "--set", "neuron.gamma=0", *BP, *SHALLOW, *FBANK],
    "fbank ff+adapt": ["--conn", "ff", *BP, *SHALLOW, *FBANK],
    "fbank BP-RSNN": ["--conn", "sparse", *BP, *SHALLOW, *FBANK],
    "fbank NRR-SNN": ["--conn", "sparse", *RP, *SHALLOW, *FBANK],
}
DEFAULT_VARIANTS = "ff,ff+adapt,BP-RSNN,NRR-SNN,deep BP-RSNN,deep NRR-SNN"
DATASETS = {
    "fsdd": ["--dataset", "fsdd", "--set", "dataset.split=speaker", "--set", "dataset.val_speakers=lucas"],
    "espeak-digits": ["--dataset", "espeak-digits"],
}


def slug(name: str) -> str:
    return name.replace(" ", "-").replace("+", "_")


def override(argv: list[str], args) -> list[str]:
    """``argv`` with the learning rate / StepLR period replaced by the command-line overrides."""
    argv = list(argv)
    rp = "reward-prop" in argv
    lr = args.lr_rp if rp else args.lr_bp
    if lr:
        argv[argv.index("--lr") + 1] = lr
    if rp and args.rp_step:
        argv[argv.index("rule.reward-prop.step_size=10")] = f"rule.reward-prop.step_size={args.rp_step}"
    return argv


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None,
                    help="where the corpora are (default: what snnkit train finds: SNNKIT_DATA, then its usual places)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default=DEFAULT_VARIANTS)
    ap.add_argument("--lr-rp", help="learning rate of the reward-prop variants (default 1e-3)")
    ap.add_argument("--lr-bp", help="learning rate of the bptt variants (default 1e-3)")
    ap.add_argument("--rp-step", help="reward-prop StepLR period in epochs (default 10)")
    ap.add_argument("--name", default="ablation")
    ap.add_argument("--merge", action="store_true", help="keep the other variants already in OUT/<name>-<dataset>.json "
                    "(same epochs); each variant records its own lr")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--runs", default=str(ROOT / "runs/nrr"))
    ap.add_argument("--out", default=str(ROOT / "docs/results/nrr"))
    return ap.parse_args()


def train_seed(args, ds: str, var: str, seed: int, out: Path) -> dict:
    """Train one (dataset, variant, seed) unless its run already finished; its row of the table."""
    rp = "reward-prop" in VARIANTS[var]
    own = (("lr", args.lr_rp), ("step", args.rp_step)) if rp else (("lr", args.lr_bp),)
    tag = "".join(f"-{k}{v}" for k, v in own if v)  # only the overrides this variant uses
    run = Path(args.runs) / ds / f"{slug(var)}{tag}-seed{seed}"
    cmd = [*SNNKIT, "train", "--neuron", "nrr", *override(VARIANTS[var], args), *DATASETS[ds],
           "--epochs", str(args.epochs), "--seed", str(seed), "--threads", "1", "--quiet", "--out", str(run)]
    if ds != "espeak-digits" and args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    done = run / "status.json"
    if not (done.exists() and json.loads(done.read_text()).get("state") == "finished"):
        if run.exists():
            shutil.rmtree(run)
        t0 = time.time()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        print(f"{ds} {var} seed {seed}: {time.time() - t0:.0f} s", flush=True)
    summ = json.loads((run / "summary.json").read_text())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    raw = out / "raw" / ds / f"{slug(var)}{tag}-seed{seed}.jsonl"
    raw.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(run / "metrics.jsonl", raw)
    return {"seed": seed, "run": str(run.relative_to(ROOT)) if run.is_relative_to(ROOT) else str(run),
            "best_epoch": summ.get("best_epoch"), "val_accuracy": summ.get("best_val_accuracy"),
            "test_accuracy": summ.get("test_accuracy_at_best"),
            "final_test_accuracy": metrics[-1]["test_accuracy"],
            "train_accuracy_at_best": next((m["train_accuracy"] for m in metrics
                                            if m["epoch"] == summ.get("best_epoch")), None),
            "final_train_accuracy": metrics[-1]["train_accuracy"],
            "seconds_per_epoch": statistics.mean(m["seconds"] for m in metrics),
            "command": " ".join(cmd[2:]).replace(sys.executable, "python")}


def main() -> None:
    args = parse_args()
    out = Path(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    for ds in args.datasets.split(","):
        table = {"dataset": ds, "epochs": args.epochs, "seeds": seeds, "lr_rp": args.lr_rp or "1e-3",
                 "lr_bp": args.lr_bp or "1e-3", "rp_step": args.rp_step or "10", "variants": {}}
        prev = out / f"{args.name}-{ds}.json"
        if args.merge and prev.exists():  # keep the other variants of an earlier call (each with its own lr)
            old = json.loads(prev.read_text())
            if old.get("epochs") == args.epochs:
                table["variants"] = old["variants"]
        for var in args.variants.split(","):
            rows = [train_seed(args, ds, var, seed, out) for seed in seeds]
            rp = "reward-prop" in VARIANTS[var]
            accs = [r["test_accuracy"] for r in rows]
            table["variants"][var] = {"lr": (args.lr_rp if rp else args.lr_bp) or "1e-3",
                                      "rp_step": (args.rp_step or "10") if rp else None,
                                      "test_accuracy_mean": statistics.mean(accs),
                                      "test_accuracy_sd": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                                      "runs": rows}
            (out / f"{args.name}-{ds}.json").write_text(json.dumps(table, indent=2))
        print(json.dumps({v: f"{100 * r['test_accuracy_mean']:.2f} ± {100 * r['test_accuracy_sd']:.2f}"
                          for v, r in table["variants"].items()}), flush=True)


if __name__ == "__main__":
    main()
