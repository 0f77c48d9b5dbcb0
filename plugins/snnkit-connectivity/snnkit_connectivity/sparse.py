"""``sparse``: dense recurrence under a fixed random mask (NRR-SNN's sparse loops; docs/connectivity/sparse.md).

Per hidden layer with output y (the spikes S), W ∈ R^{N×N} and a fixed boolean mask M (N×N, zero diagonal):

    I_r[t] = (W ⊙ M) y[t-1]                      y[-1] = 0

* The mask is drawn ONCE, when the layer is built, by a topology function from :data:`TOPOLOGIES` (``random``:
  exactly round(density·N(N-1)) of the N(N-1) off-diagonal entries kept, chosen uniformly; the diagonal is
  always 0). It is a registered buffer, so it is saved in every checkpoint and restored on ``--resume``.
* It is seeded: ``seed`` = -1 (default) derives layer l's seed from the run seed (``torch.initial_seed()``,
  which assembly sets to ``--seed`` just before the weights are drawn) as ``run_seed·1000 + l``; the seed and
  the realised density are in ``describe()``, i.e. in ``manifest.json`` and every line of ``metrics.jsonl``.
  (The authors' code draws it unseeded.)
* The weights under the mask never change: every forward uses ``effective_weight() = W ⊙ M`` (so masked
  entries get a zero gradient), and W's masked entries are zeroed at construction (Adam/AdamW leave a zero
  weight with zero gradient at zero).
* ``init``: ``uniform`` (default) is PyTorch's ``nn.Linear`` init U(±1/√N), the authors' code; ``orthogonal``
  (gain 1) is ``dense``'s.

The deep variant (NRR-SNN's five layers: input, a convolution over frequency, the recurrent layer, a
feedforward layer, output) is this connectivity with ``conv_kernel`` > 0 and ``recurrent_layers = 1`` on
three hidden layers: layer 0's input map is then :class:`FreqConv` (a 1-D convolution over the input
channels, the same at every step), layer 1 has the sparse loops, layer 2 is feedforward.

``conv_input`` chooses what the convolution sees:

* ``frame`` (default): :class:`FreqConv`, a 1-D convolution over frequency of each frame; time stays time.
* ``image`` (what the authors' deep model does, docs/methods/nrr-snn.md): :class:`ImageConv`. The whole
  (frames x channels) input, e.g. the 39x39 filter-bank image, times ``conv_gain`` (the code's x10), is ONE static
  image; a 2-D convolution (kernel K, stride ``conv_stride``, zero padding K//2) maps it to channels x H' x W'
  input currents, and the SAME currents drive layer 0 at every one of the T steps (T = the number of frames).
  Layer 1's input map is then :class:`PoolLinear`: a ``conv_pool`` x ``conv_pool`` average pool of layer 0's
  spikes (the code's ``AvgPool2d(2)`` after each CONV block) followed by a linear map.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from snnkit_core import Connectivity, Param
from snnkit_core.contract.errors import ConfigError, IncompatibleError

from .asrc import DenseRecurrence, dense_scan
from .topology import grid3d_mask


def random_mask(size: int, density: float, generator: torch.Generator) -> torch.Tensor:
    """(size, size) bool: round(density·N(N-1)) off-diagonal entries True, chosen uniformly; diagonal False."""
    off = (~torch.eye(size, dtype=torch.bool)).flatten().nonzero().squeeze(1)
    keep = int(round(density * off.numel()))
    mask = torch.zeros(size * size, dtype=torch.bool)
    mask[off[torch.randperm(off.numel(), generator=generator)[:keep]]] = True
    return mask.reshape(size, size)


#: topology name -> mask function ``(size, density, generator) -> (size, size) bool with a zero diagonal``.
#: Another topology plugs in with one line, e.g. ``TOPOLOGIES["grid3d"] = grid3d_mask``.
TOPOLOGIES: dict[str, Callable[[int, float, torch.Generator], torch.Tensor]] = {"random": random_mask}


def _grid3d(size: int, density: float, generator: torch.Generator) -> torch.Tensor:
    """ST-RSBP's distance-based 3-D grid with E/I connection probabilities (see :mod:`.topology`).

    Its density follows from those probabilities (a few % of pairs at the reference's λ² = 4), so ``density`` is
    not used; the realised density is recorded by ``describe()``. No self-loops (the ``sparse`` contract)."""
    return grid3d_mask(size, generator)


TOPOLOGIES["grid3d"] = _grid3d


class MaskedRecurrence(DenseRecurrence):
    """``(W ⊙ M) y[t-1]`` with a fixed bool mask M (buffer ``mask``, saved in checkpoints); ``mask=None`` is dense.

    ``effective_weight()`` = W ⊙ M is what every forward uses (and what rules that need the recurrent matrix,
    e.g. ``st-rsbp``, read); W's masked entries are zeroed at construction and get zero gradients."""

    def __init__(self, size: int, mask: torch.Tensor | None = None):
        super().__init__(size)
        if mask is not None:
            mask = mask.to(torch.bool).clone()
            if mask.shape != (size, size):
                raise IncompatibleError(f"recurrent mask of shape {tuple(mask.shape)}; it must be ({size}, {size})")
            self.mask = mask  # the base class registered the buffer "mask": saved in the checkpoint
            with torch.no_grad():
                self.weight.mul_(self.mask)

    def effective_weight(self) -> torch.Tensor:
        """W ⊙ M: what every forward uses (rules that need the recurrent matrix call this)."""
        return self.weight if self.mask is None else self.weight * self.mask

    def recurrent_input(self, past):
        return past[0] @ self.effective_weight().t()

    def scan(self, neuron, current, kernels=None):
        return dense_scan(neuron, current, self.effective_weight(), kernels)

    def describe(self):
        d = {"span": 1}
        if self.mask is not None:
            n = self.size
            d["density"] = round(float(self.mask.sum()) / max(n * (n - 1), 1), 6)  # of the off-diagonal pairs
        return d


class SparseRecurrence(MaskedRecurrence):
    """``sparse``'s recurrence: the mask drawn by a :data:`TOPOLOGIES` function (zero diagonal), seeded."""

    def __init__(self, size: int, density: float = 0.5, topology: str = "random", seed: int = 0, init: str = "uniform"):
        g = torch.Generator().manual_seed(int(seed))
        mask = TOPOLOGIES[topology](size, density, g).to(torch.bool)
        if mask.shape != (size, size) or bool(mask.diagonal().any()):
            raise IncompatibleError(f"topology {topology!r} returned a mask of shape {tuple(mask.shape)} with "
                                    f"{int(mask.diagonal().sum())} self-connections; it must be ({size}, {size}) with "
                                    "a zero diagonal")
        super().__init__(size, None)
        if init == "uniform":  # nn.Linear's default: kaiming_uniform(a=√5) = U(±1/√N)
            bound = 1.0 / size**0.5
            with torch.no_grad():
                self.weight.uniform_(-bound, bound)
        self.mask = mask
        with torch.no_grad():
            self.weight.mul_(self.mask)
        self.topology, self.seed = topology, int(seed)

    def describe(self):
        return {**super().describe(), "topology": self.topology, "mask_seed": self.seed}


class FreqConv(nn.Module):
    """A 1-D convolution over the input channels applied at every step: (…, C) -> (…, channels·C).

    out[..., c·C + f] = b_c + Σ_k w[c, k]·x[..., f + k - K//2]   (zero padding, odd kernel K)
    """

    def __init__(self, in_size: int, channels: int, kernel: int, bias: bool):
        super().__init__()
        self.in_size, self.channels = in_size, channels
        self.conv = nn.Conv1d(1, channels, kernel, padding=kernel // 2, bias=bias)

    @property
    def weight(self) -> torch.Tensor:
        return self.conv.weight

    def forward(self, x):
        lead = x.shape[:-1]
        y = self.conv(x.reshape(-1, 1, self.in_size))  # (T·B, channels, C)
        return y.reshape(*lead, self.channels * self.in_size)


class ImageConv(nn.Module):
    """The whole sequence as one static image, convolved in 2-D and repeated at every step: (T, B, C) -> (T, B, N).

        I[t, b, (c, i, j)] = b_c + Σ_{u,v} w[c, u, v]·g·x[s·i + u - K//2, b, s·j + v - K//2]   for every t
        (x indexed [frame, sample, channel], zero padding; g = ``gain``; N = channels·H'·W',
         H' = ⌊(frames + 2·(K//2) - K)/s⌋ + 1, W' likewise over the C input channels)
    """

    def __init__(self, frames: int, in_size: int, channels: int, kernel: int, stride: int, gain: float, bias: bool):
        super().__init__()
        self.frames, self.in_size, self.channels, self.gain = frames, in_size, channels, float(gain)
        self.conv = nn.Conv2d(1, channels, kernel, stride=stride, padding=kernel // 2, bias=bias)
        self.out_hw = image_out(frames, kernel, stride), image_out(in_size, kernel, stride)

    @property
    def weight(self) -> torch.Tensor:
        return self.conv.weight

    def forward(self, x):
        t, b, c = x.shape
        if t != self.frames or c != self.in_size:
            raise IncompatibleError(
                f"sparse with conv_input=image expects every input to be one {self.frames} x {self.in_size} image "
                f"(frames x channels); got {t} x {c}. Set conn.conv_frames={t} or give the data {self.frames} frames "
                f"(e.g. --set dataset.steps={self.frames})")
        y = self.conv(self.gain * x.permute(1, 0, 2).unsqueeze(1))  # (B, channels, H', W')
        return y.reshape(1, b, -1).expand(t, b, y[0].numel()).contiguous()


class PoolLinear(nn.Module):
    """Average-pool the spikes of an :class:`ImageConv` layer over (H', W'), then a linear map: (…, N) -> (…, out)."""

    def __init__(self, channels: int, hw: tuple[int, int], pool: int, out_size: int, bias: bool):
        super().__init__()
        self.channels, self.hw = channels, hw
        self.pool = nn.AvgPool2d(pool, pool) if pool > 1 else nn.Identity()
        pooled = channels * (hw[0] // pool) * (hw[1] // pool) if pool > 1 else channels * hw[0] * hw[1]
        self.linear = nn.Linear(pooled, out_size, bias=bias)

    @property
    def weight(self) -> torch.Tensor:
        return self.linear.weight

    def forward(self, x):
        lead = x.shape[:-1]
        y = self.pool(x.reshape(-1, self.channels, *self.hw))
        return self.linear(y.reshape(*lead, -1))


def image_out(size: int, kernel: int, stride: int) -> int:
    """Output length of a zero-padded (K//2) convolution with stride s: ⌊(size + 2·(K//2) - K)/s⌋ + 1."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def parse_layers(text: str, who: str = "sparse", key: str = "recurrent_layers") -> set[int] | None:
    """'all' -> None (every hidden layer), else the set of 0-based layer numbers of a comma list."""
    if str(text).strip().lower() == "all":
        return None
    try:
        return {int(v) for v in str(text).split(",") if v.strip()}
    except ValueError:
        raise ConfigError(f"{who}: {key} must be 'all' or a comma list of 0-based layer numbers; got "
                          f"{text!r}") from None


class Sparse(Connectivity):
    """Recurrence under a fixed random mask (density, zero diagonal), seeded from the run seed (NRR-SNN)."""

    name = "sparse"
    description = (
        "sparse loops: (W ⊙ M) y[t-1], fixed seeded mask M (density, zero diagonal) kept in the checkpoint (NRR-SNN)"
    )
    recurrence = "dense"
    params = (
        Param("density", 0.5, "fraction of the N(N-1) off-diagonal recurrent connections that exist"),
        Param("topology", "random", "mask generator (a name in snnkit_connectivity.sparse.TOPOLOGIES): random (uses "
              "density) or grid3d (ST-RSBP's 3-D E/I grid; its own density)"),
        Param("seed", -1, "mask seed of layer 0 (+l for layer l); -1: run seed·1000"),
        Param("init", "uniform", "W init: uniform U(±1/√N) (the authors' nn.Linear) or orthogonal (dense's)",
              choices=("uniform", "orthogonal")),
        Param("recurrent_layers", "all", "hidden layers (0-based, comma list) that get loops; 'all'"),
        Param("conv_kernel", 0, "> 0: hidden layer 0's input map is a convolution over the input channels with this "
              "(odd) kernel and hidden[0]/C channels (the deep variant)", unit="channels"),
        Param("conv_input", "frame", "frame: 1-D conv over each frame's channels, time stays time; image: the whole "
              "(frames x channels) input is one static image, 2-D conv, the same currents at every step (the authors' "
              "deep model)", choices=("frame", "image")),
        Param("conv_stride", 1, "image only: stride of the 2-D convolution"),
        Param("conv_pool", 2, "image only: average-pool size applied to layer 0's spikes before layer 1 (1: none)"),
        Param("conv_gain", 10.0, "image only: the input image is multiplied by this (the code's x10)"),
        Param("conv_frames", 0, "image only: frames per input (image height); 0: equal to the input channels (square)",
              unit="steps"),
    )

    def __init__(self, **params):
        super().__init__(**params)
        hp = self.hparams
        if not 0.0 <= hp["density"] <= 1.0:
            raise ConfigError(f"sparse needs 0 <= density <= 1; got {hp['density']}")
        if hp["topology"] not in TOPOLOGIES:
            raise ConfigError(f"sparse: unknown topology {hp['topology']!r}; known: {', '.join(sorted(TOPOLOGIES))}")
        if hp["conv_kernel"] < 0 or (hp["conv_kernel"] > 0 and hp["conv_kernel"] % 2 == 0):
            raise ConfigError(f"sparse: conv_kernel must be 0 (off) or odd; got {hp['conv_kernel']}")
        if hp["conv_stride"] < 1 or hp["conv_pool"] < 1 or hp["conv_frames"] < 0:
            raise ConfigError(f"sparse: conv_stride and conv_pool must be >= 1 and conv_frames >= 0; got "
                              f"{hp['conv_stride']}, {hp['conv_pool']}, {hp['conv_frames']}")
        self.layers = parse_layers(hp["recurrent_layers"])
        self._image = None  # (channels, (H', W')) of layer 0 once built with conv_input=image

    def _seed(self, layer: int) -> int:
        base = self.hparams["seed"]
        return (torch.initial_seed() % 2**31) * 1000 + layer if base < 0 else base + layer

    def make_recurrence(self, layer, size):
        if self.layers is not None and layer not in self.layers:
            return None
        hp = self.hparams
        return SparseRecurrence(size, hp["density"], hp["topology"], self._seed(layer), hp["init"])

    def make_feedforward(self, layer, in_size, out_size, bias):
        k = self.hparams["conv_kernel"]
        if k and self.hparams["conv_input"] == "image":
            return self._image_feedforward(layer, in_size, out_size, bias)
        if k == 0 or layer != 0:
            return None
        if out_size % in_size:
            raise IncompatibleError(
                f"sparse with conv_kernel={k}: hidden layer 0 is a convolution over the {in_size} input channels, so "
                f"its size must be a multiple of {in_size} (channels x {in_size}); got {out_size}, e.g. use --hidden "
                f"{in_size * max(out_size // in_size, 1)},...")
        return FreqConv(in_size, out_size // in_size, k, bias)

    def _image_feedforward(self, layer, in_size, out_size, bias):
        hp = self.hparams
        if layer == 0:
            frames = hp["conv_frames"] or in_size
            hw = (
                image_out(frames, hp["conv_kernel"], hp["conv_stride"]),
                image_out(in_size, hp["conv_kernel"], hp["conv_stride"]),
            )
            per = hw[0] * hw[1]
            if out_size % per:
                raise IncompatibleError(
                    f"sparse with conv_input=image: hidden layer 0 is channels x {hw[0]} x {hw[1]} (a {frames} x "
                    f"{in_size} "
                    f"image, kernel {hp['conv_kernel']}, stride {hp['conv_stride']}), so its size must be a multiple "
                    "of "
                    f"{per}; got {out_size}, e.g. --hidden {per * max(out_size // per, 1)},...")
            if hp["conv_pool"] > min(hw):
                raise IncompatibleError(f"sparse: conv_pool={hp['conv_pool']} is larger than the {hw[0]} x {hw[1]} "
                                        "feature map")
            self._image = (out_size // per, hw)
            return ImageConv(
                frames, in_size, out_size // per, hp["conv_kernel"], hp["conv_stride"], hp["conv_gain"], bias
            )
        if layer == 1 and self._image is not None:
            return PoolLinear(*self._image, hp["conv_pool"], out_size, bias)
        return None


def register(register):
    register(Sparse)
