"""Top-K items for user vectors by inner product, through faiss.

Item row 0 is padding and is never added to the index, so it can never be returned: faiss labels are
0-based positions in rows 1..N and map back with +1; faiss's "no result" label (-1) stays -1.
"""

from __future__ import annotations

import contextlib
import math
import os
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import faiss
import numpy as np
import torch
from torch import Tensor

from recsys.eval.seen import SeenItems, drop_masked

IndexKind = Literal["exact", "ivf", "hnsw"]

# faiss GPU brute-force search supports at most this many results per query.
_GPU_MAX_K = 2048
# Fewer queries than this per thread are not worth a thread hand-off.
_MIN_CHUNK = 128
# Users per group of similar history length when seen items are excluded.
_SEEN_GROUP = 512


@dataclass(frozen=True)
class IndexSpec:
    """Which faiss index ranks the items.

    Exact search is the default because the approximate ones lose recall; `index_recall` measures how much.

    Args:
        kind: `exact` (IndexFlatIP), `ivf` (IndexIVFFlat, inner product) or `hnsw` (IndexHNSWFlat, inner product).
        nlist: IVF cells; capped at n_items // 39 so k-means has the 39 points per centroid faiss asks for.
        nprobe: IVF cells visited per query.
        hnsw_m: HNSW neighbours per node.
        ef_construction: HNSW build-time beam width.
        ef_search: HNSW search-time beam width (raised to k when k is larger).
        use_gpu: None = a GPU when the installed faiss has one, else CPU; False forces CPU.
    """

    kind: IndexKind = "exact"
    nlist: int = 1024
    nprobe: int = 32
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 256
    use_gpu: bool | None = None

    def describe(self) -> str:
        if self.kind == "exact":
            return "exact inner product"
        if self.kind == "ivf":
            return f"approximate IVF (nlist={self.nlist}, nprobe={self.nprobe})"
        return f"approximate HNSW (M={self.hnsw_m}, efSearch={self.ef_search})"


