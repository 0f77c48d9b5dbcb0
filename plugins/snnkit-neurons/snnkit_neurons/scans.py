"""The faster exact scans of ``lif``, ``lif-soft``, ``alif`` and ``nrr``, registered as implementations
(:mod:`snnkit_core.contract.implementations`); the network picks one per layer when it is planned.

======== ============================ ================ ====================================================
neuron   kind                         device           implementations (first available that takes the layer)
======== ============================ ================ ====================================================
lif      none, diagonal (self term)   cuda, cpu*       triton: one kernel per direction (kernels/lif_scan.py)
lif      none, diagonal (self term)   cpu              c-kernel, torch-loop: one autograd node (kernels/lif_cpu.py)
lif-soft none                         cuda, cpu*       triton: the whole sequence as one chunk
lif-soft none, chunk                  cpu              c-kernel, torch-loop: kernels/soft_cpu.SoftChunk
lif-soft chunk                        cuda, cpu*       triton: one kernel per direction and chunk (lif_soft_scan.py)
lif-soft span (SRC; dense = k 1)      cpu              c-kernel, torch-loop: kernels/soft_cpu.SkipScan
lif-soft mixed (ASRC in training)     cpu              c-kernel, torch-loop: kernels/soft_cpu.MixedScan
lif      tssl-bp-forward / -backward  cpu              c-kernel: tssl-bp's layer scan (kernels/tssl_cpu.py)
alif     none, diagonal (self term)   cpu              c-kernel, torch-loop: kernels/adaptive_cpu.AdaptiveScan
alif     span (dense, sparse, SRC)    cpu              c-kernel, torch-loop: the same node with V S[t-k]
nrr      none, span (dense, sparse)   cpu              c-kernel, torch-loop: the same node (two channels)
alif/nrr reward-prop (the rule's)     cpu              c-kernel, torch-loop: the same node, replaced gradients
lif-rsbp st-rsbp-forward / -response  cpu              c-kernel: st-rsbp's forward and S-PSPs (kernels/rsbp_cpu.py)
======== ============================ ================ ====================================================

``cpu*``: Triton on the CPU only under its interpreter (tests). ``c-kernel`` is available when the C library
of ``kernels/cpu.py`` loads or builds (decided once per process, with the reason when it cannot);
``torch-loop`` is the same autograd node with a torch loop inside, always available.
"""

from __future__ import annotations

from functools import partial

from snnkit_core.contract.implementations import Implementation, candidates

from .kernels import cpu, rsbp_cpu, surrogate_reason, triton_reason, tssl_cpu
from .kernels.adaptive_cpu import AdaptiveScan, ALIFKernel, NRRKernel
from .kernels.lif_cpu import lif_scan_cpu
from .kernels.soft_cpu import MixedScan, SkipScan, SoftChunk
from .lif_soft import SoftState


def always() -> None:
    """Available everywhere (the torch loops; Triton on the CPU, whose check is per layer)."""
    return None


def c_reason() -> str | None:
    """None when the C library is loaded (or built now), else why not."""
    return None if cpu.lib() is not None else cpu.failure


def _cpu_surrogate(layer) -> str | None:
    kind = layer.neuron.surrogate[0]
    return None if kind in cpu.SURROGATE else f"the CPU scans have no {kind!r} surrogate"


def _self_term(layer) -> str | None:
    """lif's scans take no recurrence or a diagonal one of span 1 (ScSr's self weights)."""
    rec = layer.recurrence
    if rec is None or (rec.structure == "diagonal" and rec.span == 1 and rec.weight is not None):
        return None
    return f"the lif scans take no {rec.structure} recurrence of span {rec.span}"


def _lif_cpu_accepts(layer) -> str | None:
    return _self_term(layer) or _cpu_surrogate(layer)


def _triton_accepts(layer, dev: str, module: str, kernel: str) -> str | None:
    own = _self_term(layer) if kernel == "lif" else None
    return own or (dev == "cpu" and triton_reason(dev)) or surrogate_reason(layer.neuron.surrogate[0], module, kernel)


