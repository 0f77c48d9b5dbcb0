"""The plan is the truth: the manifest of a CPU run says per layer which implementation ran (C kernel or torch
loop) and why a faster one was skipped; a planned implementation that cannot take a call is recorded under auto
and refused under an explicit backend."""

from __future__ import annotations

import json

import pytest
import torch

from snnkit_core import hookimpl


def test_a_cpu_runs_manifest_shows_per_layer_c_kernel_or_torch_loop_and_why(fake, tmp_path):
    from snnkit_core.engine.config import TrainConfig
    from snnkit_core.engine.training import build, train

    cfg = TrainConfig(neuron="lif", conn="srsc", rules=("bptt",), dataset="tiny", hidden=(8, 8, 8), epochs=1,
                      batch_size=16, device="cpu", backend="auto")
    list(train(cfg, tmp_path / "run", built=build(cfg)))
    plan = json.loads((tmp_path / "run" / "manifest.json").read_text())["plan"]
    assert [row["layer"] for row in plan] == ["layer0", "layer1", "layer2"]  # bptt: a linear readout
    implementations = {row["implementation"] for row in plan}
    assert len(implementations) == 1 and implementations <= {"c-kernel", "torch-loop"}
    for row in plan:
        assert row["path"] == "fast"
        skipped = {s["implementation"]: s["reason"] for s in row["skipped"]}
        assert "triton" in skipped  # a CPU: the Triton kernel was considered and passed over, with the reason
        if row["implementation"] == "torch-loop":
            assert skipped["c-kernel"]  # and why the C kernel did not run


def _half_network(backend):
    from snnkit_core.contract.plugins import get_registry
    from snnkit_core.engine.network import Network

    reg = get_registry()
    torch.manual_seed(0)
    net = Network(3, (5,), 2, lambda n: reg.get("neuron", "lif")(n), reg.get("connectivity", "ff")())
    net.backend = backend
    return net


def test_a_call_the_planned_implementation_cannot_take_is_an_event_under_auto():
    net = _half_network("auto")
    assert net.paths() == ["fast", "fast"]
    x = torch.rand(6, 2, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.warns(RuntimeWarning, match="takes no torch.bfloat16"):
        out = net(x)  # the C scan takes float32/float64: this call runs the reference scan instead
    assert out.logits.shape == (2, 2) and len(net.plan_events) == 2
    assert net.plan_events[0].startswith("layer0: ") and net.plan_events[1].startswith("output: ")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        net(x)
    assert len(net.plan_events) == 2  # recorded once per layer and reason


def test_the_same_call_is_an_error_under_an_explicit_backend():
    from snnkit_core.contract.errors import IncompatibleError

    net = _half_network("torch")
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(IncompatibleError, match="--backend torch"):
        net(torch.rand(6, 2, 3))


class _DoubleSpeed:
    """An in-process plugin that registers an implementation for the fake plugin's toy neuron."""

    calls: list = []

    @staticmethod
    def scan(neuron, current, recurrence):
        from snnkit_core.contract.scan import reference_scan

        _DoubleSpeed.calls.append(current.shape)
        return reference_scan(neuron, current, recurrence)

    @hookimpl
    def register_implementations(self, register):
        from snnkit_core.contract.implementations import Implementation

        register(Implementation("loop", "toy-neuron", "none", "cpu", _DoubleSpeed.scan,
                                accepts=lambda layer: None if layer.index == 0 else "only the first layer"))


def test_a_plugin_registers_an_implementation_through_the_hook_and_the_plan_names_it(fake, monkeypatch):
    from snnkit_core.contract import implementations
    from snnkit_core.contract.errors import RegistrationError
    from snnkit_core.engine.network import Network

    # the registry is per process: give this test its own copy, so the toy implementation leaves with it
    monkeypatch.setattr(implementations, "_registered", {k: list(v) for k, v in implementations._registered.items()})
    monkeypatch.setattr(implementations, "_owner", dict(implementations._owner))
    fake.register_plugin(_DoubleSpeed(), name="double-speed")
    try:
        reg = fake.get_registry()
        net = Network(3, (4, 4), 2, lambda n: reg.get("neuron", "toy-neuron")(n), reg.get("connectivity", "ff")())
        report = net.plan_report()
        assert [r["implementation"] for r in report] == ["loop", "reference", "reference"]
        want = {"implementation": "loop", "reason": "only the first layer", "unavailable": False}
        assert report[1]["skipped"] == [want]
        net(torch.rand(5, 2, 3))
        assert _DoubleSpeed.calls == [(5, 2, 4)]
        other = implementations.Implementation("loop", "toy-neuron", "none", "cpu", print)
        with pytest.raises(RegistrationError, match="registered by plugin 'double-speed' already"):
            implementations.register(other, plugin="someone-else")
    finally:
        fake.unregister_plugin("double-speed")
