"""The faiss ranker against brute force: exact top-K, padding never returned, seen items left out."""

from __future__ import annotations

import subprocess
import sys

import faiss
import numpy as np
import pytest
import torch

from recsys.data.sequences import Sequences
from recsys.eval.ranker import IndexSpec, ItemRanker, index_recall, overlap_recall
from recsys.eval.seen import SeenItems


def _vectors(users: int, items: int, dim: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(users, dim, generator=g), torch.randn(items + 1, dim, generator=g)


def _brute_force(user_vecs: torch.Tensor, table: torch.Tensor, k: int, banned: list[set[int]] | None = None) -> list[list[int]]:
    scores = user_vecs.double() @ table.double().T
    scores[:, 0] = -torch.inf
    if banned is not None:
        for row, items in enumerate(banned):
            scores[row, list(items)] = -torch.inf
    top = torch.topk(scores, k)
    return [[int(i) for i, s in zip(ids, vals, strict=True) if s > -torch.inf] for ids, vals in zip(top.indices, top.values, strict=True)]


def test_exact_matches_brute_force() -> None:
    users, table = _vectors(50, 200)
    ids, scores = ItemRanker(table).search(users, 10)
    assert ids.dtype == torch.int64 and scores.dtype == torch.float32
    assert ids.tolist() == _brute_force(users, table, 10)
    expected = torch.gather(users @ table.T, 1, ids)
    assert torch.allclose(scores, expected, atol=1e-4)


def test_padding_row_is_never_returned_even_when_it_scores_best() -> None:
    users, table = _vectors(20, 30)
    table[0] = users.mean(dim=0) * 1000  # row 0 would win every query if it were indexed
    ids, _ = ItemRanker(table).search(users, 30)
    assert (ids > 0).all()
    assert sorted(ids[0].tolist()) == list(range(1, 31))


def test_k_larger_than_catalogue_pads_with_minus_one() -> None:
    users, table = _vectors(3, 4)
    ids, scores = ItemRanker(table).search(users, 6)
    assert (ids[:, :4] > 0).all() and (ids[:, 4:] == -1).all()
    assert torch.isinf(scores[:, 4:]).all()


def test_batches_do_not_change_results() -> None:
    users, table = _vectors(37, 100)
    whole, _ = ItemRanker(table, batch_size=4096).search(users, 7)
    small, _ = ItemRanker(table, batch_size=5).search(users, 7)
    assert torch.equal(whole, small)


def test_accepts_other_dtypes_and_numpy() -> None:
    users, table = _vectors(8, 40)
    ref, _ = ItemRanker(table).search(users, 5)
    ids, _ = ItemRanker(table.double().numpy()).search(users.double(), 5)
    assert torch.equal(ids, ref)
    bf16_ids, _ = ItemRanker(table.to(torch.bfloat16)).search(users.to(torch.bfloat16), 5)
    assert bf16_ids.shape == (8, 5) and (bf16_ids > 0).all()


def _seen(histories: list[list[int]]) -> SeenItems:
    lengths = [len(h) for h in histories]
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    items = np.array([i for h in histories for i in h], dtype=np.int64)
    return SeenItems(items, offsets)


def test_exclude_seen_matches_masked_brute_force() -> None:
    users, table = _vectors(4, 40)
    histories = [[1, 2, 3], [], list(range(1, 31)), [5, 5, 7]]  # row 2 has seen 30 items, far more than k
    ids, _ = ItemRanker(table).search(users, 8, _seen(histories))
    assert ids.tolist() == _brute_force(users, table, 8, [set(h) for h in histories])
    for row, history in enumerate(histories):
        assert not set(ids[row].tolist()) & set(history)


def test_exclude_seen_when_fewer_unseen_items_than_k() -> None:
    users, table = _vectors(1, 10)
    ids, scores = ItemRanker(table).search(users, 5, _seen([list(range(1, 8))]))
    assert sorted(ids[0, :3].tolist()) == [8, 9, 10]
    assert ids[0, 3:].tolist() == [-1, -1] and torch.isinf(scores[0, 3:]).all()


def test_seen_items_come_from_full_history_rows() -> None:
    history = Sequences(np.array([4, 5, 6, 7, 8, 9]), np.array([0, 2, 6]), np.array([10, 11]))
    seen = SeenItems.of_rows(history, np.array([1, 0]))
    assert seen.offsets.tolist() == [0, 4, 6]
    assert seen.items.tolist() == [6, 7, 8, 9, 4, 5]
    assert seen.mask(np.array([[9, 4, -1], [4, 9, -1]])).tolist() == [[True, False, False], [True, False, False]]


def test_ivf_with_every_cell_probed_is_exact() -> None:
    users, table = _vectors(30, 2000, dim=8)
    spec = IndexSpec(kind="ivf", nlist=16, nprobe=16)
    assert index_recall(table, users, spec, k=20) == pytest.approx(1.0)
    loose = index_recall(table, users, IndexSpec(kind="ivf", nlist=16, nprobe=1), k=20)
    assert 0.0 < loose <= 1.0


def test_hnsw_recall_is_high_and_padding_never_returned() -> None:
    users, table = _vectors(30, 1000, dim=8)
    spec = IndexSpec(kind="hnsw", hnsw_m=16, ef_search=128)
    ids, _ = ItemRanker(table, spec).search(users, 10)
    assert (ids > 0).all()
    assert index_recall(table, users, spec, k=10) > 0.9


def test_overlap_recall_counts_shared_ids_per_row() -> None:
    exact = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    approx = torch.tensor([[4, 3, 9, 9], [5, 6, 7, 8]])
    assert overlap_recall(approx, exact) == pytest.approx((0.5 + 1.0) / 2)


def test_wrong_dimension_is_rejected() -> None:
    users, table = _vectors(2, 10, dim=4)
    with pytest.raises(ValueError, match="expected"):
        ItemRanker(table).search(torch.randn(2, 5), 3)


@pytest.mark.skipif(not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0, reason="no faiss GPU")
def test_gpu_index_matches_cpu() -> None:
    users, table = _vectors(64, 500)
    gpu = ItemRanker(table, IndexSpec(use_gpu=True))
    assert gpu.on_gpu
    cpu_ids, _ = ItemRanker(table, IndexSpec(use_gpu=False)).search(users, 10)
    assert overlap_recall(gpu.search(users, 10)[0], cpu_ids) > 0.99


def test_gpu_request_without_gpu_fails_loudly() -> None:
    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="GPU"):
        ItemRanker(torch.randn(5, 4), IndexSpec(use_gpu=True))


