"""Contract tests a plugin inherits: subclass one per component and pytest runs the checks on it.

snnkit registers this module as a pytest plugin (entry point ``pytest11: snnkit``), so its fixtures are
available in any test session where snnkit is installed; the contract classes are imported as usual::

    from snnkit.testing import NeuronContract

    class TestMyNeuron(NeuronContract):
        neuron_cls = MyNeuron
        params = {"v_th": 0.5}

Each class states what it needs as class attributes (the component class, its parameters, small sizes) and
checks what every component of that kind promises:

* :class:`NeuronContract`: state shapes, ``step`` shapes, ``scan_chunk`` and any fused scan equal the
  reference scan (the oracle, forward and gradients), a ``sums_inputs`` neuron really depends only on the sum,
  gradients reach the input (``has_surrogate``), declared capabilities have their members (``leak``,
  ``tau_s``), and the installed rules' compatibility verdicts come with structured reasons;
* :class:`ConnectivityContract`: declared structure and weights, its own fast scan equals the reference scan
  (forward and gradients, float64), skip edges are valid, a network with it trains one step;
* :class:`RuleContract`: it accepts the neuron and connectivity it is tested with, ``train_step`` returns a
  finite loss and logits and changes parameters, ``eval_step`` changes nothing, and its
  ``state_dict`` survives a checkpoint round trip (``torch.save`` / ``torch.load(weights_only=True)``);
* :class:`DatasetContract`: each split loads as ``ArrayData`` of the declared input size and classes, and
  ``identity()`` is JSON.
"""

from __future__ import annotations

import copy
import io
import json
from typing import Any, ClassVar, NamedTuple

import pytest
import torch

from snnkit_core.contract.interfaces import ArrayData, Batch, Connectivity, Dataset, LearningRule, Neuron
from snnkit_core.contract.plugins import get_registry
from snnkit_core.contract.scan import reference_scan
from snnkit_core.contract.surrogate import spike
from snnkit_core.engine.assembly import assemble
from snnkit_core.engine.network import Network


class _S(NamedTuple):
    v: torch.Tensor


class ContractIF(Neuron):
    """Integrate-and-fire with soft reset and a triangle surrogate: the neuron contract tests of connectivities
    and rules use by default (it has a surrogate, no leak, no PSC)."""

    name = "contract-if"
    description = "integrate-and-fire used by snnkit.testing"

    def initial_state(self, batch, device, dtype):
        return _S(torch.zeros(batch, self.size, device=device, dtype=dtype))

    def step(self, current, state, recurrent=None):
        v = 0.8 * state.v + self.total_input(current, recurrent)
        s = spike(v - 1.0, "triangle", 1.0)
        return s, s, _S(v - s)


def _close(a, b, what):
    torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9, msg=lambda m: f"{what}: {m}")


def _grads(fn, inputs):
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    y, s = fn(*inputs)[:2]
    if not y.requires_grad:  # a neuron without a surrogate: values only
        return y.detach(), s.detach(), [None for _ in inputs]
    g = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    (y * g).sum().backward()
    return y.detach(), s.detach(), [t.grad for t in inputs]


