"""ST-RSBP training-step time, fast path against the reference computation, in ONE process: the paper's Fashion-MNIST
network (784-400-R400-10, T = 400, Poisson input, batch 16), the two models stepped on the same batches in
interleaved rounds, medians (docs/methods/st-rsbp.md, "Speed").

    OMP_NUM_THREADS=1 python plugins/snnkit-rules/scripts/st_rsbp_bench.py --data-dir ROOT [--dataset fmnist] \
        [--threads 1] [--rounds 6]

ROOT holds ``mnist/`` or ``fmnist/`` (the same shape; the work per step differs only with the spike density).
The reference is the rule with the C library and the factored backward replaced by the torch loop and formulas.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import contextmanager

import torch

import snnkit
import snnkit_rules.st_rsbp as st
from snnkit_rules.st_rsbp_psp import t_psp_ratio


@contextmanager
def reference():
    """Every fast piece of the rule replaced by the computation it replaced."""
    saved = {k: getattr(st, k) for k in ("find", "weighted_dpoly", "phi_t", "system_matrix_from_psp")}
    st.find = lambda *a, **k: None
    st.weighted_dpoly = lambda table, a, b, w, clip_post: (w * st.dpoly(table, a, b, clip_post)).sum(-1)
    st.phi_t = lambda e, w, op, oq, nu, v: torch.einsum("blk,bl->bk", w * t_psp_ratio(e, op, oq) / nu, v)
    st.system_matrix_from_psp = lambda om, wr, er, o, nu: st.system_matrix(om, wr, t_psp_ratio(er, o, o), nu)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(st, k, v)


def build(data_dir: str, dataset: str):
    return snnkit.build(neuron="lif-rsbp", conn="reservoir", rules="st-rsbp", dataset=dataset, hidden=[400, 400],
                        batch_size=16, limit=2000, data_dir=data_dir, lr=1e-3,
                        params={"neuron": {"v_th": 15}, "conn": {"topology": "dense"},
                                "dataset": {"encoding": "poisson", "steps": 400}})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--dataset", default="mnist", choices=("mnist", "fmnist"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    fast, ref = build(args.data_dir, args.dataset), build(args.data_dir, args.dataset)
    batches = list(fast.batches(fast.splits()[0], 0))[: args.rounds + 1]
    opt_f, opt_r = fast.optimizer(), ref.optimizer()
    times: dict[str, list[float]] = {"fast": [], "reference": [], "eval": []}
    for i, b in enumerate(batches):  # round 0 warms up
        t0 = time.perf_counter()
        fast.step(b, opt_f)
        t1 = time.perf_counter()
        with reference():
            ref.step(b, opt_r)
        t2 = time.perf_counter()
        with torch.no_grad():
            fast.rules[0].eval_step(fast.network, b)
        t3 = time.perf_counter()
        if i:
            for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
                times[k].append(v)
        print(f"round {i}: fast {t1 - t0:.3f} s, reference {t2 - t1:.3f} s, eval batch {t3 - t2:.3f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"median s/step: fast {med['fast']:.4f}, reference {med['reference']:.4f} "
          f"({med['reference'] / med['fast']:.1f}x); eval batch {med['eval']:.4f}")
    print(f"60,000-image epoch (3,750 steps): {3750 * med['fast'] / 60:.1f} min fast, "
          f"{3750 * med['reference'] / 60:.1f} min reference; 10,000-image test evaluation "
          f"{625 * med['eval'] / 60:.1f} min")


if __name__ == "__main__":
    main()
