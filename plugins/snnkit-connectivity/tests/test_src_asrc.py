"""dense / src / asrc (spec §5.2-5.4): fast scans against the step-by-step reference, reductions between the
three, temperature schedule, hardmax in eval, optimizer groups, schedulers, presets and short training runs."""

from __future__ import annotations

import copy
import json
import os
import tomllib

import pytest
import torch

from snnkit_connectivity.asrc import ASRC, SRC, Dense
from snnkit_core.contract.errors import ConfigError
from snnkit_core.contract.interfaces import Neuron
from snnkit_core.engine.config import TrainConfig
from snnkit_core.engine.network import Network
from snnkit_neurons.lif_soft import LIFSoft


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def _cache(tmp_path_factory):
    old = os.environ.get("SNNKIT_CACHE")
    os.environ["SNNKIT_CACHE"] = str(tmp_path_factory.mktemp("snnkit-cache"))
    yield
    if old is None:
        os.environ.pop("SNNKIT_CACHE", None)
    else:
        os.environ["SNNKIT_CACHE"] = old


def make_net(conn, seed=0, hidden=(5, 4)):
    torch.manual_seed(seed)
    net = Network(
        3, hidden, 3, lambda n: LIFSoft(n), conn, readout="linear", bias=True, init="default", weight_scale=3.0
    )
    return net.double()


def inputs(T=20, B=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(T, B, 3, generator=g, dtype=torch.float64) * 2.0 + 0.5).requires_grad_()


def run(net, x, backend="torch"):
    """Forward + backward of a random projection of the logits; returns logits, spikes, param grads, input grad."""
    net.backend = backend
    x = x.detach().clone().requires_grad_()
    out = net(x)
    g = torch.Generator().manual_seed(7)
    (out.logits * torch.randn(out.logits.shape, generator=g, dtype=out.logits.dtype)).sum().backward()
    grads = {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}
    net.zero_grad(set_to_none=True)
    return out.logits.detach(), [t.s.detach() for t in out.hidden], grads, x.grad.clone()


def assert_same(a, b, params=None):
    la, sa, ga, xa = a
    lb, sb, gb, xb = b
    torch.testing.assert_close(la, lb, rtol=1e-10, atol=1e-10)
    for u, v in zip(sa, sb):
        assert torch.equal(u, v)
    keys = params if params is not None else sorted(ga)
    assert keys, "no gradients to compare"
    for k in keys:
        torch.testing.assert_close(ga[k], gb[k], rtol=1e-9, atol=1e-11, msg=lambda m, k=k: f"{k}: {m}")
    torch.testing.assert_close(xa, xb, rtol=1e-9, atol=1e-11)


def _some_spikes(result):
    for s in result[1]:
        rate = float(s.mean())
        assert 0.02 < rate < 0.98, f"degenerate test network (firing rate {rate})"


# --------------------------------------------------------------------------------- fast scan == reference


@pytest.mark.parametrize("k,T", [(3, 20), (4, 20), (1, 7), (25, 20)])
def test_chunked_src_equals_reference_forward_and_gradients(k, T):
    net = make_net(SRC(skip_span=k))
    x = inputs(T)
    fast = run(net, x, "torch")
    ref = run(copy.deepcopy(net), x, "reference")
    _some_spikes(fast)
    assert_same(fast, ref)
    names = set(fast[2])
    assert {"layers.0.ff.weight", "layers.0.ff.bias", "layers.1.ff.weight", "output.weight"} <= names
    if k < T:  # the recurrence acts, and V gets a gradient
        assert {"layers.0.recurrence.weight", "layers.1.recurrence.weight"} <= names
        assert float(fast[2]["layers.1.recurrence.weight"].abs().sum()) > 0


def test_dense_scan_equals_reference():
    net = make_net(Dense())
    x = inputs()
    fast = run(net, x, "torch")
    _some_spikes(fast)
    assert_same(fast, run(copy.deepcopy(net), x, "reference"))


def _random_kernel(net, tau=0.7, seed=3):
    g = torch.Generator().manual_seed(seed)
    for layer in net.layers:
        rec = layer.recurrence
        rec.kernel.data = torch.randn(rec.kernel.shape, generator=g, dtype=rec.kernel.dtype)
        rec.tau.fill_(tau)


