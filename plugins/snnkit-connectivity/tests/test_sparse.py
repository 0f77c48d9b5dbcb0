"""``sparse``: mask density and zero diagonal, seeding, masked weights that never change (training, checkpoint,
resume), the conv stage of the deep variant, and the connectivity contract tests."""

import pytest
import torch

from snnkit.testing import ConnectivityContract
from snnkit_connectivity.sparse import TOPOLOGIES, FreqConv, Sparse, SparseRecurrence
from snnkit_core.contract.errors import ConfigError, IncompatibleError
from snnkit_core.engine.network import Network


class TestSparseContract(ConnectivityContract):
    conn_cls = Sparse


class TestSparseDeepContract(ConnectivityContract):
    conn_cls = Sparse
    params = {"conv_kernel": 3, "recurrent_layers": "1"}
    hidden = (6, 6, 6)  # 2 conv channels x 3 inputs

    def test_declared_structure_and_weights(self):
        conn = self.conn_cls(**self.params)
        assert conn.make_recurrence(0, 6) is None and conn.make_recurrence(2, 6) is None
        assert conn.make_recurrence(1, 6).weight.shape == (6, 6)


@pytest.mark.parametrize("density", [0.1, 0.5, 0.9])
def test_mask_density_and_zero_diagonal(density):
    rec = SparseRecurrence(40, density, "random", seed=3)
    m = rec.mask
    assert m.dtype == torch.bool and m.shape == (40, 40)
    assert not m.diagonal().any()
    assert int(m.sum()) == round(density * 40 * 39)
    assert torch.equal(rec.weight == 0, ~m) or bool((rec.weight[~m] == 0).all())
    assert rec.describe()["density"] == pytest.approx(density, abs=1e-3)


def test_mask_is_seeded_from_the_run_seed():
    conn = Sparse()
    torch.manual_seed(5)
    a = conn.make_recurrence(0, 20).mask
    torch.manual_seed(5)
    b = conn.make_recurrence(0, 20).mask
    torch.manual_seed(6)
    c = conn.make_recurrence(0, 20).mask
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(conn.make_recurrence(1, 20).mask, b)  # another layer, another mask
    assert Sparse(seed=11).make_recurrence(0, 20).describe()["mask_seed"] == 11


def test_topology_registry_takes_a_new_generator_with_one_line():
    TOPOLOGIES["ring"] = lambda n, d, g: torch.roll(torch.eye(n, dtype=torch.bool), 1, 1)
    try:
        m = Sparse(topology="ring").make_recurrence(0, 5).mask
        assert int(m.sum()) == 5 and not m.diagonal().any()
    finally:
        del TOPOLOGIES["ring"]
    with pytest.raises(ConfigError, match="unknown topology"):
        Sparse(topology="nope")


def test_masked_weights_never_change_in_training():
    from snnkit_neurons.nrr import NRR

    torch.manual_seed(0)
    net = Network(4, [12], 3, lambda k: NRR(k), Sparse(), readout="linear", weight_scale=3.0)
    rec = net.layers[0].recurrence
    mask0 = rec.mask.clone()
    opt = torch.optim.Adam(net.parameters(), lr=0.05, weight_decay=1e-3)
    w0 = rec.weight.detach().clone()
    for _ in range(5):
        opt.zero_grad()
        out = net(torch.rand(15, 2, 4) * 2)
        torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 2])).backward()
        assert bool((rec.weight.grad[~rec.mask] == 0).all())
        opt.step()
    assert torch.equal(rec.mask, mask0)
    assert bool((rec.weight[~mask0] == 0).all())
    assert not torch.equal(rec.weight[mask0], w0[mask0]), "the weights under the mask should learn"


def test_mask_persists_through_checkpoint_and_resume(tmp_path):
    from snnkit_core.engine.config import TrainConfig
    from snnkit_core.engine.training import train

    cfg = TrainConfig(neuron="nrr", conn="sparse", rules=("bptt",), dataset="espeak-digits", hidden=(16,), epochs=2,
                      limit=40, batch_size=20, seed=3, device="cpu")
    run = tmp_path / "run"
    gen = train(cfg, run)
    next(gen)  # one epoch, then the run is killed
    gen.close()
    ck1 = torch.load(run / "checkpoint.pt", weights_only=True)
    mask = ck1["model"]["layers.0.recurrence.mask"]
    assert mask.dtype == torch.bool and not mask.diagonal().any()
    import json

    man = json.loads((run / "manifest.json").read_text())
    assert man["recurrence"]["layer0"]["mask_seed"] == 3000 and man["recurrence"]["layer0"]["density"] == 0.5
    list(train(cfg, run, resume=True))
    ck2 = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ck2["epoch"] == 1
    assert torch.equal(ck2["model"]["layers.0.recurrence.mask"], mask)
    w = ck2["model"]["layers.0.recurrence.weight"]
    assert bool((w[~mask] == 0).all()) and not torch.equal(w, ck1["model"]["layers.0.recurrence.weight"])


def test_freq_conv_is_a_convolution_over_channels():
    conv = FreqConv(5, 2, 3, bias=False)
    x = torch.randn(4, 3, 5)
    y = conv(x)
    assert y.shape == (4, 3, 10)
    w = conv.weight.detach()[:, 0]  # (2, 3)
    xp = torch.nn.functional.pad(x, (1, 1))
    want = torch.stack([sum(w[c, k] * xp[..., k : k + 5] for k in range(3)) for c in range(2)], dim=-2).flatten(-2)
    torch.testing.assert_close(y, want)
    with pytest.raises(IncompatibleError, match="multiple of 5"):
        Sparse(conv_kernel=3).make_feedforward(0, 5, 12, False)
    with pytest.raises(ConfigError, match="odd"):
        Sparse(conv_kernel=4)


def test_grid3d_topology_is_the_st_rsbp_grid_under_the_sparse_contract():
    from snnkit_connectivity.topology import grid3d_mask

    rec = Sparse(topology="grid3d", seed=7).make_recurrence(0, 64)
    expect = grid3d_mask(64, torch.Generator().manual_seed(7))
    assert torch.equal(rec.mask, expect)
    assert not bool(rec.mask.diagonal().any())
    d = rec.describe()
    assert d["topology"] == "grid3d"
    assert 0.0 < d["density"] < 0.5  # distance-based wiring, far sparser than the random default