def test_seen_mask_matches_python_sets() -> None:
    rng = np.random.default_rng(0)
    histories = [list(rng.integers(1, 50, size=rng.integers(0, 20))) for _ in range(30)]
    ids = rng.integers(-1, 51, size=(30, 15))
    mask = _seen(histories).mask(ids)
    expected = [[int(i) in set(h) for i in row] for row, h in zip(ids, histories, strict=True)]
    assert mask.tolist() == expected


def test_threaded_chunks_match_one_call() -> None:
    users, table = _vectors(1000, 300)
    one, _ = ItemRanker(table, threads=1).search(users, 12)
    many, _ = ItemRanker(table, threads=3).search(users, 12)
    assert torch.equal(one, many)


def test_exclusion_in_length_groups_matches_brute_force() -> None:
    """Over 512 users per batch, rows are searched in groups by history length; results must not change."""
    users, table = _vectors(1300, 200)
    rng = np.random.default_rng(1)
    histories = [list(rng.integers(1, 201, size=rng.choice([0, 3, 12, 150]))) for _ in range(1300)]
    ids, scores = ItemRanker(table).search(users, 10, _seen(histories))
    banned = [set(int(i) for i in h) for h in histories]
    for row in range(1300):
        assert not set(ids[row].tolist()) & banned[row]
    reference = users.double() @ table.double().T
    reference[:, 0] = -torch.inf
    for row, items in enumerate(banned):
        reference[row, list(items)] = -torch.inf
    top = torch.topk(reference, 10).values.float()
    assert torch.allclose(scores, top, atol=1e-4)


def test_gpu_hnsw_request_is_refused() -> None:
    with pytest.raises(ValueError, match="no GPU HNSW"):
        ItemRanker(torch.randn(5, 4), IndexSpec(kind="hnsw", use_gpu=True))



_THREADS_SCRIPT = """
import torch
torch.set_num_threads(1)
torch.get_num_threads()
from recsys.eval.ranker import IndexSpec, ItemRanker
g = torch.Generator().manual_seed(0)
for kind in ("exact", "ivf"):
    ranker = ItemRanker(torch.randn(1683, 32, generator=g), IndexSpec(kind=kind, nlist=4), threads=2)
    ranker.search(torch.randn(943, 32, generator=g), 10)
    print(kind, torch.get_num_threads())
"""


def test_building_an_index_leaves_torch_thread_count_alone() -> None:
    """Validation builds a ranker between training epochs; it must not change training's thread count.

    Run in a fresh interpreter that imports torch before faiss, as `recsys fit` does: that import order is
    what lets faiss's OpenMP setting reach torch.
    """
    out = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["exact", "1", "ivf", "1"], out.stdout + out.stderr
