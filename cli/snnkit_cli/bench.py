"""Training-step benchmarks: the same network on each implementation path, ratios measured in one run.

For each workload and path: median time of a full training step (forward, backward, optimizer step) over
``repeats`` steps after ``warmup`` steps, synchronised on CUDA, and peak memory. A lower bound is printed
beside it: the same feedforward and recurrent matrix products done as time-batched GEMMs (forward + the two
backward products; forward + the weight gradient for rules that send no gradient through the weights,
``Workload.products``), plus one read and write of every state tensor at the device's measured copy bandwidth.
For a method with inherent extra work the "method bound" adds that work, done time-batched too (only ``asrc``:
its span mixing, :func:`span_mixing_time`); the plain bound keeps its definition for every row.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch
from attrs import evolve, field, frozen

from snnkit_cli.render import plan_notes
from snnkit_core.contract.errors import ConfigError, IncompatibleError
from snnkit_core.contract.interfaces import Dataset
from snnkit_core.engine.config import TrainConfig


@frozen
class Workload:
    name: str
    input_size: int
    steps: int
    batch: int
    hidden: tuple[int, ...]
    classes: int
    neuron: str
    conn: str
    rules: tuple[str, ...]
    params: dict = field(factory=dict)
    readout: str | None = None
    note: str = ""
    #: products the step needs per weight matrix, each as one time-batched GEMM: 3 = forward and both backward
    #: products (BPTT); 2 = forward and the weight-gradient product (a rule that sends no gradient back through
    #: the weights: reward-prop's random projections, st-rsbp's spike-train-level backward)
    products: int = 3
    #: None: uniform random inputs in [0, 1); else binary input spikes, each 1 with this probability (SSC's events)
    input_rate: float | None = None


WORKLOADS: dict[str, list[Workload]] = {
    "scsr-ti46": [
        Workload("scsr-ti46/bptt", 78, 100, 50, (400, 400, 400), 26, "lif", "srsc", ("bptt",)),
        Workload("scsr-ti46/tssl-bp", 78, 100, 50, (400, 400, 400), 26, "lif", "srsc", ("tssl-bp",)),
    ],
    "src-psmnist": [
        Workload("src-psmnist/src", 1, 784, 256, (64, 128, 128), 10, "lif-soft", "src", ("bptt",),
                 {"conn": {"skip_span": 12}}),
        Workload("src-psmnist/asrc", 1, 784, 256, (64, 128, 128), 10, "lif-soft", "asrc", ("bptt",),
                 {"conn": {"max_span": 51}}),
    ],
    "src-ssc": [
        Workload(
            "src-ssc/src", 140, 250, 128, (256, 256, 256), 35, "lif-soft", "src", ("bptt",), {"conn": {"skip_span": 3}}
        ),
    ],
    "ff-16k": [
        Workload("ff-16k", 16384, 500, 16, (16384,), 16384, "lif", "ff", ("bptt",), readout="linear",
                 note="one Linear + LIF layer (the linear readout adds a second 16k x 16k product)"),
    ],
    # the event-driven feedforward product (conn.spike_product) against the dense one at W2/W3 (docs/performance.md)
    "spikes-w2": [
        Workload(f"spikes-w2/{mode}", 1, 784, 32, (64, 128, 128), 10, "lif-soft", "src", ("bptt",),
                 {"conn": {"skip_span": 12, "spike_product": mode}}) for mode in ("dense", "sparse", "auto")
    ],
    "spikes-w3": [
        Workload(f"spikes-w3/{mode}", 140, 100, 32, (256, 256, 256), 35, "lif-soft", "src", ("bptt",),
                 {"conn": {"skip_span": 3, "spike_product": mode}}, input_rate=0.2)
        for mode in ("dense", "sparse", "auto")
    ],
    "tiny": [
        Workload("tiny/srsc", 16, 50, 8, (32, 32, 32), 4, "lif", "srsc", ("bptt",)),
    ],
    # the nrr-fsdd preset's input (40 log-mel bands x 100 frames, batch 32) at 128-128-128, the smallest depth srsc
    # takes. Each component group starts with its baseline at the same shape, so `--rounds` reports the component's
    # step against it: lif + srsc + bptt here, and for st-rsbp the same network trained by bptt with lif
    "alif": [
        Workload("alif/lif-srsc-bptt", 40, 100, 32, (128, 128, 128), 10, "lif", "srsc", ("bptt",)),
        Workload("alif/srsc", 40, 100, 32, (128, 128, 128), 10, "alif", "srsc", ("bptt",)),
        Workload("alif/sparse", 40, 100, 32, (128, 128, 128), 10, "alif", "sparse", ("bptt",)),
    ],
    "nrr": [
        Workload("nrr/lif-srsc-bptt", 40, 100, 32, (128, 128, 128), 10, "lif", "srsc", ("bptt",)),
        Workload("nrr/reward-prop", 40, 100, 32, (128, 128, 128), 10, "nrr", "sparse", ("reward-prop",), products=2),
    ],
    # ST-RSBP's Fashion-MNIST "400-R400" (experiments/st-rsbp-fmnist): 784 Poisson inputs x 400 steps, batch 16
    "st-rsbp": [
        Workload("st-rsbp/lif-bptt", 784, 400, 16, (400, 400), 10, "lif", "reservoir", ("bptt",),
                 {"conn": {"topology": "dense"}}),
        Workload("st-rsbp/400-R400", 784, 400, 16, (400, 400), 10, "lif-rsbp", "reservoir", ("st-rsbp",),
                 {"conn": {"topology": "dense"}, "neuron": {"v_th": 15.0}}, products=2),
    ],
}


class _Synthetic(Dataset):
    name = "bench-synthetic"

    def __init__(self, w: Workload):
        super().__init__()
        self.w = w

    @property
    def num_classes(self):
        return self.w.classes

    @property
    def input_size(self):
        return self.w.input_size

    def load(self, split):  # pragma: no cover - not used: bench feeds batches directly
        raise NotImplementedError


def resize(w: Workload, steps: int | None = None, batch: int | None = None) -> Workload:
    """``w`` with another T and/or batch size (``snnkit bench --steps/--batch``); None keeps the workload's own."""
    for name, v in (("steps", steps), ("batch", batch)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ConfigError(f"--{name} must be a whole number >= 1, not {v!r}")
    return evolve(w, steps=steps or w.steps, batch=batch or w.batch)


def chosen(names, device: torch.device, steps: int | None = None, batch: int | None = None) -> list[Workload]:
    """The workloads of the groups ``names`` (all on CUDA, ``tiny`` on the CPU when empty) at ``steps`` / ``batch``
    (:func:`resize`); an unknown group is an :class:`UnknownComponentError`."""
    from snnkit_core.contract.errors import UnknownComponentError

    names = list(names) or (list(WORKLOADS) if device.type == "cuda" else ["tiny"])
    if unknown := [n for n in names if n not in WORKLOADS]:
        raise UnknownComponentError("workload", unknown[0], WORKLOADS)
    return [resize(w, steps, batch) for name in names for w in WORKLOADS[name]]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def copy_bandwidth(device: torch.device, mb: int = 256) -> float:
    """Bytes per second of a large device-to-device copy (read + write counted)."""
    x = torch.empty(mb * 2**20 // 4, device=device)
    y = torch.empty_like(x)
    y.copy_(x)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(5):
        y.copy_(x)
    _sync(device)
    return 5 * 2 * x.numel() * 4 / (time.perf_counter() - t0)


def _time(fn, device, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def lower_bound(w: Workload, device: torch.device, bandwidth: float, repeats: int = 5) -> float:
    """Seconds: time-batched GEMMs (fwd + 2 bwd) of every product, plus state traffic at ``bandwidth``."""
    T, B = w.steps, w.batch
    sizes = [w.input_size, *w.hidden]
    gemms = [(T * B, sizes[i], sizes[i + 1]) for i in range(len(w.hidden))]
    gemms.append((T * B, w.hidden[-1], w.classes))
    gemms += [(T * B, n, n) for i, n in enumerate(w.hidden) if is_recurrent(w, i)]
    if w.conn in ("skip", "srsc"):
        gemms += [(T * B, w.hidden[i], w.hidden[i + 2]) for i in range(len(w.hidden) - 2)]
    total = 0.0
    for m, k, n in gemms:
        a = torch.randn(m, k, device=device)
        b = torch.randn(k, n, device=device)
        g = torch.randn(m, n, device=device)
        if w.products == 2:  # forward and weight gradient only
            step = lambda a=a, b=b, g=g: (a @ b, a.T @ g)  # noqa: E731
        else:
            step = lambda a=a, b=b, g=g: (a @ b, g @ b.T, a.T @ g)  # noqa: E731
        total += statistics.median(_time(step, device, 1, repeats))
    # state tensors: per layer ~4 (T, B, N) fp32 tensors written forward and read backward
    state_bytes = sum(4 * 2 * T * B * n * 4 for n in [*w.hidden, w.classes])
    return total + state_bytes / bandwidth


def is_recurrent(w: Workload, layer: int) -> bool:
    """Whether hidden layer ``layer`` of ``w`` has an (N, N) recurrent matrix (``sparse`` counts as dense: its
    masked matrix is multiplied as a dense one; ``reservoir`` only on its ``layers``, default 1)."""
    if w.conn in ("dense", "src", "asrc", "sparse"):
        return True
    if w.conn == "reservoir":
        chosen = str(w.params.get("conn", {}).get("layers", "1"))
        return chosen == "all" or layer in {int(x) for x in chosen.split(",")}
    return False


#: block lengths tried for the time-batched span mixing (:func:`span_mixing_time`); the fastest counts
SPAN_BLOCKS = (16, 32, 64)


def span_mixing_time(w: Workload, device: torch.device, repeats: int = 5) -> float:
    """Seconds: ``asrc``'s span mixing done time-batched, forward and backward, summed over the hidden layers
    (0 for every other connectivity).

    ASRC mixes K past outputs per step, m[t] = Σ_{j=1..K} α_j y[t-j] (Xu et al. eq. 12; K = ``max_span``), which
    the plain bound does not count: 3·K·T·B·N multiply-adds per layer (forward m, backward ∂L/∂y = Σ_j α_j
    ∂L/∂m[t+j], and ∂L/∂α_j = Σ_t ⟨∂L/∂m[t], y[t-j]⟩). Time-batched it is a block-Toeplitz product: split T into
    blocks of L steps; block b's m is A (L, L+K) times the L+K outputs y[bL-K .. bL+L-1], the same A for every
    block, so with the windows side by side it is ONE GEMM (L, L+K) x (L+K, ⌈T/L⌉·B·N); ∂L/∂y is Aᵀ times the
    blocks' ∂L/∂m side by side, (L+K, L) x (L, ⌈T/L⌉·B·N); and Σ over blocks of ∂L/∂m_b y_bᵀ is one
    (L, ⌈T/L⌉·B·N) x (⌈T/L⌉·B·N, L+K) GEMM whose K diagonals are ∂L/∂α. These multiply A's zero triangles too,
    (L+K)/K times the needed multiply-adds, so their time (measured as the other terms) is scaled by K/(L+K):
    the needed 3·K·T·B·N multiply-adds at the speed of those time-batched GEMMs (unscaled, the term came out
    above the fused CPU scan's own time). The windows' overlap copy is not counted. The smallest over L in
    :data:`SPAN_BLOCKS` counts."""
    if w.conn != "asrc":
        return 0.0
    K = int(w.params.get("conn", {}).get("max_span", 51))
    total = 0.0
    for n in w.hidden:
        best = None
        for L in SPAN_BLOCKS:
            cols = -(-w.steps // L) * w.batch * n
            a = torch.randn(L, L + K, device=device)
            at = a.t().contiguous()
            win = torch.randn(L + K, cols, device=device)
            g = torch.randn(L, cols, device=device)
            step = lambda a=a, at=at, win=win, g=g: (a @ win, at @ g, g @ win.T)  # noqa: E731
            t = statistics.median(_time(step, device, 1, repeats)) * K / (L + K)
            best = t if best is None else min(best, t)
            del win, g, step
        total += best
    return total


def training_step(w: Workload, device: torch.device, path: str = "torch"):
    """``(step, net, x)``: one training step of ``w`` on backend ``path`` as a callable (the gradient rule's own
    ``train_step`` on a fixed synthetic batch), its network and input. Raises :class:`IncompatibleError` where the
    backend cannot take the network."""
    from snnkit_core.contract.interfaces import Batch
    from snnkit_core.contract.plugins import get_registry
    from snnkit_core.engine.assembly import assemble
    from snnkit_core.engine.training import Built, make_optimizer

    reg = get_registry()
    neuron_cls = reg.get("neuron", w.neuron)
    conn = reg.get("connectivity", w.conn)(**w.params.get("conn", {}))
    rules = [reg.get("rule", r)(**w.params.get(f"rule.{r}", {})) for r in w.rules]
    grad_rule = next(r for r in rules if r.role == "gradient")
    torch.manual_seed(0)
    x = torch.rand(w.steps, w.batch, w.input_size, device=device)
    if w.input_rate is not None:
        x = (x < w.input_rate).to(x.dtype)
    y = torch.randint(0, w.classes, (w.batch,), device=device)
    batch = Batch(x, y, torch.arange(w.batch, device=device))
    net = assemble(neuron_cls, conn, rules, input_size=w.input_size, num_classes=w.classes, hidden=w.hidden,
                   neuron_params=w.params.get("neuron", {}), readout=w.readout, backend=path, device=device,
                   registry=reg, seed=0)
    cfg = TrainConfig(neuron=w.neuron, conn=w.conn, rules=w.rules, hidden=w.hidden, batch_size=w.batch)
    opt = make_optimizer(Built(cfg, net, rules, _Synthetic(w), device))
    return (lambda: grad_rule.train_step(net, batch, opt)), net, x


def input_rates(net, x: torch.Tensor) -> list[float]:
    """Nonzero fraction of each layer's feedforward input (the encoded input, then each hidden layer's output) in
    one forward pass of ``net`` on ``x``, without gradients."""
    with torch.no_grad():
        res = net(x)
    return [float(torch.count_nonzero(t)) / t.numel() for t in (res.input, *(tr.y for tr in res.hidden))]


def bench_workload(
    w: Workload, device: torch.device, paths=("reference", "torch"), warmup: int = 3, repeats: int = 20
) -> dict[str, Any]:
    """Median time of the rule's own training step (``LearningRule.train_step``: forward, loss, backward,
    optimizer step, ``after_step``, ``clamp_``) on each backend in ``paths``, with the scan path and implementation
    each layer ran (``plan``: ``Network.plan_report()``), the plan's notes and any run-time fallback events."""
    out: dict[str, Any] = {"workload": w.name, "device": str(device), "steps": w.steps, "batch": w.batch, "paths": {}}
    for path in paths:
        try:  # e.g. --backend triton on a layer without a fused kernel, or under a rule with its own scan
            step, net, x = training_step(w, device, path)
        except IncompatibleError as exc:
            out["paths"][path] = {"error": str(exc)}
            continue
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = _time(step, device, warmup, repeats)
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        plan = net.plan_report()
        out["paths"][path] = {"input_rates": input_rates(net, x), "describe": net.describe(),
                              "median_ms": 1e3 * statistics.median(times), "min_ms": 1e3 * min(times), "peak_mb": peak,
                              "ran": _ran(net.paths()), "implementations": _ran([r["implementation"] for r in plan]),
                              "plan": plan, "notes": plan_notes(plan), "events": list(net.plan_events)}
    ref = out["paths"].get("reference", {}).get("median_ms")
    for p in out["paths"].values():
        if "median_ms" in p:
            p["speedup_vs_reference"] = ref / p["median_ms"] if ref else None
    return out


def _ran(paths: list[str]) -> str:
    """The layers' scan paths (or implementations) in one short string: ``rule:tssl-bp`` or
    ``fused x3, reference x1``."""
    counts: dict[str, int] = {}
    for p in paths:
        counts[p] = counts.get(p, 0) + 1
    return ", ".join(p if len(counts) == 1 else f"{p} x{n}" for p, n in counts.items())


def run_benchmarks(names: list[str], device: torch.device, repeats: int = 20, warmup: int = 3,
                   steps: int | None = None, batch: int | None = None,
                   threads: Sequence[int | None] = (None,)) -> dict[str, Any]:
    """Every workload of the groups ``names`` (all on CUDA, ``tiny`` on CPU when empty) on every backend that can
    run here: ``{"meta": ..., "results": [...]}``, each result with its lower bound, its method bound (the bound plus
    :func:`span_mixing_time`; equal to the bound except for ``asrc``) and each path's fraction of both.
    ``steps`` / ``batch`` replace every workload's T / batch size. Each workload runs once per entry of ``threads``
    (intra-op thread count; None: leave the current one), its bound measured at the same count, one result each
    (``threads``). An unknown group is an :class:`UnknownComponentError`; a workload whose components are missing
    is skipped."""
    from snnkit_cli.host import set_threads
    from snnkit_core.contract.errors import UnknownComponentError
    from snnkit_core.contract.scan import triton_available

    bws: dict[int, float] = {}
    paths = ["reference", "torch"] + (["triton"] if triton_available(device.type) else [])
    results = []
    for w in chosen(names, device, steps, batch):  # --steps / --batch
        for n in threads:
            n = set_threads(n)  # stays in effect after the run, like --threads of train
            bws.setdefault(n, copy_bandwidth(device))
            try:
                res = bench_workload(w, device, paths=paths, warmup=warmup, repeats=repeats)
            except UnknownComponentError as exc:
                results.append({"workload": w.name, "threads": n, "skipped": str(exc)})
                continue
            res["threads"] = n
            results.append(_with_bounds(res, w, device, bws[n]))
    meta = {"torch": torch.__version__, "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "copy_bandwidth_gbs": {n: bw / 1e9 for n, bw in bws.items()}}
    return {"meta": meta, "results": results}


def _with_bounds(res: dict[str, Any], w: Workload, device: torch.device, bandwidth: float) -> dict[str, Any]:
    """``res`` with its lower bound, method bound and each path's fraction of both (measured now)."""
    res["lower_bound_ms"] = 1e3 * lower_bound(w, device, bandwidth)
    extra = 1e3 * span_mixing_time(w, device)  # the method's inherent extra work (asrc), else 0
    res["method_bound_ms"] = res["lower_bound_ms"] + extra
    res["method_extra_ms"] = extra
    for p in res["paths"].values():
        if "median_ms" in p:
            p["fraction_of_bound"] = res["lower_bound_ms"] / p["median_ms"]
            p["fraction_of_method_bound"] = res["method_bound_ms"] / p["median_ms"]
    return res
