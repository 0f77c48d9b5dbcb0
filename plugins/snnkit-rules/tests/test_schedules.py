"""Every gradient rule offers the same per-epoch learning-rate schedules (rule.NAME.scheduler), each rule keeping
its own default (bptt and tssl-bp none, st-rsbp the reference's 1/sqrt(epoch + 1), reward-prop the authors' step)."""

from __future__ import annotations

import math

import pytest
import torch

from snnkit_core.contract.plugins import get_registry

GRADIENT = ("bptt", "tssl-bp", "st-rsbp", "reward-prop")


def _lrs(rule, epochs=6):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = rule.make_scheduler(opt, epochs)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        if sched is not None:
            opt.step()
            sched.step()
    return out


def test_every_gradient_rule_is_a_gradient_rule_with_the_schedules():
    reg = get_registry()
    gradient = {n for n in reg.names("rule") if reg.get("rule", n).role == "gradient"}
    assert gradient == set(GRADIENT)
    for name in GRADIENT:
        params = {p.name: p for p in reg.get("rule", name).params}
        assert set(params["scheduler"].choices) == {"none", "cosine", "onecycle", "step", "sqrt"}, name


@pytest.mark.parametrize("name", GRADIENT)
def test_each_kind_schedules_the_same_way_for_every_rule(name):
    cls = get_registry().get("rule", name)
    assert _lrs(cls(scheduler="none")) == [1.0] * 6
    assert _lrs(cls(scheduler="sqrt")) == pytest.approx([1 / math.sqrt(e + 1) for e in range(6)])
    assert _lrs(cls(scheduler="step", step_size=2, step_gamma=0.5)) == pytest.approx([1, 1, .5, .5, .25, .25])
    cosine = _lrs(cls(scheduler="cosine"))
    assert cosine[0] == 1.0 and all(a > b for a, b in zip(cosine, cosine[1:]))
    onecycle = _lrs(cls(scheduler="onecycle"))
    assert max(onecycle) == pytest.approx(1.0, rel=0.05) and onecycle[0] < 0.1


def test_the_rules_keep_their_own_default_schedules():
    reg = get_registry()
    assert _lrs(reg.get("rule", "bptt")()) == [1.0] * 6
    assert _lrs(reg.get("rule", "tssl-bp")()) == [1.0] * 6
    assert _lrs(reg.get("rule", "st-rsbp")()) == pytest.approx([1 / math.sqrt(e + 1) for e in range(6)])
    assert _lrs(reg.get("rule", "reward-prop")(step_size=2)) == pytest.approx([1, 1, .8, .8, .64, .64])
    assert _lrs(reg.get("rule", "st-rsbp")(lr_decay="none")) == [1.0] * 6  # the older spelling still turns it off
