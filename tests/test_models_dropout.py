"""The CPU dropout path of the sequence models: same distribution and gradient as dropout, same attention."""

from __future__ import annotations

import pytest
import torch

from recsys.models.blocks import Dropout, SelfAttention, attention_mask, cpu_dropout


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_keeps_one_minus_p_and_rescales(p: float) -> None:
    torch.manual_seed(0)
    x = torch.ones(400_000)
    y = cpu_dropout(x, p)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.004  # ~6 standard deviations at n = 400k
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    assert abs(y.mean().item() - 1.0) < 0.01  # inverted dropout keeps the expectation


def test_gradient_is_the_mask_times_the_scale() -> None:
    torch.manual_seed(1)
    x = torch.randn(64, 32).abs().add(0.1).requires_grad_()
    y = cpu_dropout(x, 0.3)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y / x).detach())


def test_edges_and_modes() -> None:
    x = torch.randn(8, 4)
    assert cpu_dropout(x, 0.0) is x
    assert not cpu_dropout(x, 1.0).any()
    layer = Dropout(0.5)
    layer.eval()
    assert torch.equal(layer(x), x)
    layer.train()
    torch.manual_seed(3)
    first = layer(x)
    torch.manual_seed(3)
    assert torch.equal(layer(x), first)  # reproducible under torch's seed
    assert (first == 0).any() and (first != 0).any()


def test_written_out_attention_equals_the_fused_one() -> None:
    torch.manual_seed(0)
    attention = SelfAttention(hidden_size=16, n_heads=2, dropout=1e-9)  # rounds to keeping every weight
    item_seq = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]])
    x = torch.randn(2, 5, 16)
    mask = attention_mask(item_seq, causal=True)
    attention.train()
    written_out = attention(x, mask)
    attention.eval()
    fused = attention(x, mask)
    torch.testing.assert_close(written_out, fused, rtol=1e-5, atol=1e-6)
