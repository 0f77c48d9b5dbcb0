"""Dense, skip-span (SRC) and adaptive skip-span (ASRC) recurrence (Xu et al. 2025; docs/methods/asrc.md).

Per hidden layer with output y (the spikes for ``lif-soft``), V ∈ R^{N×N} with no bias, orthogonal init (gain 1):

* ``dense`` (eq. 4):  I[t] += V y[t-1]
* ``src``   (eq. 9):  I[t] += V y[t-k]                       k = ``skip_span``, the same for every layer
* ``asrc``  (eq. 12-13): I[t] += V Σ_{j=1..K} α_j y[t-j],    α = softmax(p/τ), p ∈ R^K per layer (init 0,
  shared by the layer's neurons), τ = 0.96^e after e finished epochs (a buffer: saved, never trained).
  In eval mode the kernel is the hardmax: I[t] += V y[t - (argmax p + 1)], i.e. SRC with that span.

y[t-j] = 0 for t-j < 0. V is a plain ``weight`` parameter (not an ``nn.Linear``), so the network's init of
its Linear layers leaves the orthogonal init alone.

Speed. The reference path (``snnkit_core.contract.scan.reference_scan`` with ``recurrent_input``) stays the oracle.
``scan`` overrides it with exact equivalents:

* SRC: the recurrent input of the k steps of a chunk [t0, t0+k) depends only on y[t0-k .. t0-1], the previous
  chunk, which is complete, so it is ONE matrix product (k·B, N) x (N, N) per chunk; then the neuron runs
  over the ≤ k steps of the chunk element-wise.
* dense and ASRC in training (α spans j = 1..K, including j = 1) need y[t-1] before step t: one fused
  ``addmm`` per step. For ASRC the part of the window Σ α_j y[t-j] that lies before the current chunk of
  L = 8 steps is one Toeplitz product plus one product with V per chunk; each step adds only its ≤ L-1
  in-chunk terms (see ``mixed_span_scan``).
* The neuron runs a chunk as one autograd node: the planned "chunk" implementation, else its own ``scan_chunk``
  (``lif-soft``), else ``step``. The network resolves the implementations of ``kinds`` once and passes them in.
* The recurrent input reaches the neuron as ``step``'s / ``scan_chunk``'s separate ``recurrent`` argument;
  only for a neuron that declares ``sums_inputs`` (it uses just the sum) is it added into the current first
  (one fused ``addmm``), which gives the same numbers.
* The input current is split/unbound once, never indexed per step (autograd's backward of ``current[t]``
  allocates a full-size gradient per step).
* ASRC in eval mode runs the chunked SRC scan with span argmax p + 1.
"""

from __future__ import annotations

import torch
from torch import nn

from snnkit_core import Connectivity, Neuron, Param, Recurrence
from snnkit_core.contract.errors import ConfigError

from .spike_product import MODES, SpikeLinear


def _orthogonal(size: int) -> nn.Parameter:
    w = torch.empty(size, size)
    nn.init.orthogonal_(w, gain=1.0)
    return nn.Parameter(w)


def _own_chunk(neuron) -> bool:
    """The neuron overrides ``Neuron.scan_chunk`` (one autograd node per chunk) rather than looping ``step``."""
    return type(neuron).scan_chunk is not Neuron.scan_chunk


def _run(neuron, current, state, recurrent=None, chunk=None):
    """Run the neuron over ``current`` (L, B, N) (and ``recurrent``, or None) from ``state``: the planned "chunk"
    implementation ``chunk`` where it takes the call, else ``scan_chunk`` (the base class loops ``step``).
    Returns ``(y, s, state)`` with y, s (L, B, N)."""
    if recurrent is not None and neuron.sums_inputs:
        current, recurrent = current + recurrent, None
    if chunk is not None and recurrent is None and (res := chunk(neuron, current, state)) is not None:
        return res
    return neuron.scan_chunk(current, state, recurrent)


