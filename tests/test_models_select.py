"""`select`: the final layer computes only the positions a loss reads, and nothing else changes.

Training passes the positions that have a target; the result must equal the full forward at those positions,
dropout included (its masks are drawn full-size, so a seeded run does not depend on what was skipped).
"""

from __future__ import annotations

import pytest
import torch

from recsys.models import BERT4Rec, SASRec

N_ITEMS = 30
SASREC_LAYOUTS = [
    {"pre_norm": True},
    {"pre_norm": False},
    {"reference_block": True, "init": "xavier", "ffn_size": 16, "activation": "relu"},
]


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    seq = torch.randint(1, N_ITEMS + 1, (4, 10), generator=generator)
    seq[1, :4] = 0  # left padding
    seq[3, :-2] = 0
    select = (torch.rand(4, 10, generator=generator) < 0.3) & (seq > 0)
    select[0, -1] = True
    return seq, select


def _same_with_and_without_select(model: torch.nn.Module, seq: torch.Tensor, select: torch.Tensor, **packing) -> None:
    model.train()
    torch.manual_seed(7)
    full = model(seq, **packing)[select]
    full.pow(2).sum().backward()
    full_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch.manual_seed(7)
    picked = model(seq, **packing, select=select)
    picked.pow(2).sum().backward()
    assert picked.shape == (int(select.sum()), full.shape[-1])
    torch.testing.assert_close(picked, full, rtol=1e-5, atol=1e-6)
    for grad, expected in zip((p.grad for p in model.parameters()), full_grads, strict=True):
        torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layout", SASREC_LAYOUTS)
@pytest.mark.parametrize("n_layers", [1, 2])
def test_sasrec_select_equals_the_full_forward_in_training(layout: dict, n_layers: int) -> None:
    torch.manual_seed(0)
    model = SASRec(N_ITEMS, hidden_size=16, n_layers=n_layers, n_heads=2, max_len=10, dropout=0.3, **layout)
    _same_with_and_without_select(model, *_batch())


@pytest.mark.parametrize("pre_norm", [True, False])
def test_bert4rec_select_equals_the_full_forward_in_training(pre_norm: bool) -> None:
    torch.manual_seed(0)
    model = BERT4Rec(N_ITEMS, hidden_size=16, n_layers=2, n_heads=2, max_len=10, dropout=0.3, pre_norm=pre_norm)
    seq, select = _batch()
    seq = seq.masked_fill(select, model.mask_token)
    _same_with_and_without_select(model, seq, select)


def test_select_with_packed_rows() -> None:
    torch.manual_seed(0)
    model = SASRec(N_ITEMS, hidden_size=16, n_layers=2, n_heads=2, max_len=10, dropout=0.3)
    seq, select = _batch()
    segments = torch.zeros_like(seq)
    segments[:, 5:] = 1  # two windows per row
    positions = torch.cat([torch.arange(4, -1, -1), torch.arange(4, -1, -1)]).expand(4, -1).contiguous()
    _same_with_and_without_select(model, seq, select, segments=segments, positions=positions)


def test_last_only_and_select_together_is_an_error() -> None:
    model = SASRec(N_ITEMS, hidden_size=16, n_layers=1, n_heads=2, max_len=10)
    seq, select = _batch()
    with pytest.raises(ValueError, match="not both"):
        model.encoder(seq, last_only=True, select=select)


def test_training_selects_below_85_percent_in_float32_and_half_under_autocast() -> None:
    from recsys.tasks.retrieval import selecting_pays

    def mask(share: float) -> torch.Tensor:
        m = torch.zeros(10, 10, dtype=torch.bool)
        m.view(-1)[: int(share * 100)] = True
        return m

    assert selecting_pays(mask(0.2)) and selecting_pays(mask(0.8)) and not selecting_pays(mask(0.9))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert selecting_pays(mask(0.5)) and not selecting_pays(mask(0.6))