def test_asrc_training_scan_equals_reference_including_kernel_gradient():
    net = make_net(ASRC(max_span=5))
    _random_kernel(net)
    x = inputs()
    fast = run(net, x, "torch")
    _some_spikes(fast)
    assert_same(fast, run(copy.deepcopy(net), x, "reference"))
    assert float(fast[2]["layers.0.recurrence.kernel"].abs().sum()) > 0


# ------------------------------------------------------------------------------------------- reductions


def test_src_with_span_one_equals_dense():
    dense, src = make_net(Dense()), make_net(SRC(skip_span=1))
    src.load_state_dict(dense.state_dict())
    x = inputs()
    a = run(dense, x)
    assert_same(a, run(src, x))
    assert_same(a, run(src, x, "reference"))


@pytest.mark.parametrize("k", [1, 3])
def test_asrc_with_one_hot_kernel_equals_src(k):
    """Training mode, p large at index k-1 and τ tiny: α is exactly one-hot in float64, so ASRC == SRC(k)."""
    src = make_net(SRC(skip_span=k))
    asrc = make_net(ASRC(max_span=5))
    missing = asrc.load_state_dict(src.state_dict(), strict=False).missing_keys
    assert sorted(missing) == sorted(f"layers.{i}.recurrence.{n}" for i in (0, 1) for n in ("kernel", "tau"))
    for layer in asrc.layers:
        layer.recurrence.kernel.data[k - 1] = 50.0
        layer.recurrence.tau.fill_(0.01)
    x = inputs()
    a = run(src, x)
    _some_spikes(a)
    b = run(asrc, x)
    assert_same(a, b, params=sorted(a[2]))


def test_asrc_eval_uses_hardmax_span():
    asrc = make_net(ASRC(max_span=5))
    _random_kernel(asrc, tau=1.0)
    spans = [layer.recurrence.hard_span() for layer in asrc.layers]
    asrc.eval()
    x = inputs()
    with torch.no_grad():
        asrc.backend = "torch"
        fast = asrc(x)
        asrc.backend = "reference"
        ref = asrc(x)
        torch.testing.assert_close(fast.logits, ref.logits, rtol=1e-10, atol=1e-10)
        for i, k in enumerate(spans):
            # each layer alone equals SRC with span argmax p + 1 (the layer inputs are the same spikes)
            layer = asrc.layers[i]
            src = SRC(skip_span=k).make_recurrence(i, layer.size).double()
            src.weight.data.copy_(layer.recurrence.weight)
            h = x if i == 0 else fast.hidden[i - 1].y
            y_src, _ = src.scan(layer.neuron, layer.ff(h))
            assert torch.equal(y_src, fast.hidden[i].y)
    # and differs from the training-mode (soft) forward
    asrc.train()
    with torch.no_grad():
        soft = asrc(x)
    assert not torch.allclose(soft.logits, fast.logits)


def test_asrc_eval_kernel_soft_evaluates_the_training_kernel():
    """``eval_kernel = soft``: eval mode runs softmax(p/τ) over all spans, exactly the training-mode forward (this
    network has no dropout), on both scan backends; the default stays the paper's hardmax; a bad value is refused."""
    soft_net = make_net(ASRC(max_span=5, eval_kernel="soft"))
    _random_kernel(soft_net, tau=1.0)
    x = inputs()
    with torch.no_grad():
        soft_net.train()
        trained = soft_net(x)
        soft_net.eval()
        for backend in ("torch", "reference"):
            soft_net.backend = backend
            torch.testing.assert_close(soft_net(x).logits, trained.logits, rtol=1e-10, atol=1e-10)
        for layer in soft_net.layers:
            layer.recurrence.eval_kernel = "hardmax"
        assert not torch.allclose(soft_net(x).logits, trained.logits)
    assert ASRC().hparams["eval_kernel"] == "hardmax"
    with pytest.raises(ConfigError, match="eval_kernel"):
        ASRC(eval_kernel="argmax")


# ---------------------------------------------------------------------------------- schedule and records


