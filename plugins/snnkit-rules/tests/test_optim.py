"""The built-in rules' optimizer (snnkit_rules.optim.adam): fused where torch has it, the same update as the
plain form, checkpoints interchangeable, and the plain form where the fused one is refused."""

from __future__ import annotations

import copy

import pytest
import torch

from snnkit_rules.optim import adam


def _params(dtype=torch.float32):
    torch.manual_seed(0)
    return [torch.nn.Parameter(torch.randn(40, 30, dtype=dtype)), torch.nn.Parameter(torch.randn(30, dtype=dtype))]


def _steps(opt, params, n, seed=1):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        opt.step()


@pytest.mark.parametrize("adamw", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_on_the_cpu_and_the_same_update_as_the_plain_form(adamw, dtype):
    fused, plain = _params(dtype), _params(dtype)
    opts = dict(lr=1e-2, weight_decay=1e-3, betas=(0.9, 0.999))
    a = adam([{"params": fused}], adamw=adamw, **opts)
    b = (torch.optim.AdamW if adamw else torch.optim.Adam)([{"params": plain}], **opts)
    assert a.defaults["fused"] is True and type(a) is type(b)
    _steps(a, fused, 5)
    _steps(b, plain, 5)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    for x, y, start in zip(fused, plain, _params(dtype)):
        assert (x - start).abs().mean() > 1e-3  # it moved (5 steps of lr 1e-2)
        torch.testing.assert_close(x, y, rtol=tol, atol=tol)


def test_a_checkpoint_of_either_form_resumes_in_the_other():
    p1, p2 = _params(), _params()
    a = adam([{"params": p1}], lr=1e-2)
    _steps(a, p1, 3)
    b = torch.optim.Adam([{"params": p2}], lr=1e-2)
    with torch.no_grad():
        for x, y in zip(p2, p1):
            x.copy_(y)
    b.load_state_dict(copy.deepcopy(a.state_dict()))  # fused -> plain (deep: as a checkpoint file holds it)
    _steps(a, p1, 2, seed=7)
    _steps(b, p2, 2, seed=7)
    for x, y in zip(p1, p2):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)
    c = adam([{"params": _params()}], lr=1e-2)
    c.load_state_dict(copy.deepcopy(b.state_dict()))  # plain -> fused: takes the plain form's state
    assert len(c.state) == 2


def test_the_plain_form_where_the_fused_one_is_refused(monkeypatch):
    real = torch.optim.Adam

    class NoFused(real):
        def __init__(self, params, **kw):
            if kw.get("fused"):
                raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported "
                                   "devices")
            super().__init__(params, **kw)

    monkeypatch.setattr(torch.optim, "Adam", NoFused)
    opt = adam([{"params": _params()}], lr=1e-3)
    assert isinstance(opt, NoFused) and not opt.defaults.get("fused")
