#!/usr/bin/env bash
# The GPU checks of issue "Fast GPU training", as one prepared run for a machine with a CUDA device
# (the `device` tool's `run`; $OUT is where results go, default ./gpu-out). It does not download anything:
# torch (a CUDA build, which brings Triton) must already be importable; the snnkit packages are installed
# here in editable mode without dependencies.
#
#   bash scripts/gpu_check.sh            # ~5-8 min on an H100/H200
#
# Writes: $OUT/env.txt, $OUT/cuda-tests.txt (kernel parity on CUDA, forward and backward),
# $OUT/bench.json + bench.txt (`snnkit bench`, every workload, reference / torch / triton in one process),
# $OUT/memory-vs-T.json (peak memory of the fast path for growing T).
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
python -m pip install -q --no-deps --no-build-isolation -e . -e plugins/snnkit-neurons -e plugins/snnkit-connectivity \
    -e plugins/snnkit-rules -e plugins/snnkit-datasets >"$OUT/install.txt" 2>&1
{ nvidia-smi; python -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"; } >"$OUT/env.txt" 2>&1
timeout 180 python -m pytest -q -m cuda plugins tests -p no:cacheprovider >"$OUT/cuda-tests.txt" 2>&1
timeout 300 snnkit bench --device cuda --repeats 10 --warmup 3 --json >"$OUT/bench.json" 2>"$OUT/bench.err"
python - "$OUT" <<'PY' >"$OUT/bench.txt" 2>&1
import json, sys
d = json.load(open(f"{sys.argv[1]}/bench.json"))
for r in d["results"]:
    if "skipped" in r:
        print(r["workload"], "skipped:", r["skipped"]); continue
    for p, v in r["paths"].items():
        if "error" in v:
            print(f'{r["workload"]:22s} {p:10s} n/a: {v["error"][:70]}'); continue
        print(f'{r["workload"]:22s} {p:10s} {v["median_ms"]:9.2f} ms  peak {v["peak_mb"] or 0:8.0f} MB  '
              f'x{v["speedup_vs_reference"]:.1f} vs ref  bound {r["lower_bound_ms"]:.2f} ms  {v["fraction_of_bound"]:.3f} of bound')
PY
timeout 120 python - >"$OUT/memory-vs-T.json" 2>"$OUT/memory.err" <<'PY'
import json, torch
from snnkit_cli.bench import WORKLOADS, bench_workload
from attrs import evolve
dev = torch.device("cuda")
w0 = WORKLOADS["scsr-ti46"][0]
rows = []
for T in (50, 100, 200, 400):
    r = bench_workload(evolve(w0, name=f"scsr-ti46/bptt T={T}", steps=T), dev, paths=("torch", "triton"), warmup=1, repeats=3)
    rows.append({"T": T, **{p: v.get("peak_mb") for p, v in r["paths"].items()}})
print(json.dumps(rows, indent=1))
PY
echo done