def lif_cpu(neuron, current, recurrence, use_c=True):
    kind, width = neuron.surrogate
    w = recurrence.weight if recurrence is not None else None
    return lif_scan_cpu(current, neuron.leak, w, neuron.tau_s, neuron.v_th, kind, width,
                        neuron.hparams["detach_reset"], use_c)


def lif_triton(neuron, current, recurrence):
    from .kernels.lif_scan import lif_scan  # imports Triton

    kind, width = neuron.surrogate
    w = recurrence.weight if recurrence is not None else None
    return lif_scan(current, neuron.leak, w, neuron.tau_s, neuron.v_th, kind, width, neuron.hparams["detach_reset"])


def soft_chunk_cpu(neuron, current, state, use_c=True):
    kind, width = neuron.surrogate
    s, u = SoftChunk.apply(current, state.u, neuron.decay, neuron.v_th, kind, width, neuron.detach_reset, use_c)
    return s, s, SoftState(u)


def soft_chunk_triton(neuron, current, state):
    from .kernels.lif_soft_scan import soft_scan  # imports Triton

    kind, width = neuron.surrogate
    s, u = soft_scan(current, state.u, neuron.decay, neuron.v_th, kind, width, neuron.detach_reset)
    return s, s, SoftState(u)


def soft_whole(neuron, current, recurrence, chunk, **kw):
    """Without recurrence the whole sequence is one chunk."""
    s, _, _ = chunk(neuron, current, neuron.initial_state(current.shape[1], current.device, current.dtype), **kw)
    return s, s


def soft_span_cpu(neuron, current, weight, k, use_c=True):
    kind, width = neuron.surrogate
    s = SkipScan.apply(current, weight, k, neuron.decay, neuron.v_th, kind, width, neuron.detach_reset, use_c)
    return s, s


def soft_mixed_cpu(neuron, current, weight, alpha, chunk, use_c=True):
    kind, width = neuron.surrogate
    s = MixedScan.apply(current, weight, alpha, chunk, neuron.decay, neuron.v_th, kind, width, neuron.detach_reset,
                        use_c)
    return s, s


KERNELS = {"alif": ALIFKernel, "nrr": NRRKernel}


def adaptive_layer(neuron, current, recurrence, use_c=True):
    """``alif``/``nrr`` without recurrence, or ``alif`` with the diagonal self term: one node."""
    w = recurrence.weight if recurrence is not None else None
    s, _ = AdaptiveScan.apply(current, w, None, None, KERNELS[neuron.name](neuron), 1, False, use_c)
    return s, s


def adaptive_span(neuron, current, weight, k, use_c=True):
    """``alif``/``nrr`` with R[t] = V S[t-k] (``dense``, ``sparse``, ``src``): one node."""
    s, _ = AdaptiveScan.apply(current, None, weight, None, KERNELS[neuron.name](neuron), k, False, use_c)
    return s, s


def _rp_weights(layer):
    """(diagonal w, matrix V) of the layer's recurrence as reward-prop's reference scan reads them."""
    rec = layer.recurrence
    if rec is None:
        return None, None
    if rec.structure == "diagonal":
        return rec.weight, None
    return None, rec.effective_weight() if hasattr(rec, "effective_weight") else rec.weight


def _rp_accepts(layer) -> str | None:
    """reward-prop's scan: no recurrence, alif's self term, or a plain V S[t-1] (not ASRC's mixture)."""
    rec = layer.recurrence
    if rec is None or (layer.neuron.name == "alif" and _self_term(layer) is None):
        return _cpu_surrogate(layer)
    if rec.structure != "dense" or rec.span != 1 or "mixed" in rec.kinds or getattr(rec, "weight", None) is None:
        return f"reward-prop's fast scan takes no {rec.structure} recurrence of span {rec.span} ({type(rec).__name__})"
    return _cpu_surrogate(layer)


