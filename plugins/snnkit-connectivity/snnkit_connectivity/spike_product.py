"""Event-driven feedforward product: W x over all T steps when x is mostly zeros (spikes), at a cost that scales
with the spike rate. See docs/performance.md ("Event-driven sparse product").

A layer's feedforward current is one time-batched product, out (T·B, N) = x (T·B, K) Wᵀ, and its weight gradient
another, ∂L/∂W = gᵀ x. When x holds spikes, most of its entries are 0, and both products multiply mostly zeros.
:class:`SpikeProduct` computes both by visiting only the nonzero entries of x (``spike_product.c``: for every
nonzero x[m, k], one row of Wᵀ added into out[m] forward, one row of g added into ∂L/∂Wᵀ[k] backward); the
input gradient g W stays one dense product (g is dense). Any values work (zeros are skipped, the others
multiplied), so a layer whose input is not binary is still exact.

Whether it pays depends on the rate, the shape and the thread count (the C loops run on one thread; the dense
product uses all of torch's). :class:`SpikeLinear` (``mode="auto"``) therefore measures, once per shape, dtype and
thread count, where the two cross (:func:`crossing_rate`: both ways timed on random inputs at
:data:`CALIBRATION_RATES`, kept in ``$SNNKIT_CACHE`` so later runs on the machine choose alike), and on every call
takes the event-driven way when the rate of THIS call's input is below that crossing. What it chose, the crossing
and the last rate are in ``describe()`` (the run's manifest and every line of ``metrics.jsonl``). The C library
is built on first use with the system compiler into ``$SNNKIT_CACHE`` (default ``~/.cache/snnkit``); without a
compiler every call is dense and ``describe()`` says why.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

SOURCE = Path(__file__).with_name("spike_product.c")
CFLAGS = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-std=gnu99", "-fPIC", "-shared"]
#: input rates at which :func:`crossing_rate` times both ways
CALIBRATION_RATES = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)
#: rows of the calibration inputs (at most): the crossing barely depends on the row count, both ways scale with it
CALIBRATION_ROWS = 8192
MODES = ("auto", "dense", "sparse")

_state: dict = {"lib": None, "tried": False, "failure": None}
_crossings: dict[tuple, float] = {}


def source_hash() -> str:
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]


def _build(target: Path) -> None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler was found (install gcc or clang, or set $CC)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        r = subprocess.run([cc, *CFLAGS, f'-DSNNKIT_SRC_HASH="{source_hash()}"', str(SOURCE), "-o", tmp],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{cc} failed: {r.stderr.strip()[-500:]}")
        os.replace(tmp, target)  # atomic: a concurrent process never loads a half-written file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _cache() -> Path:
    return Path(os.environ.get("SNNKIT_CACHE") or Path.home() / ".cache" / "snnkit")


def lib() -> ctypes.CDLL | None:
    """The C products, built on first use (None where they cannot be: :func:`failure` says why)."""
    if _state["tried"]:
        return _state["lib"]
    _state["tried"] = True
    if os.environ.get("SNNKIT_CPU_KERNELS") == "0":
        _state["failure"] = "switched off by SNNKIT_CPU_KERNELS=0"
        return None
    target = _cache() / f"spike_product-{source_hash()}.so"
    try:
        if not target.exists():
            _build(target)
        so = ctypes.CDLL(str(target))
    except (OSError, RuntimeError) as exc:
        _state["failure"] = f"the event-driven product could not be built: {exc}"
        return None
    for name in ("spike_fwd_f32", "spike_fwd_f64", "spike_wgrad_f32", "spike_wgrad_f64"):
        getattr(so, name).restype = ctypes.c_long
    _state["lib"] = so
    return so


def failure() -> str | None:
    """Why the C products are not in use (None while they are)."""
    lib()
    return _state["failure"]


def run_kernel(name: str, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> None:
    """``name`` (``spike_fwd`` or ``spike_wgrad``) of the C library on contiguous 2-D a (M, K), b (·, N), out."""
    suffix = "f32" if a.dtype == torch.float32 else "f64"
    M, K = a.shape
    idx, val = torch.empty(K, dtype=torch.int64), a.new_empty(K)  # the kernel's per-row scratch
    getattr(lib(), f"{name}_{suffix}")(*(ctypes.c_void_p(t.data_ptr()) if isinstance(t, torch.Tensor) else
                                         ctypes.c_long(t) for t in (a, M, K, b, b.shape[1], out, idx, val)))


class SpikeProduct(torch.autograd.Function):
    """x (M, K) Wᵀ for W (N, K), visiting only x's nonzero entries forward and for ∂L/∂W; ∂L/∂x = g W (dense)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        out = x.new_empty(x.shape[0], weight.shape[0])
        run_kernel("spike_fwd", x, weight.detach().t().contiguous(), out)
        ctx.save_for_backward(x, weight)
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, weight = ctx.saved_tensors
        g = g.contiguous()
        gx = g @ weight if ctx.needs_input_grad[0] else None
        gw = None
        if ctx.needs_input_grad[1]:
            gwt = g.new_empty(x.shape[1], g.shape[1])  # (K, N) = ∂L/∂Wᵀ
            run_kernel("spike_wgrad", x, g, gwt)
            gw = gwt.t()
        return gx, gw


