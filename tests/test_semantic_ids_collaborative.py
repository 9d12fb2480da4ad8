"""Co-occurrence item vectors for semantic IDs: the counts by hand, and what the vectors keep apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys.data.sequences import Sequences
from recsys.semantic_ids.collaborative import collaborative_embeddings, cooccurrence_matrix


def _sequences(rows: list[list[int]]) -> Sequences:
    items = np.array([i for row in rows for i in row], dtype=np.int64)
    offsets = np.r_[0, np.cumsum([len(row) for row in rows])].astype(np.int64)
    return Sequences(items, offsets, np.arange(len(rows), dtype=np.int64))


def test_counts_are_one_over_distance_within_each_sequence_only() -> None:
    counts = cooccurrence_matrix(_sequences([[1, 2, 3], [4, 5], [2, 2]]), n_items=5, window=2).to_dense()
    expected = np.zeros((6, 6), dtype=np.float32)
    for a, b, w in [(1, 2, 1.0), (2, 3, 1.0), (1, 3, 0.5), (4, 5, 1.0)]:
        expected[a, b] = expected[b, a] = w
    # no pair across the boundary between users (3 -> 4, 2 -> 4, 3 -> 5) and no self-pair from [2, 2]
    np.testing.assert_allclose(counts.numpy(), expected)


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window"):
        cooccurrence_matrix(_sequences([[1, 2]]), n_items=2, window=0)


def test_items_used_together_get_close_vectors() -> None:
    rng = np.random.default_rng(0)
    # two communities: items 1-10 and 11-20 never share a history; item 21 is never seen in training
    rows = [list(rng.choice(np.arange(1, 11) + 10 * (u % 2), size=6)) for u in range(200)]
    vectors = collaborative_embeddings(_sequences(rows), n_items=21, dim=8, window=3)
    assert vectors.shape == (21, 8)
    np.testing.assert_allclose(np.linalg.norm(vectors[:20], axis=1), 1.0, atol=1e-5)
    assert not vectors[20].any()
    cosine = vectors[:20] @ vectors[:20].T
    within = np.r_[cosine[:10, :10][~np.eye(10, dtype=bool)], cosine[10:, 10:][~np.eye(10, dtype=bool)]]
    across = cosine[:10, 10:].ravel()
    assert within.min() > across.max()


def test_tiger_ids_from_text_and_usage(prepared_synthetic: Path) -> None:
    from recsys.data import SequenceDataModule
    from recsys.models.tiger import TIGER, build_semantic_ids

    data = SequenceDataModule(str(prepared_synthetic), max_len=20)
    text_only = build_semantic_ids(prepared_synthetic, 2, 8, text_embeddings="hashed")
    joined = build_semantic_ids(prepared_synthetic, 2, 8, text_embeddings="hashed",
                                train_sequences=data.split.train, collaborative_weight=1.0, collaborative_dim=16)
    assert joined.n_items == text_only.n_items == data.n_items
    assert len({tuple(c) for c in joined.codes[1:]}) == data.n_items  # unique after the collision digit
    assert not np.array_equal(joined.codes, text_only.codes)
    model = TIGER(data.n_items, text_embeddings="hashed", n_levels=2, codebook_size=8, collaborative_weight=1.0,
                  n_user_buckets=0, d_model=16, d_kv=4, d_ff=16, n_layers=1, n_heads=2)
    with pytest.raises(ValueError, match="training sequences"):
        model.prepare_semantic_ids(prepared_synthetic)
    model.prepare_semantic_ids(prepared_synthetic, data.split.train)
    assert model.has_semantic_ids


def test_tiger_collision_digit_by_training_popularity(prepared_synthetic: Path) -> None:
    from recsys.data import SequenceDataModule
    from recsys.models.tiger import build_semantic_ids

    data = SequenceDataModule(str(prepared_synthetic), max_len=20)
    train = data.split.train
    by_index = build_semantic_ids(prepared_synthetic, 2, 4, text_embeddings="hashed")
    by_count = build_semantic_ids(prepared_synthetic, 2, 4, text_embeddings="hashed", train_sequences=train,
                                  collision_order="popularity")
    np.testing.assert_array_equal(by_count.codes[:, :-1], by_index.codes[:, :-1])  # only the digit moves
    counts = np.bincount(train.items, minlength=data.n_items + 1)[1:]
    codes, digit = by_count.codes[1:, :-1], by_count.codes[1:, -1]
    groups = {tuple(c) for c in codes}
    assert any((codes == g).all(1).sum() > 1 for g in groups)  # 4 x 4 codes: the synthetic catalogue collides
    for g in groups:
        members = np.flatnonzero((codes == g).all(1))
        order = members[np.argsort(digit[members])]
        assert (np.diff(counts[order]) <= 0).all()  # digit 0, 1, ... in falling training count
    with pytest.raises(ValueError, match="training sequences"):
        build_semantic_ids(prepared_synthetic, 2, 4, text_embeddings="hashed", collision_order="popularity")
    with pytest.raises(ValueError, match="collision_order"):
        build_semantic_ids(prepared_synthetic, 2, 4, text_embeddings="hashed", collision_order="random")  # type: ignore[arg-type]