class NeuronContract:
    """Subclass with ``neuron_cls`` (and ``params``) set."""

    neuron_cls: ClassVar[type[Neuron]]
    params: ClassVar[dict[str, Any]] = {}
    size: ClassVar[int] = 5
    steps: ClassVar[int] = 9
    batch: ClassVar[int] = 3
    scale: ClassVar[float] = 2.0  # input current scale: large enough that the neuron fires

    def make(self) -> Neuron:
        return self.neuron_cls(self.size, **self.params).double()

    def current(self, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return self.scale * torch.rand(self.steps, self.batch, self.size, generator=g, dtype=torch.float64)

    def test_state_and_step_shapes(self):
        n = self.make()
        state = n.initial_state(self.batch, torch.device("cpu"), torch.float64)
        assert hasattr(state, "_fields"), "initial_state must return a NamedTuple"
        assert all(t.shape == (self.batch, self.size) for t in state)
        y, s, new = n.step(self.current()[0], state)
        assert y.shape == s.shape == (self.batch, self.size) and type(new) is type(state)

    def test_reference_scan_fires_and_is_a_loop_of_step(self):
        n, cur = self.make(), self.current()
        y, s = reference_scan(n, cur)
        state = n.initial_state(self.batch, cur.device, cur.dtype)
        for t in range(self.steps):
            yt, st, state = n.step(cur[t], state)
            _close(y[t], yt, f"step {t}")
        assert 0 < float(s.sum()), "the neuron never fired: raise `scale` so the contract tests are not vacuous"

    def test_scan_chunk_equals_the_reference_scan(self):
        n, cur = self.make(), self.current()
        rec = self.current(1) * 0.3
        state = n.initial_state(self.batch, cur.device, cur.dtype)
        fast = _grads(lambda c, r: n.scan_chunk(c, state, r)[:2], [cur, rec])

        def oracle(c, r):
            st, ys, ss = n.initial_state(self.batch, c.device, c.dtype), [], []
            for t in range(self.steps):
                y, s, st = n.step(c[t], st, r[t])
                ys.append(y)
                ss.append(s)
            return torch.stack(ys), torch.stack(ss)

        ref = _grads(oracle, [cur, rec])
        for a, b, what in zip([*fast[:2], *fast[2]], [*ref[:2], *ref[2]], ["y", "s", "dL/dI", "dL/dR"]):
            if a is None or b is None:
                assert a is None and b is None, f"{what}: a gradient on one path only"
            else:
                _close(a, b, what)
        assert reference_scan(n, cur)[0].shape == (self.steps, self.batch, self.size)

    def test_a_neuron_that_sums_its_inputs_depends_only_on_the_sum(self):
        n = self.make()
        if not n.sums_inputs:
            pytest.skip("sums_inputs is False: the neuron keeps its inputs apart")
        cur, rec = self.current()[0], self.current(1)[0]
        state = n.initial_state(self.batch, cur.device, cur.dtype)
        a = n.step(cur, state, rec)
        b = n.step(cur + rec, state)
        _close(a[0], b[0], "y")

    def test_gradient_reaches_the_input(self):
        n = self.make()
        if not n.has_surrogate:
            pytest.skip("has_surrogate is False")
        _, _, (g,) = _grads(lambda c: reference_scan(n, c), [self.current()])
        assert g is not None and bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0

    def test_declared_capabilities_have_their_members(self):
        n = self.make()
        if n.has_leak:
            assert isinstance(n.leak, torch.Tensor) and n.leak.shape == (self.size,), "has_leak: set self.leak (N,)"
            assert n.make_leak_trainable() is n.leak and isinstance(n.leak, torch.nn.Parameter)
        if n.has_psc:
            assert n.tau_s is not None and float(n.tau_s) > 1, "has_psc: set self.tau_s (steps)"
        if n.has_surrogate:
            n.set_surrogate(*n.default_surrogate)

    def test_compatibility_verdicts_are_structured(self):
        reg = get_registry()
        for name in reg.names("rule"):
            for reason in reg.get("rule", name)().reasons(self.neuron_cls, None):
                assert reason.component == "neuron" and reason.name == self.neuron_cls.name and reason.text


class ConnectivityContract:
    """Subclass with ``conn_cls`` (and ``params``) set; ``neuron_cls`` defaults to :class:`ContractIF`."""

    conn_cls: ClassVar[type[Connectivity]]
    params: ClassVar[dict[str, Any]] = {}
    neuron_cls: ClassVar[type[Neuron]] = ContractIF
    neuron_params: ClassVar[dict[str, Any]] = {}
    hidden: ClassVar[tuple[int, ...]] = (6, 6, 6)
    steps: ClassVar[int] = 11
    weight_scale: ClassVar[float] = 3.0

    def network(self, backend: str = "auto"):
        torch.manual_seed(0)
        net = Network(3, self.hidden, 4, lambda k: self.neuron_cls(k, **self.neuron_params),
                      self.conn_cls(**self.params), readout="linear", weight_scale=self.weight_scale).double()
        net.backend = backend
        return net

    def test_declared_structure_and_weights(self):
        conn = self.conn_cls(**self.params)
        for i, n in enumerate(self.hidden):
            rec = conn.make_recurrence(i, n)
            if self.conn_cls.recurrence == "none":
                assert rec is None, "recurrence = 'none' but make_recurrence returned one"
                continue
            assert rec is not None and rec.structure == self.conn_cls.recurrence and rec.span >= 1
            assert rec.weight is not None, "declare the recurrent weight as self.weight"
            assert rec.weight.shape == ((n,) if rec.structure == "diagonal" else (n, n))
        edges = conn.skip_edges(len(self.hidden))
        assert bool(edges) == self.conn_cls.has_skip and all(0 <= a < b - 1 < len(self.hidden) for a, b in edges)

    def test_every_scan_path_equals_the_reference_scan(self):
        x = 2 * torch.rand(self.steps, 2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        results = []
        for backend in ("torch", "reference"):
            net = self.network(backend)
            out = net(x).logits
            out.pow(2).sum().backward()
            results.append((out.detach(), [p.grad for p in net.parameters() if p.requires_grad]))
        _close(results[0][0], results[1][0], "logits")
        assert float(results[1][0].abs().sum()) > 0
        for a, b in zip(results[0][1], results[1][1]):
            if a is None or b is None:
                assert a is None and b is None
            else:
                _close(a, b, "gradient")

    def test_a_network_trains_one_step(self):
        net = self.network()
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        before = copy.deepcopy(net.state_dict())
        x = 2 * torch.rand(self.steps, 2, 3, dtype=torch.float64)
        torch.nn.functional.cross_entropy(net(x).logits, torch.tensor([0, 1])).backward()
        opt.step()
        assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())


class RuleContract:
    """Subclass with ``rule_cls`` set; ``neuron_cls`` / ``conn_cls`` are a combination the rule must accept
    (``conn_cls`` None: feedforward). Add-on rules are tested with ``gradient_cls`` (default: a
    cross-entropy rule)."""

    rule_cls: ClassVar[type[LearningRule]]
    params: ClassVar[dict[str, Any]] = {}
    neuron_cls: ClassVar[type[Neuron]] = ContractIF
    neuron_params: ClassVar[dict[str, Any]] = {}
    conn_cls: ClassVar[type[Connectivity] | None] = None
    gradient_cls: ClassVar[type[LearningRule] | None] = None
    hidden: ClassVar[tuple[int, ...]] = (8, 8, 8)
    steps: ClassVar[int] = 10
    weight_scale: ClassVar[float] = 3.0

    def rules(self) -> list[LearningRule]:
        rule = self.rule_cls(**self.params)
        if rule.role == "gradient":
            return [rule]
        return [(self.gradient_cls or _CrossEntropy)(), rule]

    def assemble(self, rules):
        conn = (self.conn_cls or _Feedforward)()
        return assemble(self.neuron_cls, conn, rules, input_size=3, num_classes=4, hidden=self.hidden,
                        neuron_params=self.neuron_params, seed=0, weight_scale=self.weight_scale)

    def batch(self) -> Batch:
        g = torch.Generator().manual_seed(0)
        return Batch(2 * torch.rand(self.steps, 4, 3, generator=g), torch.tensor([0, 1, 2, 3]), torch.arange(4))

    def test_it_accepts_the_combination_it_is_tested_with(self):
        rule = self.rule_cls(**self.params)
        assert rule.check(self.neuron_cls, self.conn_cls or _Feedforward) == []

    def test_train_step_updates_and_evaluation_does_not(self):
        rules = self.rules()
        net = self.assemble(rules)
        grad_rule = rules[0]
        opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.05)
        before = copy.deepcopy(net.state_dict())
        with torch.no_grad():
            loss, logits = grad_rule.eval_step(net, self.batch())
        assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()), "evaluation changed the network"
        loss, logits = grad_rule.train_step(net, self.batch(), opt)
        assert loss.ndim == 0 and bool(torch.isfinite(loss)) and logits.shape == (4, 4)
        assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items()), "train_step changed nothing"

    def test_rule_state_survives_a_checkpoint(self):
        rules = self.rules()
        net = self.assemble(rules)
        opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.05)
        rules[0].train_step(net, self.batch(), opt)
        for r in rules:
            r.on_epoch_end(net, 0)
            buf = io.BytesIO()
            torch.save(r.state_dict(), buf)
            buf.seek(0)
            state = torch.load(buf, weights_only=True)
            fresh = type(r)(**(self.params if type(r) is self.rule_cls else {}))
            fresh.load_state_dict(state)
            assert json.dumps(_plain(fresh.state_dict())) == json.dumps(_plain(r.state_dict()))


