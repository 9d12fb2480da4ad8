"""TIGER model: encoder input, cached decoding equals teacher forcing, constrained generate, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recsys.models.tiger import TIGER, _CachedDecoder, hashed_text_embeddings
from recsys.semantic_ids import SemanticIds

N_ITEMS = 60


def _tiny(**kwargs: object) -> TIGER:
    torch.manual_seed(0)
    args = dict(n_items=N_ITEMS, n_levels=2, codebook_size=4, collision_size=8, n_user_buckets=7, max_tokens=12,
                d_model=32, d_kv=8, d_ff=64, n_layers=2, n_heads=2, dropout=0.0, beam_width=6)
    model = TIGER(**{**args, **kwargs})  # type: ignore[arg-type]
    codes = np.random.default_rng(0).integers(0, 4, (N_ITEMS, 2))
    model.set_semantic_ids(SemanticIds.from_codes(codes, 4))
    return model.eval()


def _batch() -> dict[str, torch.Tensor]:
    item_seq = torch.tensor([[0, 0, 0, 0, 0], [0, 0, 0, 3, 4], [1, 2, 3, 5, 8], [0, 9, 9, 9, 9]])
    return {"item_seq": item_seq, "user_idx": torch.tensor([0, 5, 11, 3])}


def test_encoder_input_is_user_token_then_item_tokens_most_recent_last() -> None:
    model = _tiny()
    ids, mask = model.encoder_inputs(torch.tensor([[0, 0, 3, 4], [0, 7, 8, 9]]), torch.tensor([2, 9]))
    tokens = model.item_tokens(torch.tensor([3, 4]))  # IDs have 3 tokens; max_tokens 12 holds 4 items
    user = model.user_offset + torch.tensor([2, 9 % 7])  # hashed user: user_idx mod n_user_buckets
    # left padding, then the user token right before the first real item; columns all-pad in every row are cut
    assert ids.shape == (2, 1 + 3 * 3)
    assert ids[0].tolist() == [0, 0, 0, user[0].item(), *tokens[0].tolist(), *tokens[1].tolist()]
    assert ids[1].tolist() == [user[1].item(), *model.item_tokens(torch.tensor([7, 8, 9])).flatten().tolist()]
    assert mask.tolist() == (ids != 0).tolist()


def test_history_is_cut_to_whole_items_within_the_token_budget() -> None:
    model = _tiny(max_tokens=7)  # 7 // 3 = 2 items
    ids, _ = model.encoder_inputs(torch.tensor([[1, 2, 3, 4]]), torch.tensor([0]))
    assert ids.shape == (1, 1 + 2 * 3)
    assert ids[0, 1:].tolist() == model.item_tokens(torch.tensor([3, 4])).flatten().tolist()


def test_cached_decoder_matches_teacher_forced_logits() -> None:
    model = _tiny()
    batch = _batch()
    target = torch.tensor([7, 1, 30, 60])
    with torch.no_grad():
        states = model(batch["item_seq"], batch["user_idx"], target)
        ids, mask = model.encoder_inputs(batch["item_seq"], batch["user_idx"])
        step = _CachedDecoder(model, ids, mask, beams=1)
        labels = model.item_tokens(target)
        for level in range(model.id_length):
            got = step(labels[:, :level])
            lo = model.layout.offsets[level]
            want = model._level_logits(states[:, level], level)
            got = got[:, lo: lo + want.shape[1]]
            allowed = torch.isfinite(got)
            assert allowed[torch.arange(4), labels[:, level] - lo].all()
            torch.testing.assert_close(got[allowed], want[allowed], atol=1e-4, rtol=1e-4)


def _brute_force_scores(model: TIGER, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """log P(item | history) for every item [B, n_items + 1] under the constrained softmax (slow, exact)."""
    items = torch.arange(1, N_ITEMS + 1)
    rows = batch["item_seq"].shape[0]
    hist = batch["item_seq"].repeat_interleave(N_ITEMS, 0)
    users = batch["user_idx"].repeat_interleave(N_ITEMS, 0)
    target = items.repeat(rows)
    states = model(hist, users, target)
    labels = model.item_tokens(target)
    trie = model.trie()
    total = torch.zeros(len(target))
    for level in range(model.id_length):
        lo = model.layout.offsets[level]
        logits = model._level_logits(states[:, level], level)
        allowed = trie.allowed_mask(labels[:, :level])[:, lo: lo + logits.shape[1]]
        logp = torch.log_softmax(logits.masked_fill(~allowed, float("-inf")), -1)
        total += logp.gather(1, (labels[:, level] - lo)[:, None])[:, 0]
    scores = torch.full((rows, N_ITEMS + 1), float("-inf"))
    scores[:, 1:] = total.view(rows, N_ITEMS)
    return scores


def test_exhaustive_beam_search_equals_brute_force_ranking() -> None:
    model = _tiny(beam_width=N_ITEMS)  # every prefix fits in the beam: the search is exact
    batch = _batch()
    with torch.no_grad():
        got = model.generate(batch, 10)
        want = _brute_force_scores(model, batch).topk(10, dim=1).indices
    assert torch.equal(got, want)


@pytest.mark.parametrize("k", [1, 6, 20])
def test_generate_returns_k_distinct_real_items(k: int) -> None:
    model = _tiny()
    out = model.generate(_batch(), k)
    assert out.shape == (4, k) and out.dtype == torch.long
    assert ((out >= 1) & (out <= N_ITEMS)).all(), "padding or an invalid id came out"
    for row in out.tolist():
        assert len(set(row)) == k


def test_generate_on_a_catalogue_smaller_than_k_pads_with_zero() -> None:
    torch.manual_seed(0)
    model = TIGER(n_items=3, n_levels=1, codebook_size=2, collision_size=4, n_user_buckets=0, d_model=16, d_kv=8,
                  d_ff=32, n_layers=1, n_heads=2, beam_width=5).eval()
    model.set_semantic_ids(SemanticIds.from_codes(np.array([[0], [1], [0]]), 2))
    out = model.generate({"item_seq": torch.tensor([[1, 2]]), "user_idx": torch.tensor([0])}, 5)
    assert sorted(out[0, :3].tolist()) == [1, 2, 3] and out[0, 3:].tolist() == [0, 0]


def test_loss_is_finite_and_trains_on_the_target_ids() -> None:
    model = _tiny().train()
    batch = _batch()
    target = torch.tensor([5, 6, 7, 8])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.loss(batch["item_seq"], batch["user_idx"], target)
    for _ in range(30):
        loss = model.loss(batch["item_seq"], batch["user_idx"], target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.isfinite(first) and loss.item() < 0.5 * first.item()
    out = model.eval().generate(batch, 1)[:, 0]
    assert out.tolist() == target.tolist()


def test_length_groups_do_not_change_the_loss() -> None:
    a, b = _tiny(length_groups=1), _tiny(length_groups=3)
    batch = _batch()
    target = torch.tensor([5, 6, 7, 8])
    with torch.no_grad():
        torch.testing.assert_close(a.loss(batch["item_seq"], batch["user_idx"], target),
                                   b.loss(batch["item_seq"], batch["user_idx"], target))
        assert torch.equal(a.generate(batch, 5), b.generate(batch, 5))


def test_checkpoint_round_trip_with_weights_only(tmp_path: Path) -> None:
    model = _tiny()
    init_args = {"n_items": N_ITEMS, "n_levels": 2, "codebook_size": 4, "collision_size": 8, "n_user_buckets": 7,
                 "max_tokens": 12, "d_model": 32, "d_kv": 8, "d_ff": 64, "n_layers": 2, "n_heads": 2, "beam_width": 6}
    path = tmp_path / "tiger.ckpt"
    torch.save({"init_args": init_args, "state_dict": model.state_dict()}, path)
    state = torch.load(path, weights_only=True)
    rebuilt = TIGER(**state["init_args"])
    assert not rebuilt.has_semantic_ids
    rebuilt.load_state_dict(state["state_dict"], strict=True)
    rebuilt.eval()
    assert rebuilt.has_semantic_ids
    assert rebuilt.semantic_ids.level_sizes == model.semantic_ids.level_sizes
    np.testing.assert_array_equal(rebuilt.semantic_ids.codes, model.semantic_ids.codes)
    batch = _batch()
    assert torch.equal(rebuilt.generate(batch, 6), model.generate(batch, 6))


def test_semantic_ids_that_do_not_fit_the_vocabulary_are_refused() -> None:
    model = TIGER(n_items=5, n_levels=1, codebook_size=2, collision_size=2, n_user_buckets=0, d_model=16, d_kv=8,
                  d_ff=32, n_layers=1, n_heads=2)
    crowded = SemanticIds.from_codes(np.zeros((5, 1), np.int64), 2)  # 5 items share one code: digit needs 5
    with pytest.raises(ValueError, match="collision_size"):
        model.set_semantic_ids(crowded)
    with pytest.raises(RuntimeError, match="no semantic IDs"):
        model.generate({"item_seq": torch.tensor([[1]]), "user_idx": torch.tensor([0])}, 1)


def test_hashed_text_embeddings_are_deterministic_and_unit_length() -> None:
    texts = ["category: beauty; color: red", "category: beauty; color: red", "category: camera; color: blue"]
    a, b = hashed_text_embeddings(texts), hashed_text_embeddings(texts)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    assert np.allclose(a[0], a[1]) and a[0] @ a[2] < 0.9