def adaptive_reward_prop(layer, current, g_rp, minus_h, use_c=True):
    """reward-prop's layer scan: ``g_rp`` (T, B, N) replaces every spike tensor's gradient (None: no training
    step). Returns (y, s, z), z the scalar the rule adds to the loss (see kernels/adaptive_cpu.py)."""
    w, weight = _rp_weights(layer)
    s, z = AdaptiveScan.apply(current, w, weight, g_rp, KERNELS[layer.neuron.name](layer.neuron), 1, minus_h, use_c)
    return s, s, z


def register_all(register) -> None:
    """Register every row of the module's table (snnkit-neurons' ``register_implementations`` hook)."""
    for dev in ("cuda", "cpu"):  # on the CPU (the interpreter, tests only) it is a per-plan check, not a note
        gpu = partial(Implementation, "triton", device=dev, backend="triton", dtypes=("float32",),
                      available=partial(triton_reason, dev) if dev == "cuda" else always)
        lif_ok = partial(_triton_accepts, dev=dev, module="lif_scan", kernel="lif")
        soft_ok = partial(_triton_accepts, dev=dev, module="lif_soft_scan", kernel="lif-soft")
        register(gpu(neuron="lif", kind="none", scan=lif_triton, accepts=lif_ok))
        register(gpu(neuron="lif", kind="diagonal", scan=lif_triton, accepts=lif_ok))
        whole = partial(soft_whole, chunk=soft_chunk_triton)
        register(gpu(neuron="lif-soft", kind="none", scan=whole, accepts=soft_ok))
        register(gpu(neuron="lif-soft", kind="chunk", scan=soft_chunk_triton, accepts=soft_ok))
    for name, use_c in (("c-kernel", True), ("torch-loop", False)):
        host = partial(Implementation, name, device="cpu", available=c_reason if use_c else always,
                       accepts=_cpu_surrogate)
        register(host(neuron="lif", kind="none", scan=partial(lif_cpu, use_c=use_c), accepts=_lif_cpu_accepts))
        register(host(neuron="lif", kind="diagonal", scan=partial(lif_cpu, use_c=use_c), accepts=_lif_cpu_accepts))
        register(host(neuron="lif-soft", kind="none", scan=partial(soft_whole, chunk=soft_chunk_cpu, use_c=use_c)))
        register(host(neuron="lif-soft", kind="chunk", scan=partial(soft_chunk_cpu, use_c=use_c)))
        register(host(neuron="lif-soft", kind="span", scan=partial(soft_span_cpu, use_c=use_c)))
        register(host(neuron="lif-soft", kind="mixed", scan=partial(soft_mixed_cpu, use_c=use_c)))
        for neuron in KERNELS:
            register(host(neuron=neuron, kind="none", scan=partial(adaptive_layer, use_c=use_c)))
            register(host(neuron=neuron, kind="span", scan=partial(adaptive_span, use_c=use_c)))
            register(host(neuron=neuron, kind="reward-prop", scan=partial(adaptive_reward_prop, use_c=use_c),
                          accepts=_rp_accepts))
        register(host(neuron="alif", kind="diagonal", scan=partial(adaptive_layer, use_c=use_c),
                      accepts=_lif_cpu_accepts))
    register(Implementation("c-kernel", "lif", "tssl-bp-forward", "cpu", tssl_cpu.forward, available=c_reason))
    register(Implementation("c-kernel", "lif", "tssl-bp-backward", "cpu", tssl_cpu.backward, available=c_reason))
    register(Implementation("c-kernel", "lif-rsbp", "st-rsbp-forward", "cpu", rsbp_cpu.forward, available=c_reason))
    register(Implementation("c-kernel", "lif-rsbp", "st-rsbp-response", "cpu", rsbp_cpu.spike_response,
                            available=c_reason))


def implementation(neuron: str, kind: str, name: str, device: str = "cpu") -> Implementation:
    """The registered implementation ``name`` of this key (tests and ``snnkit bench`` call one directly)."""
    return next(i for i in candidates(neuron, kind, device) if i.name == name)