def spike_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` through :class:`SpikeProduct` (x of any leading shape, on the CPU)."""
    out = SpikeProduct.apply(x.reshape(-1, x.shape[-1]), weight).reshape(*x.shape[:-1], weight.shape[0])
    return out if bias is None else out + bias


def _median_time(fn, repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def crossing_rate(in_size: int, out_size: int, dtype: torch.dtype, rows: int = CALIBRATION_ROWS) -> float:
    """The highest input rate of :data:`CALIBRATION_RATES` up to which the event-driven forward + weight-gradient
    products were faster than the dense ones (0.0: never), measured once per (shape, dtype, thread count) and kept.
    Measured on ``rows`` random rows with each entry nonzero at the given rate, forward and weight gradient of both
    ways timed back to back (median of 3)."""
    key = (in_size, out_size, dtype, torch.get_num_threads())
    if key in _crossings:
        return _crossings[key]
    saved = _saved_crossings()
    name = f"{in_size}x{out_size}-{str(dtype).removeprefix('torch.')}-{key[3]}t"
    if name in saved:
        _crossings[key] = float(saved[name])
        return _crossings[key]
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(out_size, in_size, dtype=dtype, generator=gen)
    wt = w.t().contiguous()
    g = torch.randn(rows, out_size, dtype=dtype, generator=gen)
    out, gwt = g.new_empty(rows, out_size), g.new_empty(in_size, out_size)
    crossing = 0.0
    with torch.no_grad():
        for rate in CALIBRATION_RATES:
            x = (torch.rand(rows, in_size, generator=gen) < rate).to(dtype)
            dense = _median_time(lambda x=x: (x @ w.t(), g.t() @ x))
            sparse = _median_time(lambda x=x: (run_kernel("spike_fwd", x, wt, out),
                                               run_kernel("spike_wgrad", x, g, gwt)))
            if sparse >= dense:
                break
            crossing = rate
    _crossings[key] = crossing
    _save_crossing(name, crossing)
    return crossing


def _crossings_file() -> Path:
    return _cache() / f"spike_crossings-{source_hash()}.json"


def _saved_crossings() -> dict:
    try:
        return json.loads(_crossings_file().read_text())
    except (OSError, ValueError):
        return {}


def _save_crossing(name: str, crossing: float) -> None:
    """Keep a measured crossing in the cache, so every later run on this machine (a resume, a rerun with the same
    seed) makes the same choices and so the same sums: the timing is taken once per machine, not once per run."""
    saved = {**_saved_crossings(), name: crossing}
    try:
        fd, tmp = tempfile.mkstemp(suffix=".json", dir=_crossings_file().parent)
        with os.fdopen(fd, "w") as f:
            json.dump(saved, f)
        os.replace(tmp, _crossings_file())
    except OSError:
        pass  # an unwritable cache: measured again by the next process


class SpikeLinear(nn.Linear):
    """``nn.Linear`` whose product takes the event-driven way (:class:`SpikeProduct`) when its input is sparse
    enough: ``mode`` ``auto`` (below the measured :func:`crossing_rate`), ``sparse`` (always, where it can run) or
    ``dense`` (never). CPU, float32/float64 only; elsewhere, or without the C library, it is ``nn.Linear``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, mode: str = "auto"):
        super().__init__(in_features, out_features, bias=bias)
        if mode not in MODES:
            raise ValueError(f"spike product mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self.calls = {"sparse": 0, "dense": 0}
        self.rate: float | None = None  # nonzero fraction of the last input seen (auto)
        self.crossing: float | None = None

    def _sparse(self, x: torch.Tensor) -> bool:
        if self.mode == "dense" or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
            return False
        if self.weight.dtype != x.dtype or lib() is None:
            return False
        if self.mode == "sparse":
            return True
        self.rate = float(torch.count_nonzero(x)) / max(x.numel(), 1)
        rows = min(CALIBRATION_ROWS, max(x.numel() // self.in_features, 1))
        self.crossing = crossing_rate(self.in_features, self.out_features, x.dtype, rows)
        return self.rate < self.crossing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sparse = self._sparse(x)
        self.calls["sparse" if sparse else "dense"] += 1
        return spike_linear(x, self.weight, self.bias) if sparse else F.linear(x, self.weight, self.bias)

    def describe(self) -> dict:
        """What the product did so far: mode, calls each way, the crossing rate and the last input rate."""
        d = {"mode": self.mode, "sparse_calls": self.calls["sparse"], "dense_calls": self.calls["dense"]}
        if self.crossing is not None:
            d.update(crossing_rate=self.crossing, last_rate=round(self.rate, 4))
        if self.mode != "dense" and failure() is not None:
            d["unavailable"] = failure()
        return {"spike_product": d}
