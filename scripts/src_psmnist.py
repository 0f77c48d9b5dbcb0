"""PS-MNIST: dense vs SRC (k=12) vs ASRC (K=51), 64-128-128 lif-soft + bptt with the paper's recipe (spec §5.4).

Records, per connectivity: per-epoch test accuracy and loss, seconds per epoch, peak memory (CUDA
max_memory_allocated when on a GPU, else the peak RSS of a fresh subprocess per connectivity), and the learned
ASRC spans. With ``--step-bench N`` it also times N training steps (forward + backward + AdamW step) of one
batch with the fast scan (``backend=torch``: chunked SRC, fused dense/ASRC loops) against the plain step-by-step
reference scan (``backend=reference``), in the same process, and reports the ratio.

Full paper scale (60k images, 200 epochs, batch 256) needs a GPU. A small CPU version:

    nice -n 10 python scripts/src_psmnist.py --limit 2000 --epochs 2 --threads 1 --step-bench 2 \
        --out /tmp/src-psmnist-cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

SPANS = {"dense": {}, "src": {"skip_span": 12}, "asrc": {"max_span": 51}}


def config(conn: str, args):
    from snnkit_core.engine.config import TrainConfig

    params = dict(SPANS[conn])
    if conn == "src" and args.skip_span:
        params["skip_span"] = args.skip_span
    if conn == "asrc" and args.max_span:
        params["max_span"] = args.max_span
    return TrainConfig(
        neuron="lif-soft", conn=conn, rules=("bptt",), dataset=args.dataset, data_dir=args.data_dir,
        hidden=tuple(int(h) for h in args.hidden.split(",")), epochs=args.epochs, batch_size=args.batch_size,
        lr=1e-3, weight_decay=0.01, dropout=0.0, bias=True, init="default", readout="linear", seed=0,
        device=args.device, limit=args.limit,
        params={"conn": params, "rule.bptt": {"optimizer": "adamw", "scheduler": args.scheduler}},
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_one(conn: str, args) -> dict:
    """Train one connectivity in this process and return its record."""
    from snnkit_core.engine.data import load_protocol_splits
    from snnkit_core.engine.training import build, train

    torch.set_num_threads(args.threads)
    cfg = config(conn, args)
    built = build(cfg)
    data = load_protocol_splits(built)[0::2]
    rss_before = peak_rss_mb()
    if built.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(built.device)
    epochs = []
    for rec in train(cfg, built=built, data=data):
        epochs.append({
            "epoch": rec.epoch, "test_accuracy": rec.test_accuracy, "test_loss": rec.test_loss,
            "train_loss": rec.train_loss, "train_accuracy": rec.train_accuracy, "seconds": rec.seconds, "lr": rec.lr,
            "spans": {k: v.get("span") for k, v in rec.extra.get("recurrence", {}).items()},
        })
        print(f"[{conn}] epoch {rec.epoch}: test acc {rec.test_accuracy:.4f}, {rec.seconds:.1f} s", file=sys.stderr,
              flush=True)
    out = {
        "conn": conn, "params": cfg.params["conn"], "epochs": epochs, "n_train": len(data[0]), "n_test": len(data[1]),
        "device": str(built.device), "threads": torch.get_num_threads(),
    }
    if built.device.type == "cuda":
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated(built.device) / 2**20
        out["peak_memory_kind"] = "cuda max_memory_allocated"
    else:
        out["peak_memory_mb"] = peak_rss_mb()
        out["peak_memory_kind"] = "peak RSS of the process (includes the data set and torch itself)"
        out["rss_before_training_mb"] = rss_before
    return out


def step_bench(conn: str, args) -> dict:
    """Seconds per training step, fast scan vs reference scan, same network, same batch, same process."""
    from snnkit_core.engine.training import build, make_optimizer

    torch.set_num_threads(args.threads)
    cfg = config(conn, args)
    built = build(cfg)
    net, rule = built.network, built.gradient_rule
    g = torch.Generator().manual_seed(0)
    B = args.bench_batch
    T = 784
    x = torch.rand(T, B, built.dataset.input_size, generator=g)
    y = torch.randint(0, built.dataset.num_classes, (B,), generator=g)
    opt = make_optimizer(built)
    res = {}
    for backend in ("torch", "reference", "torch", "reference"):  # interleaved, take the minimum
        net.backend = backend
        times = []
        for _ in range(args.step_bench):
            t0 = time.perf_counter()
            out = net(x)
            loss = rule.loss(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        res[backend] = min(times + ([res[backend]] if backend in res else []))
    return {"conn": conn, "batch": B, "T": T, "seconds_per_step_fast": res["torch"],
            "seconds_per_step_reference": res["reference"], "speedup": res["reference"] / res["torch"],
            "threads": torch.get_num_threads()}


def _step_loop(neuron, current, rec):
    """The reference scan written with ``unbind`` (one autograd node for the input instead of one full-size
    gradient per ``current[t]``): a fairer per-step baseline than the core oracle."""
    T, B, N = current.shape
    state = neuron.initial_state(B, current.device, current.dtype)
    zeros = current.new_zeros(B, N)
    ys, ss = [], []
    for t, i_t in enumerate(current.unbind(0)):
        past = [ys[t - j] if t - j >= 0 else zeros for j in range(1, rec.span + 1)]
        y, s, state = neuron.step(i_t + rec.recurrent_input(past), state)
        ys.append(y)
        ss.append(s)
    return torch.stack(ys), torch.stack(ss)


def layer_bench(conn: str, args) -> dict:
    """One hidden layer (N = last hidden size, T = 784): forward + backward seconds of the fast scan, the core's
    reference scan and the unbind step loop, interleaved, minimum of ``--layer-bench`` repeats."""
    from snnkit_core.contract.plugins import get_registry
    from snnkit_core.contract.scan import reference_scan

    torch.set_num_threads(args.threads)
    reg = get_registry()
    cfg = config(conn, args)
    N, B, T = int(args.hidden.split(",")[-1]), args.bench_batch, 784
    torch.manual_seed(0)
    neuron = reg.get("neuron", "lif-soft")(N)
    rec = reg.get("connectivity", conn)(**cfg.params["conn"]).make_recurrence(0, N)
    cur = (torch.randn(T, B, N) * 0.8 + 0.3).requires_grad_()
    fns = {"fast": lambda: rec.scan(neuron, cur), "reference": lambda: reference_scan(neuron, cur, rec),
           "steploop": lambda: _step_loop(neuron, cur, rec)}
    best = {k: float("inf") for k in fns}
    for _ in range(args.layer_bench):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            y, _ = fn()
            y.sum().backward()
            best[k] = min(best[k], time.perf_counter() - t0)
            cur.grad = None
    return {"conn": conn, "N": N, "batch": B, "T": T, "seconds": best,
            "speedup_vs_reference": best["reference"] / best["fast"],
            "speedup_vs_steploop": best["steploop"] / best["fast"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conns", default="dense,src,asrc")
    ap.add_argument("--dataset", default="psmnist")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--hidden", default="64,128,128")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--limit", type=int, default=None, help="at most this many train (and test) images")
    ap.add_argument("--scheduler", default="onecycle", choices=("none", "onecycle", "cosine"))
    ap.add_argument("--skip-span", type=int, default=0)
    ap.add_argument("--max-span", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--step-bench", type=int, default=0, help="time this many steps per backend (0: skip)")
    ap.add_argument("--bench-batch", type=int, default=32)
    ap.add_argument("--layer-bench", type=int, default=0, help="repeats of the one-layer scan benchmark (0: skip)")
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--single", default=None, help=argparse.SUPPRESS)  # internal: one conn in a subprocess
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    if args.single:
        print(json.dumps(run_one(args.single, args)))
        return
    conns = [c for c in args.conns.split(",") if c]
    result = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "torch": torch.__version__,
              "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "runs": [],
              "step_bench": [], "layer_bench": []}
    if not args.no_train:
        for conn in conns:
            # one subprocess per connectivity, so the CPU peak RSS belongs to that run alone
            cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--single", conn]
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
            if proc.returncode != 0:
                raise SystemExit(f"{conn} failed (exit {proc.returncode})")
            result["runs"].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    if args.step_bench:
        for conn in conns:
            r = step_bench(conn, args)
            print(f"[{conn}] step: fast {r['seconds_per_step_fast']:.3f} s, reference "
                  f"{r['seconds_per_step_reference']:.3f} s, "
                  f"x{r['speedup']:.2f}", file=sys.stderr, flush=True)
            result["step_bench"].append(r)
    if args.layer_bench:
        for conn in conns:
            r = layer_bench(conn, args)
            print(f"[{conn}] layer fwd+bwd: {r['seconds']}, x{r['speedup_vs_reference']:.2f} vs reference, "
                  f"x{r['speedup_vs_steploop']:.2f} vs step loop", file=sys.stderr, flush=True)
            result["layer_bench"].append(r)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