class DatasetContract:
    """Subclass with ``dataset_cls`` (and ``params``, ``data_dir``) set."""

    dataset_cls: ClassVar[type[Dataset]]
    params: ClassVar[dict[str, Any]] = {}
    data_dir: ClassVar[str | None] = None

    def test_every_split_loads_with_the_declared_shape(self):
        ds = self.dataset_cls(data_dir=self.data_dir, **self.params)
        for split in ds.splits:
            data = ds.load(split)
            assert isinstance(data, ArrayData) and len(data) > 0
            channels = data.x.shape[2]
            assert channels == ds.input_size, f"{split}: x has {channels} channels, input_size {ds.input_size}"
            assert int(data.y.min()) >= 0 and int(data.y.max()) < ds.num_classes
            assert len(ds.class_names) == ds.num_classes

    def test_identity_is_json(self):
        ds = self.dataset_cls(data_dir=self.data_dir, **self.params)
        assert json.loads(json.dumps(ds.identity()))["name"] == ds.name


def _plain(state):
    """A rule state with tensors as lists, for comparison."""
    if isinstance(state, torch.Tensor):
        return state.tolist()
    if isinstance(state, dict):
        return {k: _plain(v) for k, v in sorted(state.items())}
    if isinstance(state, (list, tuple)):
        return [_plain(v) for v in state]
    return state


class _Feedforward(Connectivity):
    """No recurrence, no skips (the contract tests' default connectivity)."""

    name = "contract-ff"


class _CrossEntropy(LearningRule):
    """Cross-entropy on the linear readout (the gradient rule add-on contracts compose with by default)."""

    name = "contract-ce"
    readout = "linear"

    def loss(self, output, target):
        return torch.nn.functional.cross_entropy(output.logits, target)


@pytest.fixture
def snnkit_registry():
    """The registry of installed snnkit plugins (a pytest fixture from snnkit's pytest plugin)."""
    return get_registry()
