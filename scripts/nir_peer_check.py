"""Export a trained run to NIR, run the graph in snnTorch (snnkit_cli.nir_snntorch) and in snnkit's numpy NIR
oracle on a whole split, and compare the decoded classes (and the output values) with snnkit's own prediction.

    python scripts/nir_peer_check.py RUN_DIR [--split test] [--limit N] [--weights best] [--out FILE.json]

Needs the test extras (nir, nirtorch, snntorch). The graph is the one `snnkit export` writes (best weights, the
decoding node included); the class is argmax of the output node's values summed over time (docs/export.md).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def compare(run_dir: str, split: str, limit: int | None, weights: str, batch: int = 64) -> dict:
    import nir

    from snnkit.run import open_network
    from snnkit_cli import nir_snntorch
    from snnkit_cli.nir_export import export_run, simulate_nir
    from snnkit_core.engine.data import indexed_batches

    built, net, used = open_network(run_dir, weights)
    with tempfile.TemporaryDirectory() as tmp:
        export_run(run_dir, Path(tmp) / "g.nir", weights=weights)
        graph = nir.read(Path(tmp) / "g.nir")
    dt = float(graph.metadata["dt"])
    data = built.dataset.load(split)
    data = data.subset(limit, 0) if limit else data
    n = same_snntorch = same_numpy = same_counts = correct = 0
    max_diff = max_diff_np = 0.0
    t0 = time.perf_counter()
    for x, y, _ in indexed_batches(data, batch, False, torch.Generator().manual_seed(0)):
        x = x.transpose(0, 1).float()  # (T, B, C)
        with torch.no_grad():
            out = net(x)
        ours = built.gradient_rule.logits(out).argmax(1)
        ref = out.out if graph.metadata["output"] != "spikes" else out.out_spikes
        theirs = nir_snntorch.run(graph, x)
        y_np = simulate_nir(graph, x.double().numpy(), dt)
        n += len(y)
        correct += int((ours == y).sum())
        same_snntorch += int((nir_snntorch.decode(theirs) == ours).sum())
        same_numpy += int((torch.from_numpy(y_np.sum(0).argmax(-1)) == ours).sum())
        if out.out_spikes is not None:  # what decoding by spike counts instead would have said
            same_counts += int((out.out_spikes.sum(0).argmax(1) == ours).sum())
        max_diff = max(max_diff, float((theirs - ref).abs().max()))
        max_diff_np = max(max_diff_np, float(np.abs(y_np - ref.double().numpy()).max()))
    cfg = built.config
    return {"run_dir": str(run_dir), "weights": used, "neuron": cfg.neuron, "conn": cfg.conn, "rules": list(cfg.rules),
            "dataset": cfg.dataset, "split": split, "readout": net.readout, "graph_output": graph.metadata["output"],
            "examples": n, "snnkit_accuracy": correct / max(n, 1), "snntorch_same_class": same_snntorch,
            "numpy_same_class": same_numpy,
            "spike_count_same_class": same_counts if net.readout == "spiking" else None,
            "snntorch_max_abs_diff": max_diff, "numpy_max_abs_diff": max_diff_np,
            "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, help="at most N examples of the split (default: all)")
    ap.add_argument("--weights", default="best", choices=["best", "last"])
    ap.add_argument("--out", help="also write the result as JSON here")
    args = ap.parse_args()
    res = compare(args.run_dir, args.split, args.limit, args.weights)
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