def as_float32(x: Tensor | np.ndarray) -> np.ndarray:
    """C-contiguous float32 numpy, which is all faiss accepts (bf16/fp16/GPU tensors are converted)."""
    if isinstance(x, Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def default_threads() -> int:
    """CPUs this process may run on; containers often report the host's cores to OpenMP instead."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextlib.contextmanager
def _exact_search_tuning() -> Iterator[None]:
    """BLAS tiles and threshold for exact search, restored on exit (they are faiss globals).

    faiss 1.15 computes scores with BLAS only above `distance_compute_blas_threshold` (128,000 by default,
    which a 1,024 x 64 batch does not reach: its fallback kernel was measured 2x slower), in 4096 x 1024
    tiles; 256 x 4096 tiles (4 MiB of scores) stay in cache while the heaps read them, about 3x faster for
    22k users x 12k items on 2 cores.
    """
    cvar = faiss.cvar
    old = (cvar.distance_compute_blas_threshold, cvar.distance_compute_blas_query_bs,
           cvar.distance_compute_blas_database_bs)
    cvar.distance_compute_blas_threshold = 20
    cvar.distance_compute_blas_query_bs = 256
    cvar.distance_compute_blas_database_bs = 4096
    try:
        yield
    finally:
        (cvar.distance_compute_blas_threshold, cvar.distance_compute_blas_query_bs,
         cvar.distance_compute_blas_database_bs) = old


@contextlib.contextmanager
def _openmp_threads(n: int) -> Iterator[None]:
    """faiss's OpenMP thread count for a block, then torch's own count put back.

    Setting faiss's count changed torch's intra-op thread count in the same process (seen in Lightning runs:
    1 thread before the first validation, 2 after), and on a busy 2-core machine 2 threads trained up to 6x
    slower than 1.
    """
    torch_threads = torch.get_num_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)


def _single_threaded_faiss() -> None:
    faiss.omp_set_num_threads(1)


class ItemRanker:
    """A faiss index over item rows 1..N, built once and searched batch by batch.

    Args:
        item_table: [n_items + 1, d] item vectors; row 0 (padding) is left out of the index.
        spec: which index (exact by default).
        threads: search threads; None = the CPUs this process may use.
        batch_size: users per search, which bounds memory at batch_size x (k + max seen) results.

    Searches run as independent single-threaded faiss calls on query chunks, one per worker thread (faiss
    releases the GIL), not as one OpenMP-parallel call: OpenMP threads wait for each other at every tile, so
    when another process holds a core, 2 OpenMP threads were measured 8x slower than 1 (4.6 s vs 0.57 s on
    2 cores), while independent chunks degrade only to the speed of one thread.
    """

    def __init__(
        self,
        item_table: Tensor | np.ndarray,
        spec: IndexSpec | None = None,
        threads: int | None = None,
        batch_size: int = 4096,
    ) -> None:
        self.spec = spec or IndexSpec()
        self.batch_size = batch_size
        self.threads = threads or default_threads()
        items = as_float32(item_table)[1:]
        if items.ndim != 2 or items.shape[0] == 0:
            raise ValueError(f"item_table has shape {tuple(np.shape(item_table))}; expected [n_items + 1, d]")
        self.n_items, self.dim = items.shape
        with _openmp_threads(self.threads):  # index training (k-means, HNSW build) uses OpenMP
            self.cpu_index = self._build(items)
        self.gpu_index = self._to_gpu(self.cpu_index)
        self._pool: ThreadPoolExecutor | None = None
        if self.threads > 1 and self.gpu_index is None:
            self._pool = ThreadPoolExecutor(self.threads, initializer=_single_threaded_faiss)
            weakref.finalize(self, self._pool.shutdown, wait=False)

    @property
    def on_gpu(self) -> bool:
        return self.gpu_index is not None

    def _build(self, items: np.ndarray) -> faiss.Index:
        spec = self.spec
        if spec.kind == "exact":
            index = faiss.IndexFlatIP(self.dim)
        elif spec.kind == "ivf":
            nlist = max(1, min(spec.nlist, self.n_items // 39))
            quantizer = faiss.IndexFlatIP(self.dim)
            index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(items)
            index.nprobe = min(spec.nprobe, nlist)
            self._quantizer = quantizer  # the IVF index does not own it from Python; keep it alive
        elif spec.kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, spec.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = spec.ef_construction
            index.hnsw.efSearch = spec.ef_search
        else:
            raise ValueError(f"index kind '{spec.kind}': expected exact, ivf or hnsw")
        index.add(items)
        return index

    def _to_gpu(self, index: faiss.Index) -> faiss.Index | None:
        if self.spec.use_gpu is False:
            return None
        if self.spec.kind == "hnsw":  # faiss has no GPU HNSW
            if self.spec.use_gpu:
                raise ValueError("use_gpu=True with kind='hnsw': faiss has no GPU HNSW index (use exact or ivf)")
            return None
        if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
            if self.spec.use_gpu:
                raise RuntimeError("use_gpu=True but the installed faiss has no GPU support (or no GPU is visible)")
            return None
        self._gpu_resources = faiss.StandardGpuResources()
        return faiss.index_cpu_to_gpu(self._gpu_resources, 0, index)

    def search(self, users: Tensor | np.ndarray, k: int, seen: SeenItems | None = None) -> tuple[Tensor, Tensor]:
        """Top-`k` item ids [U, k] int64 (1..N, -1 where fewer exist) and scores [U, k] float32 (-inf there).

        With `seen`, each row's history is left out: rows are searched in groups of similar history length,
        each group asking for k + its longest history, so even a user who has seen more than k items still
        gets k unseen ones when the catalogue has them.
        """
        queries = as_float32(users)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"users have shape {queries.shape}; expected [U, {self.dim}]")
        if seen is not None and len(seen) != queries.shape[0]:
            raise ValueError(f"seen holds {len(seen)} histories for {queries.shape[0]} users")
        ids_out, scores_out = [], []
        for start in range(0, queries.shape[0], self.batch_size):
            stop = min(start + self.batch_size, queries.shape[0])
            part_seen = seen.slice(start, stop) if seen is not None else None
            ids, scores = self._search_part(queries[start:stop], k, part_seen)
            ids_out.append(ids)
            scores_out.append(scores)
        if not ids_out:
            return torch.empty(0, k, dtype=torch.int64), torch.empty(0, k, dtype=torch.float32)
        return torch.from_numpy(np.concatenate(ids_out)), torch.from_numpy(np.concatenate(scores_out))

    def _search_part(self, queries: np.ndarray, k: int, seen: SeenItems | None) -> tuple[np.ndarray, np.ndarray]:
        if seen is None:
            return self._search_rows(queries, k, None)
        # Rows are searched in groups of similar history length, each asking for k + its own longest
        # history, so one heavy user does not make the whole batch search (and sort) hundreds of results.
        order = np.argsort(np.diff(seen.offsets), kind="stable")
        ids = np.empty((queries.shape[0], k), dtype=np.int64)
        scores = np.empty((queries.shape[0], k), dtype=np.float32)
        for group in np.array_split(order, max(1, order.size // _SEEN_GROUP)):
            ids[group], scores[group] = self._search_rows(queries[group], k, seen.slice_rows(group))
        return ids, scores

    def _search_rows(self, queries: np.ndarray, k: int, seen: SeenItems | None) -> tuple[np.ndarray, np.ndarray]:
        extra = seen.max_count if seen is not None else 0
        k_search = max(1, min(k + extra, self.n_items))
        scores, labels = self._faiss_search(queries, k_search)
        ids = np.where(labels >= 0, labels + 1, -1).astype(np.int64)
        scores = np.where(labels >= 0, scores, -np.inf).astype(np.float32)
        drop = (ids < 0) | seen.mask(ids) if seen is not None else ids < 0
        kept_ids, kept_scores = drop_masked(ids, scores, drop, k)
        assert kept_scores is not None
        return kept_ids, kept_scores

    def _faiss_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.gpu_index is not None and k <= _GPU_MAX_K:
            return self.gpu_index.search(queries, k)
        if self.spec.kind == "hnsw":
            self.cpu_index.hnsw.efSearch = max(self.spec.ef_search, k)
        tuning = _exact_search_tuning() if self.spec.kind == "exact" else contextlib.nullcontext()
        with tuning:
            n = queries.shape[0]
            if self._pool is None or n < 2 * _MIN_CHUNK:
                with _openmp_threads(self.threads):
                    return self.cpu_index.search(queries, k)
            chunk = max(_MIN_CHUNK, math.ceil(n / self.threads))
            parts = list(self._pool.map(lambda start: self.cpu_index.search(queries[start : start + chunk], k),
                                        range(0, n, chunk)))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def overlap_recall(approx: Tensor, exact: Tensor) -> float:
    """Mean share of each row's exact top-K that the approximate top-K also found (ids < 0 never count)."""
    a, e = approx.numpy(), exact.numpy()
    rows = np.arange(a.shape[0], dtype=np.int64)[:, None]
    width = np.int64(max(int(a.max(initial=0)), int(e.max(initial=0))) + 1)
    found = np.isin(rows * width + e, (rows * width + a)[a >= 0]) & (e >= 0)
    return float((found.sum(axis=1) / np.maximum((e >= 0).sum(axis=1), 1)).mean())


def index_recall(
    item_table: Tensor | np.ndarray,
    users: Tensor | np.ndarray,
    spec: IndexSpec,
    k: int = 100,
    exact_ids: Tensor | None = None,
) -> float:
    """Recall@k of an approximate index against exact search on the same vectors: the price of its speed."""
    if exact_ids is None:
        exact_ids, _ = ItemRanker(item_table, IndexSpec(kind="exact", use_gpu=spec.use_gpu)).search(users, k)
    approx_ids, _ = ItemRanker(item_table, spec).search(users, k)
    return overlap_recall(approx_ids, exact_ids)
