"""Markdown tables for docs/methods/nrr-snn.md from docs/results/nrr/{ablation,noise,image-ablation}-*.json,
tune.jsonl and timing.jsonl.

    .venv/bin/python scripts/nrr_report.py
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs/results/nrr"
ROWS = ["ff", "ff+adapt", "BP-RSNN", "NRR-SNN", "deep BP-RSNN", "deep NRR-SNN"]
PAPER = {"ff": "36.25", "ff+adapt": "66.05", "BP-RSNN": "60.86 (+ sparse loop)", "NRR-SNN": "63.03",
         "deep BP-RSNN": "-", "deep NRR-SNN": "97.40 / 98.34"}


def pct(m, s=None):
    return f"{100 * m:.1f}" if s is None else f"{100 * m:.1f} ± {100 * s:.1f}"


def main():
    abl = {p.stem.split("-", 1)[1]: json.loads(p.read_text()) for p in sorted(OUT.glob("ablation-*.json"))}
    noise = {p.stem.split("-", 1)[1]: json.loads(p.read_text()) for p in sorted(OUT.glob("noise-*.json"))
             if not p.stem.startswith(("noise-image-", "noise-fbank-"))}
    dsets = list(abl)
    print(
        "| variant | "
        + " | ".join(f"{d} test (per sample) | {d} per frame | {d} s/epoch" for d in dsets)
        + " | paper (TIDigits) |"
    )
    print("|---|" + "---|" * (3 * len(dsets)) + "---|")
    for v in ROWS:
        cells = []
        for d in dsets:
            r = abl[d]["variants"].get(v)
            if r is None:
                cells += ["-", "-", "-"]
                continue
            nz = noise.get(d, {}).get("variants", {}).get(v)
            frame = pct(nz["rows"][0]["frame_accuracy"], nz["rows"][0]["frame_accuracy_sd"]) if nz else "-"
            sec = sum(x["seconds_per_epoch"] for x in r["runs"]) / len(r["runs"])
            cells += [pct(r["test_accuracy_mean"], r["test_accuracy_sd"]), frame, f"{sec:.1f}"]
        print(f"| {v} | " + " | ".join(cells) + f" | {PAPER[v]} |")
    for d, t in noise.items():
        print(f"\n{d}: accuracy % (Acc(P)/Acc(0)) under noise, mean ± sd over "
              f"{len(t['variants'].get('ff', {}).get('per_seed', []))} seeds\n")
        print("| variant | " + " | ".join(f"P = {p:.1f}" for p in t["p"]) + " |")
        print("|---|" + "---|" * len(t["p"]))
        for v in ROWS:
            if v in t["variants"]:
                rows = t["variants"][v]["rows"]
                print(
                    f"| {v} | "
                    + " | ".join(f"{pct(r['accuracy'], r['accuracy_sd'])} ({r['ratio']:.2f})" for r in rows)
                    + " |"
                )
    image_tables()
    noise_image_tables()
    tp = OUT / "timing.jsonl"
    if tp.exists():
        print("\n| network | reward-prop s/step | bptt s/step | bptt / reward-prop | load average "
              "|\n|---|---|---|---|---|")
        for line in tp.read_text().splitlines():
            r = json.loads(line)
            kind = "deep-image " if r["conn"].get("conv_input") == "image" else "deep " if r["conn"] else ""
            name = (
                kind
                + ",".join(map(str, r["hidden"]))
                + (f" (batch {r['batch']}, T = {r['steps']})" if kind == "deep-image " else "")
            )
            print(f"| {name} | {r['rules']['reward-prop']['seconds_per_step']:.4f} | "
                  f"{r['rules']['bptt']['seconds_per_step']:.4f} | "
                  f"{r['bptt_over_reward_prop']:.2f} | {r['loadavg'][0]:.1f} |")


def image_tables():
    """The learning-rate choice on validation (tune.jsonl) and the deep-image runs (image-ablation-*.json)."""
    tp = OUT / "tune.jsonl"
    if tp.exists():
        print("\n| dataset | variant | lr | epochs | best val (epoch) | val at 10 / 30 / last | train at best / last |")
        print("|---|---|---|---|---|---|---|")
        for line in tp.read_text().splitlines():
            r = json.loads(line)
            at = " / ".join(pct(v) for v in r["val_at_epoch"].values())
            print(f"| {r['dataset']} | {r['variant']} | {r['lr']:g} | {r['epochs']} | {pct(r['best_val'])} "
                  f"({r['best_epoch']}) | "
                  f"{at} | {pct(r['train_at_best'])} / {pct(r['train_last'])} |")
    for p in [*sorted(OUT.glob("image-ablation-*.json")), *sorted(OUT.glob("fbank-ablation-*.json"))]:
        t = json.loads(p.read_text())
        per_var = any("lr" in r for r in t["variants"].values())
        print(f"\n{p.name}: {t['dataset']} ({t['epochs']} epochs, seeds {t['seeds']}; " + (
            "lr per variant, chosen on validation" if per_var else
            f"reward-prop lr {t['lr_rp']}, StepLR {t['rp_step']}; bptt lr {t['lr_bp']}") + ")\n")
        print("| variant | lr | test % (per sample), mean ± sd | val % at best | best epochs | train % at best | "
              "s/epoch |")
        print("|---|---|---|---|---|---|---|")
        for v, r in t["variants"].items():
            runs = r["runs"]
            val = sum(x["val_accuracy"] for x in runs) / len(runs)
            tr = sum(x.get("train_accuracy_at_best", float("nan")) for x in runs) / len(runs)
            sec = sum(x["seconds_per_epoch"] for x in runs) / len(runs)
            lr = r.get("lr") or (t["lr_rp"] if "NRR" in v else t["lr_bp"])
            print(f"| {v} | {lr} | {pct(r['test_accuracy_mean'], r['test_accuracy_sd'])} | {pct(val)} | "
                  f"{', '.join(str(x['best_epoch']) for x in runs)} | {pct(tr)} | {sec:.1f} |")


def noise_image_tables():
    """Round 2's deep-image and round 3's shallow fbank-l1 models under noise (noise-{image,fbank}-*.json,
    scripts/nrr_noise.py --name noise-image / noise-fbank)."""
    for p in [*sorted(OUT.glob("noise-image-*.json")), *sorted(OUT.glob("noise-fbank-*.json"))]:
        t = json.loads(p.read_text())
        n = max(v["seeds"] for v in t["variants"].values())
        print(f"\n{p.name}: {t['dataset']}: accuracy % (Acc(P)/Acc(0)) under noise, mean ± sd over {n} seeds\n")
        print("| variant | " + " | ".join(f"P = {q:.1f}" for q in t["p"]) + " |")
        print("|---|" + "---|" * len(t["p"]))
        for v, rec in t["variants"].items():
            print(
                f"| {v} | "
                + " | ".join(f"{pct(r['accuracy'], r['accuracy_sd'])} ({r['ratio']:.2f})" for r in rec["rows"])
                + " |"
            )
        print("\n| variant | per-frame accuracy % at P = " + " / ".join(f"{q:.1f}" for q in t["p"]) + " |\n|---|---|")
        for v, rec in t["variants"].items():
            print(f"| {v} | " + " / ".join(pct(r["frame_accuracy"]) for r in rec["rows"]) + " |")


if __name__ == "__main__":
    main()
