"""SASRec: the retrieval contract, causality, padding invariance, and that it can learn at all."""

from __future__ import annotations

import pytest
import torch

from recsys.losses import FullSoftmaxCE
from recsys.models import SASRec
from recsys.models.blocks import attention_mask

N_ITEMS = 30
LAYOUTS = [
    {"pre_norm": True},
    {"pre_norm": False},
    {"reference_block": True, "init": "xavier", "ffn_size": 16, "activation": "relu"},
]


def model(**kwargs) -> SASRec:
    torch.manual_seed(0)
    return SASRec(N_ITEMS, hidden_size=16, n_heads=2, max_len=12, **kwargs).eval()


def test_contract_shapes_and_attributes():
    m = model()
    seq = torch.randint(1, N_ITEMS + 1, (3, 12))
    assert m(seq).shape == (3, 12, 16)
    assert m.encode({"item_seq": seq}).shape == (3, 16)
    assert m.item_embeddings().shape == (N_ITEMS + 1, 16)
    assert m.objective == "causal" and SASRec.objective == "causal" and m.n_items == N_ITEMS
    assert (m.item_embeddings()[0] == 0).all()  # padding row starts at zero


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n_layers", [1, 3])
def test_encode_is_the_last_position_of_forward(layout, n_layers):
    """encode runs the last layer for the last column only; it must equal the full forward's last column."""
    m = model(n_layers=n_layers, **layout)
    seq = torch.randint(1, N_ITEMS + 1, (4, 12))
    seq[1, :5] = 0  # left padding
    seq[2, :-1] = 0  # a single item
    assert torch.allclose(m.encode({"item_seq": seq}), m(seq)[:, -1], atol=1e-6)