def chunked_skip_scan(neuron, current: torch.Tensor, weight: torch.Tensor, k: int, kernels=None):
    """Exact scan of ``I[t] += weight @ y[t-k]``: one GEMM per chunk of k steps, then one k-step neuron scan.

    A planned "span" implementation (``kernels``; ``lif-soft`` on the CPU) runs the whole layer as one
    autograd node over preallocated buffers instead; otherwise the chunks are concatenated at the end.
    """
    kernels = kernels or {}
    if "span" in kernels and (res := kernels["span"](neuron, current, weight, k)) is not None:
        return res
    T, B, N = current.shape
    state = neuron.initial_state(B, current.device, current.dtype)
    ys: list[torch.Tensor] = []
    ss: list[torch.Tensor] = []
    wt = weight.t()
    # split once: slicing ``current`` per chunk would make autograd build a full-size zero gradient per slice
    for c, cur in enumerate(current.split(k)):
        t0, t1 = c * k, c * k + cur.shape[0]
        rec = None
        if t0 > 0:  # y[t-k] for t in [t0, t1) is the previous chunk: one (L·B, N) x (N, N) product
            rec = torch.matmul(ys[-1][: t1 - t0], wt)
        y, s, state = _run(neuron, cur, state, rec, kernels.get("chunk"))
        ys.append(y)
        ss.append(s)
    return torch.cat(ys), torch.cat(ss)


def _one_step(neuron, chunk=None):
    """A per-step function ``(I[t], state, R[t] or None) -> (y, s, state)``: the planned "chunk" implementation
    or the neuron's own one-node chunk scan on a 1-step chunk when it has one (fewer autograd nodes than
    ``step``), else ``step``."""
    if chunk is None and not _own_chunk(neuron):
        return neuron.step

    def step(i_t, state, r_t=None):
        y, s, state = _run(neuron, i_t.unsqueeze(0), state, None if r_t is None else r_t.unsqueeze(0), chunk)
        return y[0], s[0], state

    return step


def _add_recurrent(neuron, i_t, y, wt):
    """``(I[t], R[t])`` for R[t] = y @ wt: folded into I[t] by one ``addmm`` for a ``sums_inputs`` neuron."""
    if neuron.sums_inputs:
        return torch.addmm(i_t, y, wt), None
    return i_t, torch.matmul(y, wt)


def dense_scan(neuron, current: torch.Tensor, weight: torch.Tensor, kernels=None):
    """Exact scan of ``I[t] += weight @ y[t-1]``: one fused addmm per step; a planned "span" implementation
    (``lif-soft`` on the CPU) runs it as SRC with k = 1 instead (one autograd node for the layer)."""
    kernels = kernels or {}
    if "span" in kernels and (res := kernels["span"](neuron, current, weight, 1)) is not None:
        return res
    T, B, N = current.shape
    state = neuron.initial_state(B, current.device, current.dtype)
    ys: list[torch.Tensor] = []
    ss: list[torch.Tensor] = []
    wt = weight.t()
    step = _one_step(neuron, kernels.get("chunk"))
    steps = current.unbind(0)  # one autograd node; current[t] per step would cost O(T·B·N) each in backward
    y = None
    for t in range(T):
        i_t, r_t = (steps[t], None) if y is None else _add_recurrent(neuron, steps[t], y, wt)
        y, s, state = step(i_t, state, r_t)
        ys.append(y)
        ss.append(s)
    return torch.stack(ys), torch.stack(ss)


