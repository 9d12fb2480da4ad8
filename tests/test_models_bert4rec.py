"""BERT4Rec: the retrieval contract without the mask row, bidirectionality, and the appended [MASK]."""

from __future__ import annotations

import pytest
import torch

from recsys.models import BERT4Rec

N_ITEMS = 30


def model(**kwargs) -> BERT4Rec:
    torch.manual_seed(0)
    return BERT4Rec(N_ITEMS, hidden_size=16, n_heads=2, max_len=12, **kwargs).eval()


@pytest.mark.parametrize("projection_head", [True, False])
def test_contract_shapes_and_attributes(projection_head):
    m = model(projection_head=projection_head)
    seq = torch.randint(1, N_ITEMS + 2, (3, 12))
    assert m(seq).shape == (3, 12, 16)
    assert m.encode({"item_seq": seq}).shape == (3, 16)
    assert m.objective == "cloze" and BERT4Rec.objective == "cloze" and m.n_items == N_ITEMS
    assert m.mask_token == N_ITEMS + 1


def test_item_embeddings_exclude_the_mask_row():
    m = model()
    table = m.item_embeddings()
    assert table.shape == (N_ITEMS + 1, 16)
    assert m.encoder.items.weight.shape == (N_ITEMS + 2, 16)
    assert torch.equal(table, m.encoder.items.weight[: N_ITEMS + 1])
    assert (table[0] == 0).all()


def test_outputs_see_later_items():
    m = model()
    seq = torch.randint(1, N_ITEMS + 1, (2, 12))
    changed = seq.clone()
    changed[:, -1] = seq[:, -1] % N_ITEMS + 1
    assert not torch.allclose(m(seq)[:, 0], m(changed)[:, 0])


@pytest.mark.parametrize("pre_norm", [True, False])
def test_encode_is_the_output_at_an_appended_mask(pre_norm):
    """encode runs the last layer for the [MASK] column only; it must equal the full forward there."""
    m = model(pre_norm=pre_norm)
    full = torch.randint(1, N_ITEMS + 1, (2, 12))
    # A full window shifts left by one to make room for [MASK].
    shifted = torch.cat([full[:, 1:], torch.full((2, 1), m.mask_token)], dim=1)
    assert torch.allclose(m.encode({"item_seq": full}), m(shifted)[:, -1], atol=1e-6)
    # A shorter window just grows by one column; nothing is dropped.
    short = full[:, -6:]
    grown = torch.cat([short, torch.full((2, 1), m.mask_token)], dim=1)
    assert torch.allclose(m.encode({"item_seq": short}), m(grown)[:, -1], atol=1e-6)


@pytest.mark.parametrize("pre_norm", [True, False])
def test_left_padding_does_not_change_outputs(pre_norm):
    m = model(pre_norm=pre_norm)
    history = torch.randint(1, N_ITEMS + 2, (3, 5))
    padded = torch.cat([torch.zeros(3, 6, dtype=torch.long), history], dim=1)
    assert torch.allclose(m(history), m(padded)[:, 6:], atol=1e-5)
    assert torch.allclose(m.encode({"item_seq": history}), m.encode({"item_seq": padded}), atol=1e-5)


def test_fully_padded_rows_give_finite_outputs_and_gradients():
    m = model()
    m.train()
    seq = torch.randint(1, N_ITEMS + 2, (3, 12))
    seq[0] = 0
    out = m(seq)
    assert torch.isfinite(out).all() and torch.isfinite(m.encode({"item_seq": seq})).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