def test_temperature_schedule_state_dict_and_describe():
    net = make_net(ASRC(max_span=4))
    rec = net.layers[0].recurrence
    assert float(rec.tau) == 1.0 and torch.equal(rec.kernel.detach(), torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(rec.alpha(), torch.full((4,), 0.25, dtype=torch.float64))
    for e in range(5):
        net.on_epoch_end(e)
    for layer in net.layers:
        assert float(layer.recurrence.tau) == pytest.approx(0.96**5, rel=1e-12)
    sd = net.state_dict()
    assert "layers.0.recurrence.tau" in sd and "layers.0.recurrence.kernel" in sd
    assert all("tau" not in name for name, _ in net.named_parameters())
    rec.kernel.data = torch.tensor([0.0, 0.3, 0.1, -1.0], dtype=torch.float64)
    d = net.describe()
    assert d["layer0"]["span"] == 2
    assert d["layer0"]["tau"] == pytest.approx(0.96**5)
    assert sum(d["layer0"]["alpha"]) == pytest.approx(1.0, abs=1e-5) and len(d["layer0"]["alpha"]) == 4
    assert make_net(SRC(skip_span=6)).describe()["layer1"] == {
        "span": 6, "spike_product": {"mode": "auto", "sparse_calls": 0, "dense_calls": 0}}  # the input map's record


def _cfg(conn, **kw):
    base = dict(neuron="lif-soft", conn=conn, rules=("bptt",), dataset="espeak-digits", hidden=(8, 8), bias=True,
                init="default", readout="linear", device="cpu", lr=1e-3, weight_decay=0.01)
    base.update(kw)
    return TrainConfig(**base)


def test_kernel_gets_own_optimizer_group():
    from snnkit_core.engine.training import build, make_optimizer

    built = build(_cfg("asrc", params={"conn": {"max_span": 7}, "rule.bptt": {"optimizer": "adamw"}}))
    opt = make_optimizer(built)
    assert isinstance(opt, torch.optim.AdamW)
    kernel_groups = [g for g in opt.param_groups if g.get("name") == "asrc_kernel"]
    kernels = {id(layer.recurrence.kernel) for layer in built.network.layers}
    assert {id(p) for g in kernel_groups for p in g["params"]} == kernels
    for g in kernel_groups:
        assert g["lr"] == pytest.approx(0.1) and g["weight_decay"] == 0.0
    weights = opt.param_groups[0]
    assert weights["lr"] == pytest.approx(1e-3) and weights["weight_decay"] == pytest.approx(0.01)
    assert not kernels & {id(p) for p in weights["params"]}
    # V is orthogonal (gain 1) and not re-initialised by the network's Linear init
    v = built.network.layers[1].recurrence.weight.detach()
    torch.testing.assert_close(v @ v.t(), torch.eye(8), atol=1e-5, rtol=0)


def test_bptt_onecycle_and_cosine_schedulers():
    from snnkit_rules.bptt import BPTT

    w = torch.nn.Parameter(torch.zeros(3))
    p = torch.nn.Parameter(torch.zeros(3))
    rule = BPTT(optimizer="adamw", scheduler="onecycle")
    opt = rule.make_optimizer([{"params": [w]}, {"params": [p], "lr": 0.1, "weight_decay": 0.0}], 1e-3, 0.01)
    sched = rule.make_scheduler(opt, 10)
    assert isinstance(sched, torch.optim.lr_scheduler.OneCycleLR)
    lrs, betas = [], []
    for _ in range(10):
        lrs.append([g["lr"] for g in opt.param_groups])
        betas.append(opt.param_groups[0]["betas"][0])
        opt.step()
        sched.step()
    assert max(lr[0] for lr in lrs) == pytest.approx(1e-3)
    assert max(lr[1] for lr in lrs) == pytest.approx(0.1)  # each group peaks at its own lr
    assert lrs[0][0] == pytest.approx(1e-3 / 25)  # PyTorch default div_factor
    assert betas[0] == pytest.approx(0.95) and min(betas) == pytest.approx(0.85) and betas[-1] > 0.9
    cos = BPTT(scheduler="cosine").make_scheduler(BPTT().make_optimizer([{"params": [w]}], 1e-3, 0.0), 5)
    assert isinstance(cos, torch.optim.lr_scheduler.CosineAnnealingLR) and cos.T_max == 5
    assert BPTT().make_scheduler(opt, 5) is None


def test_presets_load_and_resolve():
    from snnkit_core.contract.plugins import get_registry

    reg = get_registry()
    from snnkit_cli import presets as shipped

    presets = [shipped.get(n) for n in shipped.names() if n.startswith(("asrc-", "src-"))]
    assert len(presets) >= 8
    for preset in presets:
        cfg = preset.config()
        assert cfg.neuron == "lif-soft" and cfg.conn in ("src", "asrc") and cfg.rules == ("bptt",)
        assert cfg.readout == "linear" and cfg.bias and cfg.init == "default"
        reg.get("connectivity", cfg.conn).resolve(cfg.params.get("conn"))
        reg.get("rule", "bptt").resolve(cfg.params.get("rule.bptt"))
        assert cfg.params["rule.bptt"]["scheduler"] in ("onecycle", "cosine")
        assert "[train]" in preset.text and tomllib.loads(preset.text)


# --------------------------------------------------------------------------------------- training runs


@pytest.mark.slow
@pytest.mark.parametrize("conn,params", [("dense", {}), ("src", {"skip_span": 4}), ("asrc", {"max_span": 6})])
def test_short_training_run_loss_decreases(conn, params, _cache):
    from snnkit_core.engine.training import train

    cfg = _cfg(
        conn, hidden=(32,), epochs=3, batch_size=50, limit=300, lr=3e-3, weight_decay=0.0, params={"conn": params}
    )
    recs = list(train(cfg))
    assert len(recs) == 3
    assert recs[-1].train_loss < recs[0].train_loss
    if conn == "asrc":
        assert recs[-1].extra["recurrence"]["layer0"]["tau"] == pytest.approx(0.96**3)


@pytest.mark.slow
def test_cli_train_src_with_set(tmp_path, _cache):
    from click.testing import CliRunner

    from snnkit_cli.main import cli

    out = tmp_path / "run"
    res = CliRunner().invoke(
        cli,
        ["train", "--neuron", "lif-soft", "--conn", "src", "--rule", "bptt", "--set", "conn.skip_span=5", "--set",
         "rule.bptt.scheduler=onecycle", "--hidden", "16", "--epochs", "2", "--limit", "100", "--batch-size", "50",
         "--device", "cpu", "--out", str(out), "--quiet"],
    )
    assert res.exit_code == 0, res.output
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["recurrence"]["layer0"]["span"] for r in recs] == [5, 5]