def mixed_span_scan(neuron, current: torch.Tensor, weight: torch.Tensor, alpha: torch.Tensor, chunk: int = 8,
                    kernels=None):
    """Exact scan of ``I[t] += weight @ Σ_{j=1..K} alpha[j-1] y[t-j]`` (terms with t-j < 0 are zero).

    Steps are grouped in chunks [t0, t0+L), L = min(chunk, K). The part of the window that lies before t0 is
    known when the chunk starts, so for all L steps it is ONE Toeplitz product ``A (L, M) @ y[t0-M:t0]``
    (M = min(K, t0) past steps, A[i, m] = alpha[i+M-m-1]) followed by ONE (L·B, N) x (N, N) product with V.
    Inside the chunk, step t0+i adds the i in-chunk terms Σ_{j=1..i} alpha[j-1] y[t-j] and one addmm with V.
    So a step costs ≤ L-1 element-wise terms instead of K, and still one product (α_1 needs y[t-1]).
    """
    kernels = kernels or {}  # a planned "mixed" implementation: the same as one autograd node (lif-soft on the CPU)
    if "mixed" in kernels and (res := kernels["mixed"](neuron, current, weight, alpha, chunk)) is not None:
        return res
    T, B, N = current.shape
    K = alpha.shape[0]
    L = max(1, min(chunk, K))
    a = alpha.unbind(0)
    alpha_pad = torch.cat([alpha, alpha.new_zeros(1)])
    state = neuron.initial_state(B, current.device, current.dtype)
    ys: list[torch.Tensor] = []
    ss: list[torch.Tensor] = []
    wt = weight.t()
    step = _one_step(neuron, kernels.get("chunk"))
    steps = current.unbind(0)  # one autograd node (see dense_scan)
    for t0 in range(0, T, L):
        t1 = min(t0 + L, T)
        n = t1 - t0
        M = min(K, t0)
        pre = None
        if M > 0:
            i = torch.arange(n).unsqueeze(1)
            m = torch.arange(M).unsqueeze(0)
            idx = (i + M - m - 1).clamp(max=K)  # j - 1 for history step t0-M+m seen from t0+i; K -> zero
            A = alpha_pad[idx.to(current.device)]  # (n, M)
            hist = torch.stack(ys[t0 - M : t0]).reshape(M, B * N)
            pre = torch.matmul(torch.matmul(A, hist).reshape(n, B, N), wt).unbind(0)  # n x (B, N), V applied
        for i in range(n):
            t = t0 + i
            i_t, r_t = steps[t], None if pre is None else pre[i]
            if r_t is not None and neuron.sums_inputs:
                i_t, r_t = i_t + r_t, None
            if i > 0:
                mix = ys[t - 1] * a[0]
                for j in range(2, min(i, K) + 1):
                    mix = torch.addcmul(mix, ys[t - j], a[j - 1])
                if neuron.sums_inputs:
                    i_t = torch.addmm(i_t, mix, wt)
                else:
                    r_t = torch.matmul(mix, wt) if r_t is None else torch.addmm(r_t, mix, wt)
            y, s, state = step(i_t, state, r_t)
            ys.append(y)
            ss.append(s)
    return torch.stack(ys), torch.stack(ss)


# ------------------------------------------------------------------------------------------ recurrences


class DenseRecurrence(Recurrence):
    """``V y[t-1]``, V orthogonal (gain 1), no bias."""

    structure = "dense"
    kinds = ("span", "chunk")

    def __init__(self, size: int):
        super().__init__(size, span=1)
        self.weight = _orthogonal(size)

    def recurrent_input(self, past):
        return past[0] @ self.weight.t()

    def scan(self, neuron, current, kernels=None):
        return dense_scan(neuron, current, self.weight, kernels)

    def describe(self):
        return {"span": 1}


class SkipRecurrence(Recurrence):
    """SRC: ``V y[t-k]``; scanned k steps per matrix product."""

    structure = "dense"
    kinds = ("span", "chunk")

    def __init__(self, size: int, k: int):
        if k < 1:
            raise ConfigError(f"src needs skip_span >= 1; got {k}")
        super().__init__(size, span=k)
        self.weight = _orthogonal(size)

    def recurrent_input(self, past):
        return past[self.span - 1] @ self.weight.t()

    def scan(self, neuron, current, kernels=None):
        if self.span == 1:
            return dense_scan(neuron, current, self.weight, kernels)
        return chunked_skip_scan(neuron, current, self.weight, self.span, kernels)

    def describe(self):
        return {"span": self.span}


class AdaptiveSkipRecurrence(Recurrence):
    """ASRC: ``V Σ_j α_j y[t-j]``, α = softmax(p/τ) over spans 1..K; hardmax span in eval mode."""

    structure = "dense"
    kinds = ("mixed", "span", "chunk")

    def __init__(self, size: int, max_span: int, lr_scale: float = 100.0, tau_decay: float = 0.96,
                 eval_kernel: str = "hardmax"):
        if max_span < 1:
            raise ConfigError(f"asrc needs max_span >= 1; got {max_span}")
        if eval_kernel not in ("hardmax", "soft"):
            raise ConfigError(f"asrc's eval_kernel is hardmax or soft; got {eval_kernel!r}")
        super().__init__(size, span=max_span)
        self.eval_kernel = eval_kernel  # hardmax: the paper's test-time span; soft: the kernel training uses
        self.weight = _orthogonal(size)
        self.kernel = nn.Parameter(torch.zeros(max_span))  # p, shared by the layer's neurons
        self.register_buffer("tau", torch.ones(()))  # τ: in state_dict, never trained
        self.lr_scale = lr_scale
        self.tau_decay = tau_decay

    def alpha(self) -> torch.Tensor:
        return torch.softmax(self.kernel / self.tau, dim=0)

    def hard_span(self) -> int:
        """argmax p + 1: the span used in eval mode."""
        return int(self.kernel.detach().argmax()) + 1

    def _hard(self) -> bool:
        return not self.training and self.eval_kernel == "hardmax"

    def recurrent_input(self, past):
        if self._hard():
            return past[self.hard_span() - 1] @ self.weight.t()
        alpha = self.alpha()
        m = sum(alpha[j] * past[j] for j in range(self.span))
        return m @ self.weight.t()

    def scan(self, neuron, current, kernels=None):
        if self._hard():
            k = self.hard_span()
            if k == 1:
                return dense_scan(neuron, current, self.weight, kernels)
            return chunked_skip_scan(neuron, current, self.weight, k, kernels)
        return mixed_span_scan(neuron, current, self.weight, self.alpha().to(current.dtype), kernels=kernels)

    def on_epoch_end(self, epoch):
        self.tau.mul_(self.tau_decay)

    def optim_groups(self, lr, wd):
        return [{"params": [self.kernel], "lr": lr * self.lr_scale, "weight_decay": 0.0, "name": "asrc_kernel"}]

    def describe(self):
        with torch.no_grad():
            alpha = self.alpha()
        return {"span": self.hard_span(), "alpha": [round(float(a), 6) for a in alpha], "tau": float(self.tau)}


