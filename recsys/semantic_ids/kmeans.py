"""One k-means fit, shared by RQ-KMeans and by RQ-VAE's codebook initialisation.

faiss does the work; this wrapper only pins what must not vary between runs (the seed, no silent
subsampling of the data) and copes with fewer distinct points than codes, which real catalogues with
repeated item texts do produce.
"""

from __future__ import annotations

import faiss
import numpy as np


def kmeans(x: np.ndarray, n_codes: int, seed: int = 0, n_iter: int = 20) -> np.ndarray:
    """Centroids float32 [n_codes, d] of the rows of `x`.

    When `x` has fewer rows than `n_codes`, faiss refuses; the surplus centroids are then copies of
    data points, which nearest-centroid assignment simply leaves unused (usage statistics show it).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if n == 0:
        raise ValueError("kmeans: no points to cluster")
    rng = np.random.default_rng(seed)
    if n <= n_codes:
        extra = rng.integers(0, n, size=n_codes - n)
        return np.ascontiguousarray(np.concatenate([x, x[extra]]), dtype=np.float32)
    km = faiss.Kmeans(d, n_codes, niter=n_iter, seed=seed, verbose=False,
                      max_points_per_centroid=max(n // n_codes + 1, 256), min_points_per_centroid=1)
    km.train(x)
    return np.ascontiguousarray(km.centroids, dtype=np.float32)


def nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index int64 [n] of the nearest centroid (L2) for each row of `x`."""
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    _, idx = index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
    return idx[:, 0].astype(np.int64)
