"""Export a trained run to NIR and run the graph in snnTorch (and in snnkit's numpy NIR oracle) on test examples;
print how many output spikes differ from snnkit's own forward pass.

    python scripts/nir_peer_check.py RUN_DIR [--samples 64]

Needs the test extras (nir, nirtorch, snntorch). The graph is exported with dt = 1e-4 s, the step snnTorch's NIR
import assumes. Recurrent graphs run through snnTorch's per-node conversion under nirtorch's graph interpreter
(snnTorch 1.0's import_from_nir fails on them with nirtorch 2.6; see docs/export.md).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--samples", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(1)

    import nir
    import nirtorch
    from snntorch.import_nir import _nir_to_snntorch_module

    from snnkit.run import open_network
    from snnkit_cli.nir_export import network_to_nir, simulate_nir

    dt = 1e-4
    built, net, _ = open_network(args.run_dir, "last")
    net.plan(
        backend="reference", rules=()
    )  # the plain step loop (a rule's own scan, e.g. tssl-bp's, has the same forward)
    from snnkit_core.engine.data import indexed_batches

    cfg = built.config
    split = "test" if "test" in built.dataset.splits else built.dataset.splits[-1]
    data = built.dataset.load(split).subset(cfg.limit, cfg.seed)
    x, y, _ = next(iter(indexed_batches(data, args.samples, False, torch.Generator().manual_seed(0))))
    x = x.transpose(0, 1).float()  # (T, B, C)
    with torch.no_grad():
        out = net(x)
    ref = out.out_spikes if out.out_spikes is not None else out.out
    graph = network_to_nir(net, dt=dt)
    nir.write("/tmp/_peer_check.nir", graph)
    graph = nir.read("/tmp/_peer_check.nir")
    t0 = time.perf_counter()
    y_np = simulate_nir(graph, x.double().numpy(), dt)
    t_np = time.perf_counter() - t0
    res = {"run_dir": args.run_dir, "neuron": cfg.neuron, "conn": cfg.conn, "rules": list(cfg.rules),
           "readout": net.readout, "examples": int(x.shape[1]), "steps": int(x.shape[0]),
           "output_values": int(ref.numel()),
           "snnkit_output_spikes": float(ref.sum()) if out.out_spikes is not None else None,
           "numpy_nir_max_abs_diff": float(np.abs(y_np - ref.double().numpy()).max()), "numpy_seconds": round(t_np, 2)}
    if out.out_spikes is not None:
        node_map = {t: (lambda n: _nir_to_snntorch_module(n, init_hidden=True))
                    for t in (nir.Linear, nir.Affine, nir.CubaLIF)}
        with contextlib.redirect_stdout(io.StringIO()):  # the importer prints a warning per node
            model = nirtorch.nir_to_torch(graph, node_map)
        ys, state = [], None
        with torch.no_grad():
            for t in range(x.shape[0]):
                r = model(x[t]) if state is None else model(x[t], state)
                if isinstance(r, tuple):
                    r, state = r
                ys.append(r)
        ys = torch.stack(ys)
        res["snntorch_output_spikes"] = float(ys.sum())
        res["snntorch_mismatched_spikes"] = int((ys != ref).sum())
        res["snntorch_same_prediction"] = int((ys.sum(0).argmax(1) == ref.sum(0).argmax(1)).sum())
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