# ----------------------------------------------------------------------------------------- connectivity


#: the feedforward product's mode (:class:`.spike_product.SpikeLinear`), a parameter of dense, src and asrc
SPIKE_PRODUCT = Param("spike_product", "auto", "feedforward product: auto (event-driven below the measured crossing "
                      "rate of the input's nonzeros, CPU), dense, or sparse (always event-driven)", choices=MODES)


class _SpikeInput(Connectivity):
    """Hidden layers' input maps as :class:`.spike_product.SpikeLinear` (their input is spikes from layer 1 on)."""

    def make_feedforward(self, layer, in_size, out_size, bias):
        return SpikeLinear(in_size, out_size, bias=bias, mode=self.hparams["spike_product"])


class Dense(_SpikeInput):
    """Vanilla RSNN: full recurrent matrix, 1-step delay (eq. 4)."""

    name = "dense"
    description = "R: full recurrent matrix V y[t-1], orthogonal init, no bias (vanilla RSNN, Xu et al. eq. 4)"
    recurrence = "dense"
    params = (SPIKE_PRODUCT,)

    def make_recurrence(self, layer, size):
        return DenseRecurrence(size)


class SRC(_SpikeInput):
    """Skip recurrent connection: full recurrent matrix from step t-k (eq. 9); k = 1 is ``dense``."""

    name = "src"
    description = "SRC: full recurrent matrix from t-k, V y[t-k] (Xu et al. 2025, eq. 9); k steps per GEMM"
    recurrence = "dense"
    params = (Param("skip_span", 12, "k: the recurrent input comes from y[t-k] (same k for every "
                                     "layer)", unit="steps"), SPIKE_PRODUCT)

    def make_recurrence(self, layer, size):
        return SkipRecurrence(size, self.hparams["skip_span"])


class ASRC(_SpikeInput):
    """Adaptive SRC: softmax(p/τ)-weighted spans 1..K, τ ← 0.96 τ per epoch, hardmax span at test time."""

    name = "asrc"
    description = (
        "ASRC: V Σ_j softmax(p/τ)_j y[t-j], j = 1..K, τ annealed 0.96/epoch, hardmax in eval (Xu et al. eq. 12-13)"
    )
    recurrence = "dense"
    params = (Param("max_span", 51, "K: the largest span the kernel can choose", unit="steps"),
              Param("lr_scale", 100.0, "learning rate of the kernel p relative to --lr (its weight decay is 0)"),
              Param("tau_decay", 0.96, "temperature factor applied after every epoch (τ_e = tau_decay^e)"),
              Param("eval_kernel", "hardmax", "evaluation's recurrent input: hardmax = the span argmax p + 1 (the "
                    "paper's test-time form); soft = softmax(p/τ) as in training (before τ has annealed the two "
                    "differ)", choices=("hardmax", "soft")),
              SPIKE_PRODUCT)

    def make_recurrence(self, layer, size):
        hp = self.hparams
        return AdaptiveSkipRecurrence(size, hp["max_span"], hp["lr_scale"], hp["tau_decay"], hp["eval_kernel"])


def register(register):
    for cls in (Dense, SRC, ASRC):
        register(cls)
