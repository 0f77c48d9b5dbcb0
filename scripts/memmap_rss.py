"""Peak memory and per-epoch data time of a split held in memory (float32) vs memory-mapped (uint8 counts).

SSC-sized synthetic spike counts (default 75,466 x 250 x 140, SSC's training split as ASRC bins it) are written
once, chunk by chunk, as a uint8 ``.npy``; then two child processes each run one epoch of the training loop's
batching (``snnkit_core.engine.data.indexed_batches``: the training loop's order and reads, shuffled batches,
read, made float32):

* ``memory``: today's in-memory path: the split as one float32 tensor (N, T, C) (what ``bin_events`` builds),
  filled from the file in chunks;
* ``disk``: the split as :func:`snnkit_datasets.diskarray.open_array` maps it (uint8), converted per batch.

Each child reports its peak resident set (``VmHWM``), its peak anonymous memory (``RssAnon``, sampled every
20 ms: what the process really owns; file-backed pages of a map are the kernel's page cache and are dropped
under pressure), the time to load and the time of one epoch of batches. With ``--step-hidden`` a few training
steps of a ``lif``/``self``/``bptt`` network on the same batches are timed too, to set the data time against a
training epoch. The synthetic counts are a random block of 2,048 examples (Poisson, mean 0.05 per bin and channel)
repeated with a per-chunk roll: their values do not matter for memory or time.

    OMP_NUM_THREADS=1 python scripts/memmap_rss.py [--n 75466] [--steps 250] [--channels 140] [--batch-size 256]

The memory path is skipped (and says so) when ``MemAvailable`` is under 1.3 x its float32 size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def status() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[k] = int(v.split()[0]) * 1024
    return out


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


class AnonPeak:
    """Samples RssAnon every 20 ms in a thread; ``peak`` is the largest seen."""

    def __init__(self):
        self.peak = status()["RssAnon"]
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, status()["RssAnon"])

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, status()["RssAnon"])
        return self.peak


def write_counts(path: Path, n: int, steps: int, channels: int) -> None:
    from snnkit_datasets.diskarray import store_counts, write_array

    rng = np.random.default_rng(0)
    block = rng.poisson(0.05, (2048, steps, channels)).astype(np.uint8)

    def fill(out):
        for i, lo in enumerate(range(0, n, 2048)):
            hi = min(n, lo + 2048)
            store_counts(out, lo, np.roll(block, i, axis=0)[: hi - lo])

    write_array(path, (n, steps, channels), np.uint8, fill)


def child(mode: str, path: str, batch_size: int, step_hidden: str, step_batches: int) -> dict:
    import torch

    from snnkit_core.contract.interfaces import ArrayData
    from snnkit_core.engine.data import indexed_batches

    torch.set_num_threads(1)
    peak = AnonPeak()
    base = status()
    t0 = time.perf_counter()
    from snnkit_datasets.diskarray import open_array

    mapped = open_array(path)
    n, steps, channels = mapped.shape
    y = torch.zeros(n, dtype=torch.int64)
    if mode == "memory":
        x = torch.empty((n, steps, channels), dtype=torch.float32)
        for lo in range(0, n, 4096):
            x[lo : lo + 4096] = mapped[lo : lo + 4096].float()
        del mapped
    else:
        x = mapped
    data = ArrayData(x, y)
    load_s = time.perf_counter() - t0
    after_load = status()
    t0 = time.perf_counter()
    total = 0.0
    for xb, _, _ in indexed_batches(data, batch_size, True, torch.Generator().manual_seed(0)):
        total += float(xb[:, :, 0].sum())  # touch the batch
    epoch_s = time.perf_counter() - t0
    res = {"mode": mode, "n": n, "steps": steps, "channels": channels, "dtype": str(x.dtype), "batch_size": batch_size,
           "load_s": load_s, "epoch_data_s": epoch_s, "checksum": total,
           "rss_before_mb": base["VmRSS"] / 2**20, "rss_after_load_mb": after_load["VmRSS"] / 2**20,
           "peak_rss_mb": status()["VmHWM"] / 2**20, "peak_anon_mb": peak.stop() / 2**20,
           "rss_file_end_mb": status()["RssFile"] / 2**20}
    if step_hidden:
        res.update(step_time(data, batch_size, step_hidden, step_batches))
    return res


def step_time(data, batch_size: int, hidden: str, k: int) -> dict:
    """Seconds per training step (forward + backward + Adam) of lif/self/bptt on batches of this data."""
    import torch

    from snnkit_core.engine.config import TrainConfig
    from snnkit_core.engine.data import indexed_batches, to_batch
    from snnkit_core.engine.training import build, make_optimizer

    cfg = TrainConfig(neuron="lif", conn="self", rules=("bptt",), dataset="arrays",
                      hidden=tuple(int(h) for h in hidden.split(",")), batch_size=batch_size, device="cpu",
                      params={"dataset": {"path": _tiny_npz(data.x.shape[2])}})
    built = build(cfg)
    opt = make_optimizer(built)
    rule = built.gradient_rule
    times = []
    for i, (x, y, idx) in enumerate(indexed_batches(data, batch_size, True, torch.Generator().manual_seed(1))):
        if i > k:
            break
        t0 = time.perf_counter()
        rule.train_step(built.network, to_batch(built, x, y % 2, idx), opt)
        if i:  # the first step warms up
            times.append(time.perf_counter() - t0)
    return {"train_step_s": float(np.median(times)), "train_hidden": hidden}


def _tiny_npz(channels: int) -> str:
    path = Path(tempfile.gettempdir()) / f"memmap_rss_spec_{channels}.npz"
    if not path.exists():
        x = np.zeros((2, 1, channels), np.float32)
        np.savez(path, x_train=x, y_train=np.array([0, 1]), x_test=x, y_test=np.array([0, 1]))
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=75_466)
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--channels", type=int, default=140)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--step-hidden", default="", help="e.g. 128,128: also time training steps of this network")
    ap.add_argument("--step-batches", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where the .npy goes (default: a temporary folder, deleted)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child[0], a.child[1], a.batch_size, a.step_hidden, a.step_batches)))
        return
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        path = Path(tmp) / "counts.npy"
        t0 = time.perf_counter()
        write_counts(path, a.n, a.steps, a.channels)
        print(f"wrote {path.stat().st_size / 2**30:.2f} GiB of uint8 counts {a.n} x {a.steps} x {a.channels} in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        results = []
        for mode in ("disk", "memory"):
            need = 4 * a.n * a.steps * a.channels
            if mode == "memory" and mem_available() < 1.3 * need:
                print(f"memory: skipped, needs {need / 2**30:.1f} GiB and {mem_available() / 2**30:.1f} GiB is "
                      f"available")
                continue
            cmd = [sys.executable, __file__, "--child", mode, str(path), "--batch-size", str(a.batch_size),
                   "--step-hidden", a.step_hidden, "--step-batches", str(a.step_batches)]
            out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
            if out.returncode:
                print(f"{mode}: failed\n{out.stderr}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(r)
            print(f"{mode:6s} x {r['dtype']:13s} load {r['load_s']:6.1f} s  epoch of batches {r['epoch_data_s']:6.1f} "
                  f"s  "
                  f"peak RSS {r['peak_rss_mb']:8.0f} MiB  peak anon {r['peak_anon_mb']:8.0f} MiB  "
                  f"file-backed at end {r['rss_file_end_mb']:7.0f} MiB"
                  + (f"  train step {r['train_step_s']:.2f} s" if "train_step_s" in r else ""), flush=True)
        if len(results) == 2 and results[0]["checksum"] != results[1]["checksum"]:
            print("WARNING: the two paths read different data")
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