def test_encode_keeps_the_most_recent_max_len_items():
    m = model()
    long_seq = torch.randint(1, N_ITEMS + 1, (2, 20))
    # encode's last layer projects the last query alone, so float sums run in another order: equal to 1e-6
    assert torch.allclose(m.encode({"item_seq": long_seq}), m(long_seq[:, -12:])[:, -1], atol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_causal_output_ignores_later_items(layout):
    m = model(**layout)
    seq = torch.randint(1, N_ITEMS + 1, (2, 12))
    changed = seq.clone()
    changed[:, 8:] = torch.randint(1, N_ITEMS + 1, (2, 4))
    before, after = m(seq), m(changed)
    assert torch.allclose(before[:, :8], after[:, :8], atol=1e-6)
    assert not torch.allclose(before[:, 8:], after[:, 8:])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_left_padding_does_not_change_outputs(layout):
    m = model(**layout)
    history = torch.randint(1, N_ITEMS + 1, (3, 5))
    short = history
    padded = torch.cat([torch.zeros(3, 7, dtype=torch.long), history], dim=1)
    assert torch.allclose(m.encode({"item_seq": short}), m.encode({"item_seq": padded}), atol=1e-5)
    assert torch.allclose(m(short), m(padded)[:, 7:], atol=1e-5)


def test_fully_padded_rows_give_finite_outputs_and_gradients():
    m = model()
    m.train()
    seq = torch.randint(1, N_ITEMS + 1, (3, 12))
    seq[0] = 0
    seq[1, :11] = 0
    out = m(seq)
    assert torch.isfinite(out).all() and torch.isfinite(m.encode({"item_seq": seq})).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_attention_mask_guards_padded_queries():
    seq = torch.tensor([[0, 0, 3, 4], [0, 0, 0, 0]])
    causal = attention_mask(seq, causal=True)[:, 0]
    assert causal.any(-1).all()  # every query sees at least one key
    assert causal[0, 3].tolist() == [False, False, True, True]
    assert causal[0, 2].tolist() == [False, False, True, False]
    assert causal[1].equal(torch.eye(4, dtype=torch.bool))
    bidirectional = attention_mask(seq, causal=False)[:, 0]
    assert bidirectional[0, 2].tolist() == [False, False, True, True]


def test_too_long_forward_input_is_an_error():
    with pytest.raises(ValueError, match="max_len=12"):
        model()(torch.ones(1, 13, dtype=torch.long))


@pytest.fixture
def one_thread():
    """Ops this small gain nothing from intra-op threads and lose a lot when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("tie_output", [True, False])
def test_tiny_sasrec_learns_the_successor_rule(one_thread, tie_output):
    """Item i is always followed by i + 1 (wrapping round): a model that trains must get this right."""
    torch.manual_seed(0)
    n_items, max_len = 20, 8
    m = SASRec(n_items, hidden_size=32, n_layers=1, n_heads=2, max_len=max_len, dropout=0.0, tie_output=tie_output)
    loss_fn = FullSoftmaxCE()
    optimizer = torch.optim.Adam(m.parameters(), lr=5e-3)

    def batch(size: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = torch.randint(0, n_items, (size, 1))
        window = (start + torch.arange(max_len + 1)) % n_items + 1
        item_seq, targets = window[:, :-1].clone(), window[:, 1:].clone()
        pad = torch.arange(max_len) < torch.randint(0, max_len - 1, (size, 1))  # histories of varied length
        item_seq[pad], targets[pad] = 0, 0
        return item_seq, targets

    for _ in range(200):
        item_seq, targets = batch(64)
        hidden = m(item_seq)
        keep = targets > 0
        loss = loss_fn(hidden[keep], targets[keep], m.item_embeddings())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    m.eval()
    item_seq, targets = batch(256)
    with torch.no_grad():
        scores = m.encode({"item_seq": item_seq}) @ m.item_embeddings().T
    scores[:, 0] = float("-inf")
    accuracy = (scores.argmax(1) == targets[:, -1]).float().mean().item()
    assert accuracy > 0.95, f"loss {loss.item():.3f}, accuracy {accuracy:.2f}"


def test_untied_output_scores_against_its_own_table():
    tied, untied = model(), model(tie_output=False)
    assert tied.item_embeddings() is tied.encoder.items.weight
    assert untied.item_embeddings() is untied.output_items.weight
    assert untied.item_embeddings().shape == (N_ITEMS + 1, 16) and (untied.item_embeddings()[0] == 0).all()
    seq = torch.tensor([[0, 0, 3, 5, 7], [1, 2, 3, 4, 5]])
    hidden = untied.train()(seq)[seq > 0]
    FullSoftmaxCE()(hidden, torch.randint(1, N_ITEMS + 1, (hidden.shape[0],)), untied.item_embeddings()).backward()
    assert (untied.output_items.weight.grad[1:] != 0).all(dim=1).all()  # every item is scored, so every row learns
    input_grad = untied.encoder.items.weight.grad.abs().sum(dim=1)
    assert (input_grad[[1, 2, 3, 4, 5, 7]] > 0).all() and (input_grad[[6, 8, 9, 30]] == 0).all()  # inputs only
    assert sum(p.numel() for p in untied.parameters()) - sum(p.numel() for p in tied.parameters()) == (N_ITEMS + 1) * 16


def test_subtract_input_item_lowers_each_position_by_its_own_item():
    plain, offset = model(), model(subtract_input_item=True)
    seq = torch.tensor([[0, 0, 3, 5, 7], [1, 2, 3, 4, 5]])
    with torch.no_grad():
        torch.testing.assert_close(offset(seq), plain(seq))  # a starts at 0: the plain model
        offset.input_item_weight.fill_(0.7)
        expected = plain(seq) - 0.7 * plain.encoder.items(seq)
        torch.testing.assert_close(offset(seq), expected)
        torch.testing.assert_close(offset.encode({"item_seq": seq}), expected[:, -1])
        torch.testing.assert_close(offset(seq, select=seq > 0), expected[seq > 0])
    offset.train()(seq)[seq > 0].sum().backward()
    assert offset.input_item_weight.grad is not None and offset.input_item_weight.grad != 0


def test_negated_dims_flip_the_scored_table_only():
    m = model(negated_dims=4)
    table, weight = m.item_embeddings(), m.encoder.items.weight
    torch.testing.assert_close(table[:, :12], weight[:, :12])
    torch.testing.assert_close(table[:, 12:], -weight[:, 12:])
    seq = torch.tensor([[0, 3, 5, 7]])
    torch.testing.assert_close(m(seq), model()(seq))  # the input side is unchanged
    self_score = (weight[7, :12] ** 2).sum() - (weight[7, 12:] ** 2).sum()
    torch.testing.assert_close(weight[7] @ table[7], self_score)
    with pytest.raises(ValueError, match="negated_dims"):
        SASRec(N_ITEMS, hidden_size=16, negated_dims=17)
    with pytest.raises(ValueError, match="tie_output"):
        SASRec(N_ITEMS, hidden_size=16, negated_dims=4, tie_output=False)


def test_output_offset_starts_tied_and_learns_apart_from_the_input_table():
    torch.manual_seed(0)
    m = model(output_offset=True)
    assert torch.equal(m.item_embeddings(), m.encoder.items.weight)  # zero at the start: tied scores
    items = torch.randint(1, N_ITEMS + 1, (4, 6))
    hidden = m(items)[:, -1]
    (hidden @ m.item_embeddings().T)[:, 3].sum().backward()
    assert m.output_offset.weight.grad[3].abs().sum() > 0  # the scored item's offset row learns
    assert m.output_offset.weight.grad[[i for i in range(N_ITEMS + 1) if i != 3]].abs().sum() == 0
    with torch.no_grad():
        m.output_offset.weight[5] = 1.0
    assert torch.equal(m.item_embeddings()[5], m.encoder.items.weight[5] + 1.0)
    assert torch.equal(m.item_embeddings()[0], torch.zeros(m.item_embeddings().shape[1]))  # padding stays zero
    with pytest.raises(ValueError, match="output_offset"):
        SASRec(N_ITEMS, hidden_size=16, output_offset=True, tie_output=False)


def test_item_dropout_applies_to_the_training_table_only():
    sasrec = SASRec(n_items=500, hidden_size=32, n_layers=1, n_heads=1, max_len=10, item_dropout=0.5)
    plain = sasrec.encoder.items.weight
    sasrec.train()
    dropped = sasrec.item_embeddings()
    zeroed = (dropped == 0) & (plain != 0)
    assert 0.4 < zeroed.float().mean().item() < 0.6  # about half the entries dropped
    kept = ~zeroed & (plain != 0)
    torch.testing.assert_close(dropped[kept], 2.0 * plain[kept])  # inverted dropout scaling
    assert (dropped[0] == 0).all()  # padding stays zero
    sasrec.eval()
    assert torch.equal(sasrec.item_embeddings(), plain)


def test_scaled_item_embeddings_enter_as_sqrt_d_times_items_plus_positions():
    """With no layers the pre-LN encoder is LayerNorm(input), so the input itself can be checked against the formula."""
    torch.manual_seed(0)
    sasrec = SASRec(N_ITEMS, hidden_size=16, n_layers=0, n_heads=2, max_len=12, scale_item_embeddings=True).eval()
    items = torch.tensor([[0, 0, 3, 7, 9]])
    encoder = sasrec.encoder
    expected_input = 4.0 * encoder.items(items) + encoder.positions(items.shape[1])
    expected = torch.nn.functional.layer_norm(
        expected_input, (16,), encoder.output_norm.weight, encoder.output_norm.bias
    )
    torch.testing.assert_close(sasrec(items), expected)
    torch.testing.assert_close(sasrec.item_embeddings(), encoder.items.weight)  # the scored table is not scaled
    unscaled = SASRec(N_ITEMS, hidden_size=16, n_layers=0, n_heads=2, max_len=12).eval()
    unscaled.load_state_dict(sasrec.state_dict())
    assert not torch.allclose(unscaled(items), sasrec(items))


def test_xavier_init_draws_layers_and_tables_xavier_normal_and_keeps_padding_zero():
    torch.manual_seed(0)
    m = SASRec(2000, hidden_size=64, n_heads=2, max_len=50, init="xavier")
    items = m.encoder.items.weight
    assert (items[0] == 0).all()
    assert abs(items[1:].std().item() - (2 / (2001 + 64)) ** 0.5) < 2e-3
    out = m.encoder.layers[0].attention.out.weight  # 64 x 64: std sqrt(2 / 128)
    assert abs(out.std().item() - 0.125) < 0.01
    assert abs(model().encoder.layers[0].attention.out.weight.std().item() - 0.02) < 0.005  # default N(0, 0.02)
    with pytest.raises(ValueError, match="init"):
        SASRec(10, init="uniform")


def test_reference_block_normalises_queries_only_and_adds_residuals_to_them():
    """Written out by hand for one layer without dropout: q = LN(x); a = q + Attn(q, x, x); out = h + FFN(h)
    with h = LN(a); the stack then ends with its LayerNorm."""
    m = model(reference_block=True, n_layers=1, ffn_size=16, activation="relu")
    seq = torch.randint(1, N_ITEMS + 1, (2, 12))
    enc, layer = m.encoder, m.encoder.layers[0]
    x = enc.items(seq) + enc.positions(12)
    mask = attention_mask(seq, causal=True)
    q = layer.attention_norm(x)
    w_q, w_k, w_v = layer.attention.qkv.weight.split(16)
    b_q, b_k, b_v = layer.attention.qkv.bias.split(16)

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.view(2, 12, 2, 8).transpose(1, 2)

    scores = heads(q @ w_q.T + b_q) @ heads(x @ w_k.T + b_k).transpose(-2, -1) / 8**0.5
    attended = scores.masked_fill(~mask, float("-inf")).softmax(-1) @ heads(x @ w_v.T + b_v)
    a = q + layer.attention.out(attended.transpose(1, 2).reshape(2, 12, 16))
    h = layer.ffn_norm(a)
    expected = enc.output_norm(h + layer.ffn(h))
    assert torch.allclose(m(seq), expected, atol=1e-5)
    with pytest.raises(ValueError, match="pre_norm"):
        SASRec(10, pre_norm=False, reference_block=True)