@pytest.mark.parametrize("K,chunk,T", [(7, 3, 17), (4, 8, 11), (6, 1, 9)])
def test_asrc_toeplitz_chunks_equal_reference(K, chunk, T):
    """mixed_span_scan's chunk split (history part as one Toeplitz product) for chunk < K, > K and 1."""
    from snnkit_connectivity.asrc import mixed_span_scan
    from snnkit_core.contract.scan import reference_scan

    torch.manual_seed(0)
    rec = ASRC(max_span=K).make_recurrence(0, 5).double()
    rec.kernel.data = torch.randn(K, dtype=torch.float64)
    neuron = LIFSoft(5)
    g = torch.Generator().manual_seed(2)
    cur = (torch.randn(T, 2, 5, generator=g, dtype=torch.float64) + 0.7).requires_grad_()
    w = torch.randn(T, 2, 5, generator=g, dtype=torch.float64)
    results = []
    for fn in (
        lambda: mixed_span_scan(neuron, cur, rec.weight, rec.alpha(), chunk=chunk),
        lambda: reference_scan(neuron, cur, rec),
    ):
        y, s = fn()
        grads = torch.autograd.grad((y * w).sum(), (cur, rec.weight, rec.kernel))
        results.append((s.detach(), grads))
    assert torch.equal(results[0][0], results[1][0]) and 0 < float(results[0][0].mean()) < 1
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("conn", [SRC(skip_span=3), Dense(), ASRC(max_span=4)])
def test_fast_scans_work_with_a_neuron_without_chunk_scan(conn):
    """Any neuron: ``lif`` (PSC output, no ``scan_chunk``) goes through the per-step fallback, still exact."""
    from snnkit_neurons.lif import LIF

    torch.manual_seed(0)
    net = Network(3, (5, 4), 3, lambda n: LIF(n, tau_m=4.0, tau_s=2.0), conn, readout="linear", bias=True,
                  init="default", weight_scale=4.0).double()
    assert type(net.layers[0].neuron).scan_chunk is Neuron.scan_chunk  # lif has no chunk scan of its own
    x = inputs()
    assert_same(run(net, x), run(copy.deepcopy(net), x, "reference"))
