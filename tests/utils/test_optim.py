"""Fused Adam where torch has it; the same updates as the per-tensor implementation."""

from __future__ import annotations

import math

import pytest
import torch

from synthmed.train.ldm.config import UNetTrainConfig
from synthmed.train.ldm.optim import EMA, build_optimizer
from synthmed.utils.optim import decay_tail_factor, fused_option


def test_fused_only_for_float32_parameters_on_cpu_or_cuda():
    w, b = torch.nn.Parameter(torch.zeros(3, 2)), torch.nn.Parameter(torch.zeros(3))
    assert fused_option([w, b]) == {"fused": True}
    assert fused_option([{"params": [w]}, {"params": [b], "weight_decay": 0.0}]) == {"fused": True}
    assert fused_option([w, torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))]) == {}
    assert fused_option([]) == {}


def test_fused_adamw_follows_the_per_tensor_updates():
    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 1)) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    cfg = UNetTrainConfig(lr=1e-2, weight_decay=0.01)
    fused = build_optimizer(nets[0].parameters(), cfg)
    plain = torch.optim.AdamW(nets[1].parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, eps=cfg.adam_eps)
    assert fused.defaults["fused"] and not plain.defaults.get("fused")
    x, y = torch.randn(32, 8), torch.randn(32, 1)
    for _ in range(20):
        for net, opt in zip(nets, (fused, plain), strict=True):
            opt.zero_grad()
            torch.nn.functional.mse_loss(net(x), y).backward()
            opt.step()
    for p, q in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-5)


def test_ema_update_is_the_decayed_average():
    net = torch.nn.Linear(4, 2)
    ema = EMA(net, decay=0.9)
    start = {k: v.clone() for k, v in ema.shadow.items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net, step=1000)                      # warmed up: decay 0.9
    for name, p in net.named_parameters():
        assert torch.allclose(ema.shadow[name], 0.9 * start[name] + 0.1 * p.detach(), atol=1e-6)


def test_decay_tail_is_constant_then_a_cosine_to_zero():
    factors = [decay_tail_factor(step, 10, 4) for step in range(10)]
    assert factors[:7] == [1.0] * 7  # step 6 is the tail's first: cos(0) = 1
    assert factors[6:] == pytest.approx([0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)])
    assert all(a > b for a, b in zip(factors[6:], factors[7:], strict=False)) and factors[-1] > 0
    assert [decay_tail_factor(step, 10, 0) for step in range(10)] == [1.0] * 10
    assert decay_tail_factor(0, 10, 10) == 1.0 and decay_tail_factor(5, 10, 10) == pytest.approx(0.5)
