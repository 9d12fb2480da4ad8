"""The CPU dropout path of the sequence models: same distribution and gradient as dropout, same attention."""

from __future__ import annotations

import pytest
import torch

from recsys.models import blocks
from recsys.models.blocks import (
    Dropout,
    SelfAttention,
    SequenceEncoder,
    attention_bias,
    attention_mask,
    cpu_dropout,
    dropout_scale,
)


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


def test_every_lane_of_a_draw_keeps_one_minus_p() -> None:
    """Four 16-bit lanes come out of each 64-bit draw; a biased lane (a sign bit that is always 0, say)
    would show as one lane index keeping more or fewer elements than the others."""
    torch.manual_seed(2)
    scale = dropout_scale((400_000,), 0.2, torch.float32, torch.device("cpu"))
    for lane in range(4):
        kept = (scale[lane::4] != 0).float().mean().item()
        assert abs(kept - 0.8) < 0.006  # ~4.7 standard deviations at n = 100k


def test_attention_bias_is_the_mask_as_zero_and_minus_infinity() -> None:
    item_seq = torch.tensor([[0, 2, 3], [1, 2, 3]])
    mask = attention_mask(item_seq, causal=True)  # [2, 1, 3, 3]
    bias = attention_bias(mask, n_heads=2, dtype=torch.float32)
    assert bias.shape == (4, 3, 3)
    for row in range(2):
        for head in range(2):
            expected = torch.where(mask[row, 0], 0.0, float("-inf"))
            assert torch.equal(bias[row * 2 + head], expected)


@pytest.mark.parametrize("causal", [True, False])
def test_encoder_shares_one_bias_and_matches_the_fused_path(causal: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Training with attention dropout writes attention out with the bias computed once per forward; with
    dropout that keeps everything, it must give what evaluation (the fused kernel) gives, selected rows too."""
    calls = []

    def counted(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(1)
        return attention_bias(*args, **kwargs)

    monkeypatch.setattr(blocks, "attention_bias", counted)
    torch.manual_seed(0)
    encoder = SequenceEncoder(n_embeddings=10, hidden_size=16, n_layers=2, n_heads=2, max_len=6, dropout=1e-9,
                              attn_dropout=1e-9, pre_norm=True, ffn_size=32, activation="gelu", causal=causal)
    item_seq = torch.tensor([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 9]])
    select = item_seq > 2
    encoder.train()
    assert encoder.layers[0].attention.written_out(torch.zeros(1))
    trained, picked = encoder(item_seq), encoder(item_seq, select=select)
    assert len(calls) == 2  # one bias per forward, shared by both layers
    encoder.eval()
    evaluated = encoder(item_seq)
    torch.testing.assert_close(trained, evaluated, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(picked, evaluated[select], rtol=1e-5, atol=1e-5)
