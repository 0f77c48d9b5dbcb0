"""The deep NRR-SNN's image form (conv_input=image): the whole input as one static image, a 2-D convolution whose
currents are the same at every step, the 2x2 average pool before the next layer, size checks, and a short
reward-prop training run through the real entry point on the 39 x 39 fbank-l1 input."""

import pytest
import torch

from snnkit_connectivity.sparse import ImageConv, PoolLinear, Sparse, image_out
from snnkit_core.contract.errors import ConfigError, IncompatibleError
from snnkit_core.engine.network import Network


def test_image_conv_is_a_2d_conv_of_the_whole_sequence_repeated_at_every_step():
    torch.manual_seed(0)
    conv = ImageConv(frames=6, in_size=5, channels=2, kernel=3, stride=2, gain=10.0, bias=True)
    x = torch.rand(6, 4, 5)  # (T, B, C)
    y = conv(x)
    assert conv.out_hw == (3, 3) and y.shape == (6, 4, 2 * 3 * 3)
    w, b = conv.weight.detach()[:, 0], conv.conv.bias.detach()  # (2, 3, 3)
    img = torch.nn.functional.pad(10.0 * x.permute(1, 0, 2), (1, 1, 1, 1))  # (B, T+2, C+2)
    want = torch.empty(4, 2, 3, 3)
    for c in range(2):
        for i in range(3):
            for j in range(3):
                want[:, c, i, j] = b[c] + (w[c] * img[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3]).sum((1, 2))
    for t in range(6):  # the same currents at every step
        torch.testing.assert_close(y[t], want.flatten(1))
    with pytest.raises(IncompatibleError, match=r"one 6 x 5 image .* got 7 x 5"):
        conv(torch.rand(7, 4, 5))


def test_pool_linear_averages_2x2_then_maps():
    pl = PoolLinear(2, (4, 4), 2, 3, bias=False)
    x = torch.rand(5, 2, 2 * 16)
    pooled = x.reshape(5, 2, 2, 2, 2, 2, 2).mean((4, 6)).reshape(5, 2, 8)  # (c, i, di, j, dj) -> mean over di, dj
    torch.testing.assert_close(pl(x), pooled @ pl.weight.t())


def test_image_mode_sizes_and_errors():
    conn = Sparse(conv_kernel=5, conv_input="image", conv_stride=2, recurrent_layers="1")
    assert image_out(39, 5, 2) == 20
    ff0 = conn.make_feedforward(0, 39, 1600, True)
    assert isinstance(ff0, ImageConv) and ff0.channels == 4 and ff0.frames == 39
    ff1 = conn.make_feedforward(1, 1600, 128, True)
    assert isinstance(ff1, PoolLinear) and ff1.linear.in_features == 4 * 10 * 10
    assert conn.make_feedforward(2, 128, 128, True) is None
    with pytest.raises(IncompatibleError, match="multiple of 400"):
        Sparse(conv_kernel=5, conv_input="image", conv_stride=2).make_feedforward(0, 39, 1000, True)
    with pytest.raises(ConfigError, match="conv_stride"):
        Sparse(conv_kernel=5, conv_input="image", conv_stride=0)


def test_image_network_learns_with_reward_prop_gradients():
    from snnkit_neurons.nrr import NRR

    torch.manual_seed(0)
    conn = Sparse(conv_kernel=3, conv_input="image", recurrent_layers="1")
    net = Network(6, [2 * 36, 8, 8], 2, lambda k: NRR(k), conn, readout="linear")
    x = torch.rand(6, 3, 6)
    out = net(x)
    assert out.out.shape == (6, 3, 2) and out.hidden[0].s.shape == (6, 3, 72)
    out.logits.sum().backward()
    assert net.layers[0].ff.weight.grad.abs().sum() > 0


def test_train_deep_image_on_fbank_input(tmp_path, monkeypatch):
    """Two epochs of deep-image reward-prop through the real entry point on espeak-digits' fbank-l1 input."""
    import json

    from snnkit_core.engine.config import TrainConfig
    from snnkit_core.engine.training import train

    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path / "cache"))
    cfg = TrainConfig(
        neuron="nrr",
        conn="sparse",
        rules=("reward-prop",),
        dataset="espeak-digits",
        hidden=(400, 16, 16),
        epochs=2,
        limit=40,
        batch_size=20,
        seed=0,
        device="cpu",
        lr=1e-3,
        params={
            "conn": {"conv_kernel": 5, "conv_input": "image", "conv_stride": 2, "recurrent_layers": "1"},
            "dataset": {"features": "fbank-l1", "n_mels": 39, "steps": 39},
        },
    )
    run = tmp_path / "run"
    list(train(cfg, run))
    m = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert len(m) == 2 and all(0 <= r["train_accuracy"] <= 1 for r in m)
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ck["model"]["layers.0.ff.conv.weight"].shape == (1, 1, 5, 5)
