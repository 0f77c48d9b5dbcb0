"""Time the candidate CPU implementations of one ``lif`` layer scan (forward + backward), in one process.

    OMP_NUM_THREADS=1 python scripts/cpu_scan_candidates.py [--steps 100 --batch 50 --size 400 --rounds 5]

Candidates (all for lif + self term, sigmoid surrogate; the shape of one scsr-ti46 layer by default):

* ``reference``: the step loop, one autograd node per op per step (snnkit_core.contract.scan.reference_scan);
* ``compiled-step``: the same loop with the step function compiled by ``torch.compile`` (inductor, C++ on
  the CPU); still one autograd graph per step;
* ``torch-loop``: snnkit's one-node LIFScanCPU with its torch loop over preallocated buffers
  (``SNNKIT_CPU_KERNELS=0``);
* ``c``: the same node calling the C scans (kernels/cpu_scan.c), the path snnkit ships.

Interleaved rounds; prints the median ms per candidate, its ratio to ``c`` and ``uptime``'s load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--size", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-compile", action="store_true")
    return ap.parse_args()


def compiled_scan(step, n, rec):
    """The LIF step loop with ``step`` (a compiled ``lif_step``) over a self-recurrence."""
    from snnkit_neurons.lif import LIFState

    def scan(cur):
        T, B, N = cur.shape
        state = LIFState(cur.new_zeros(B, N), cur.new_zeros(B, N))
        ys, ss = [], []
        for i_t in cur.unbind(0):
            y, s, _, state = step(i_t + rec.weight * state.psc, state, n.leak, n.tau_s, n.v_th, n.surrogate)
            ys.append(y)
            ss.append(s)
        return torch.stack(ys), torch.stack(ss)
    return scan


def candidates(a, n, rec, fwd_bwd) -> dict:
    """name -> scan function: the reference, the torch loop, the C kernel and (unless --no-compile) the
    compiled step loop."""
    from snnkit_core.contract.scan import reference_scan
    from snnkit_neurons.lif import lif_step

    def torch_loop(cur):
        os.environ["SNNKIT_CPU_KERNELS"] = "0"
        try:
            return n.fast_scan(cur, rec)
        finally:
            del os.environ["SNNKIT_CPU_KERNELS"]

    cands = {
        "reference": lambda cur: reference_scan(n, cur, rec),
        "torch-loop": torch_loop,
        "c": lambda cur: n.fast_scan(cur, rec),
    }
    if not a.no_compile:
        t0 = time.perf_counter()
        step = torch.compile(lif_step, dynamic=False)
        fwd_bwd(compiled_scan(step, n, rec))
        print(f"compiled-step: first call (compile) {time.perf_counter() - t0:.1f} s")
        cands["compiled-step"] = compiled_scan(step, n, rec)
    return cands


def main():
    a = parse_args()
    torch.set_num_threads(a.threads)
    from snnkit_core.engine.host import keep_freed_memory

    keep_freed_memory()  # as snnkit train/eval/bench do
    from snnkit_connectivity.scsr import SelfRecurrence
    from snnkit_neurons.kernels import cpu
    from snnkit_neurons.lif import LIF

    torch.manual_seed(0)
    n = LIF(a.size)
    rec = SelfRecurrence(a.size, 0.5)
    x = torch.randn(a.steps, a.batch, a.size) * 1.5
    assert cpu.lib() is not None, cpu.failure

    def fwd_bwd(fn):
        cur = x.clone().requires_grad_()
        y, s = fn(cur)
        (y.sum() + s.sum()).backward()
        return cur.grad

    cands = candidates(a, n, rec, fwd_bwd)
    ref = fwd_bwd(cands["reference"])
    for name, fn in cands.items():  # all candidates agree before they are timed
        g = fwd_bwd(fn)
        assert (g - ref).abs().max() <= 1e-5 * max(1.0, ref.abs().max().item()), name
    times = {k: [] for k in cands}
    for _ in range(a.rounds):
        for name, fn in cands.items():
            t0 = time.perf_counter()
            fwd_bwd(fn)
            times[name].append(time.perf_counter() - t0)
    med = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    print(f"T {a.steps} B {a.batch} N {a.size}, {a.threads} thread(s), load {os.getloadavg()[0]:.1f}")
    for k, v in med.items():
        print(f"{k:14s} {v:9.1f} ms   {v / med['c']:6.1f} x c")


if __name__ == "__main__":
    main()
