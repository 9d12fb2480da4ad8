"""Item vectors from the training sequences alone, to join the text embedding semantic IDs are cut from.

Why: when item texts are thin, many items share one text and therefore one code tuple, and only the
collision digit, an arbitrary index, tells them apart (Amazon Beauty's S3-Rec attributes: 86% of items share
their text with another item, up to 201 with one text). Adding how items are used, which items sit near
each other in users' histories, gives such items different codes that carry meaning, as LETTER (Wang et
al., CIKM 2024) argues for collaborative signals in semantic IDs.

The vectors are a spectral embedding of the item co-occurrence graph: items within `window` positions of each
other in a training sequence are linked (weight 1 / distance), the graph is normalised as D^-1/2 C D^-1/2, and its
leading singular vectors scaled by the singular values' square roots are each item's coordinates. Only the
training split goes in: validation and test targets never shape the IDs.
"""

from __future__ import annotations

import numpy as np
import torch

from recsys.data.sequences import Sequences


def cooccurrence_matrix(sequences: Sequences, n_items: int, window: int = 3) -> torch.Tensor:
    """Symmetric sparse [n_items + 1, n_items + 1] counts: sum of 1 / distance over pairs within `window`."""
    if window < 1:
        raise ValueError(f"window={window}: must be at least 1")
    rows, cols, weights = [], [], []
    items, offsets = sequences.items, sequences.offsets
    same_user_until = np.repeat(offsets[1:], np.diff(offsets))  # end of each position's own sequence
    positions = np.arange(items.size)
    for distance in range(1, window + 1):
        left = positions[positions + distance < same_user_until]
        rows.append(items[left])
        cols.append(items[left + distance])
        weights.append(np.full(left.size, 1.0 / distance))
    row = np.concatenate(rows)
    col = np.concatenate(cols)
    weight = np.concatenate(weights)
    keep = (row > 0) & (col > 0) & (row != col)
    row, col, weight = row[keep], col[keep], weight[keep]
    index = torch.from_numpy(np.stack([np.r_[row, col], np.r_[col, row]]))
    values = torch.from_numpy(np.r_[weight, weight]).float()
    return torch.sparse_coo_tensor(index, values, (n_items + 1, n_items + 1), check_invariants=False).coalesce()


def collaborative_embeddings(
    sequences: Sequences, n_items: int, dim: int = 64, window: int = 3, seed: int = 0
) -> np.ndarray:
    """float32 [n_items, dim] for items 1..n_items, each row L2-normalised (zero for items never co-occurring).

    Args:
        sequences: training sequences (item indices 1..n_items, oldest first).
        n_items: catalogue size.
        dim: embedding width (capped at n_items - 1).
        window: items at most this many positions apart count as co-occurring.
        seed: seed of the randomised SVD.
    """
    counts = cooccurrence_matrix(sequences, n_items, window)
    degree = torch.zeros(n_items + 1).index_add_(0, counts.indices()[0], counts.values())
    scale = torch.where(degree > 0, degree.clamp_min(1e-12).rsqrt(), torch.zeros_like(degree))
    i, j = counts.indices()
    normalised = torch.sparse_coo_tensor(  # same (coalesced) pattern as counts, so no second coalesce
        counts.indices(), counts.values() * scale[i] * scale[j], counts.shape, check_invariants=False, is_coalesced=True
    )
    rank = max(1, min(dim, n_items - 1))
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        u, s, _ = torch.svd_lowrank(normalised, q=rank, niter=6)
    finally:
        torch.random.set_rng_state(generator_state)
    vectors = (u * s.clamp_min(0).sqrt())[1:].numpy().astype(np.float32)
    if vectors.shape[1] < dim:
        vectors = np.pad(vectors, ((0, 0), (0, dim - vectors.shape[1])))
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 1e-12)


def join_collaborative(
    text: np.ndarray, sequences: Sequences, weight: float, dim: int = 64, seed: int = 0
) -> np.ndarray:
    """float32 [n_items, d_text + dim]: each item's text embedding joined by `weight` times its co-occurrence
    embedding, the vector TIGER cuts semantic IDs from when its `collaborative_weight` is `weight`."""
    usage = collaborative_embeddings(sequences, text.shape[0], dim, seed=seed)
    return np.hstack([text, weight * usage]).astype(np.float32)
