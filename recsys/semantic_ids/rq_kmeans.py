"""RQ-KMeans: residual k-means, the training-free semantic-ID tokenizer.

Each level clusters what the previous levels left unexplained, so the first code says roughly what
an item is and later codes refine it. No gradient training, deterministic for a seed, and a strong
baseline against RQ-VAE (it is what several TIGER re-implementations settle on).
"""

from __future__ import annotations

import numpy as np

from recsys.semantic_ids.kmeans import kmeans, nearest


class RQKMeans:
    """Residual k-means with `n_levels` codebooks of `n_codes` centroids each."""

    def __init__(self, n_levels: int = 3, n_codes: int = 256, seed: int = 0, n_iter: int = 20) -> None:
        if n_levels < 1 or n_codes < 2:
            raise ValueError(f"RQKMeans needs n_levels >= 1 and n_codes >= 2, got {n_levels}, {n_codes}")
        self.n_levels = n_levels
        self.n_codes = n_codes
        self.seed = seed
        self.n_iter = n_iter
        self.codebooks: list[np.ndarray] = []

    def fit(self, x: np.ndarray) -> RQKMeans:
        """Fit the codebooks level by level on the residuals of `x` [n, d]."""
        residual = np.asarray(x, dtype=np.float32).copy()
        self.codebooks = []
        for level in range(self.n_levels):
            centroids = kmeans(residual, self.n_codes, seed=self.seed + level, n_iter=self.n_iter)
            residual -= centroids[nearest(residual, centroids)]
            self.codebooks.append(centroids)
        return self

    def _check_fitted(self) -> None:
        if len(self.codebooks) != self.n_levels:
            raise RuntimeError("RQKMeans is not fitted; call fit(embeddings) first")

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes int64 [n, n_levels]."""
        self._check_fitted()
        residual = np.asarray(x, dtype=np.float32).copy()
        codes = np.empty((residual.shape[0], self.n_levels), dtype=np.int64)
        for level, centroids in enumerate(self.codebooks):
            codes[:, level] = nearest(residual, centroids)
            residual -= centroids[codes[:, level]]
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """The approximation of each item's embedding: the sum of its codes' centroids, [n, d]."""
        self._check_fitted()
        codes = np.asarray(codes, dtype=np.int64)
        return sum(cb[codes[:, level]] for level, cb in enumerate(self.codebooks))

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        return self.decode(self.encode(x))
