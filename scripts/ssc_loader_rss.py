"""Peak memory of the real ``ssc`` loader on a synthetic SSC-sized ``ssc_train.h5``: storage=memory vs disk.

Writes ``<dir>/ssc/ssc_train.h5`` (and small valid/test files) in the published format: ``--n`` examples
(default 75,466, SSC's training split) with Poisson(``--events``) spikes each, uniform over 1 s and the 700
channels. Then, each in a fresh process with its own feature cache:

* ``memory``: ``SSC(storage="memory").load("train")``: today's path, all events read, then one float32 tensor;
* ``disk-first``: ``SSC(storage="disk").load("train")`` with an empty cache: bins 512 examples at a time into
  ``<cache>/ssc/<key>.uint8.npy``;
* ``disk-cached``: the same load again (maps the file), then one epoch of the training loop's batching.

Reported: peak resident set (VmHWM), peak anonymous memory (RssAnon, sampled every 20 ms) and seconds.

    OMP_NUM_THREADS=1 python scripts/ssc_loader_rss.py [--n 75466] [--events 3000] [--dir /tmp/x]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from memmap_rss import AnonPeak, mem_available, status  # noqa: E402


def write_h5(path: Path, n: int, events: int, seed: int = 0) -> None:
    import h5py

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        t = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float16))
        u = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
        for lo in range(0, n, 1024):
            hi = min(n, lo + 1024)
            k = rng.poisson(events, hi - lo)
            t[lo:hi] = [np.sort(rng.uniform(0, 1.0, m)).astype(np.float16) for m in k]
            u[lo:hi] = [rng.integers(0, 700, m).astype(np.uint16) for m in k]
        f.create_dataset("labels", data=(np.arange(n) % 35).astype(np.uint16))


def child(mode: str, root: str) -> dict:
    import torch

    from snnkit_datasets.heidelberg import SSC

    torch.set_num_threads(1)
    peak = AnonPeak()
    t0 = time.perf_counter()
    d = SSC(data_dir=root, storage="memory" if mode == "memory" else "disk").load("train")
    load_s = time.perf_counter() - t0
    res = {"mode": mode, "n": len(d), "dtype": str(d.x.dtype), "load_s": load_s}
    if mode == "disk-cached":
        from snnkit_core.engine.data import indexed_batches

        t0 = time.perf_counter()
        for _ in indexed_batches(d, 256, True, torch.Generator().manual_seed(0)):
            pass
        res["epoch_data_s"] = time.perf_counter() - t0
    res.update(peak_rss_mb=status()["VmHWM"] / 2**20, peak_anon_mb=peak.stop() / 2**20)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=75_466)
    ap.add_argument("--events", type=int, default=3000, help="mean spikes per example")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(*a.child)))
        return
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        root = Path(tmp) / "data"
        t0 = time.perf_counter()
        write_h5(root / "ssc" / "ssc_train.h5", a.n, a.events)
        for s in ("valid", "test"):
            write_h5(root / "ssc" / f"ssc_{s}.h5", 8, 10, seed=1)
        size = (root / "ssc" / "ssc_train.h5").stat().st_size
        print(f"wrote ssc_train.h5: {a.n} examples x ~{a.events} spikes, {size / 2**30:.2f} GiB in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        cache = Path(tmp) / "cache"
        results = []
        for mode in ("disk-first", "disk-cached", "memory"):
            need = 4 * a.n * 250 * 140 + 2 * size
            if mode == "memory" and mem_available() < 1.3 * need:
                print(f"memory: skipped, needs about {need / 2**30:.1f} GiB and {mem_available() / 2**30:.1f} GiB is "
                      f"available")
                continue
            env = dict(os.environ, OMP_NUM_THREADS="1", SNNKIT_CACHE=str(cache))
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(root)], capture_output=True, text=True, env=env
            )
            if out.returncode:
                print(f"{mode}: failed\n{out.stderr[-3000:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(r)
            print(
                f"{mode:12s} x {r['dtype']:13s} load {r['load_s']:6.1f} s  peak RSS {r['peak_rss_mb']:8.0f} MiB  "
                f"peak anon {r['peak_anon_mb']:8.0f} MiB"
                + (f"  epoch of batches {r['epoch_data_s']:.1f} s" if "epoch_data_s" in r else ""),
                flush=True,
            )
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
