"""One evaluator for validation, `recsys test`, scoring and benchmarks, so they can never disagree.

Per epoch: `prepare(model, split)` exports the item table and builds the index once. Per batch:
`rank_batch(model, batch)` returns each target's rank and the top-K ids, which a `RankingMetrics` adds up.
`evaluate(model, loader, split)` does both for a whole split and returns an `EvalResult`.

In a LightningModule (the metric is a child module, so Lightning moves it and DDP syncs its sum states):

    self.val_metrics = evaluator.metric()                                   # in __init__/setup
    def on_validation_epoch_start(self):
        self.evaluator.prepare(self.model, self.trainer.datamodule.eval_split("valid"))
    def validation_step(self, batch, batch_idx):
        ranked = self.evaluator.rank_batch(self.model, batch)
        self.val_metrics.update(ranks=ranked.ranks, topk=ranked.topk)
    def on_validation_epoch_end(self):
        self.log_dict(self.val_metrics.compute())                           # summed over ranks, then divided
        self.val_metrics.reset()

Ranks are pessimistic about ties by default: an item scoring exactly the target's score counts as ranked
above it, so a degenerate model (constant scores) cannot score by the index's tie order. `ties="random"`
breaks them uniformly at random instead (recsys.eval.ties: the expected outcome, chance for a constant
model), for models that score many items identically, such as text-only ones on catalogues of shared texts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from recsys.data.split import EvalSplit
from recsys.eval.contract import GenerativeModel, RetrievalModel
from recsys.eval.metrics import RankingMetrics, ranks_from_topk
from recsys.eval.protocols import FullRanking, Protocol, SampledRanking
from recsys.eval.ranker import IndexSpec, ItemRanker
from recsys.eval.result import EvalResult
from recsys.eval.seen import SeenItems, drop_masked
from recsys.eval.ties import TIE_POLICIES, random_tie_rank, random_tie_ranks


@dataclass(frozen=True)
class RankedBatch:
    """`ranks` [B]: 1-based rank of the target, 0 = outside the top K_max, -1 = row has no target.
    `topk` [B, K_max]: recommended item ids, best first (-1 = none)."""

    ranks: Tensor
    topk: Tensor


def tie_aware_ranks(ids: np.ndarray, scores: np.ndarray, target: np.ndarray, k_max: int) -> np.ndarray:
    """Ranks from a top-(K_max + 1) list, counting every item that ties the target as ranked above it.

    The extra (K_max + 1)-th entry is what makes this exact: if the target and everything scoring at least
    as high fit in the list, the count is the pessimistic rank; if they overflow it, the rank is > K_max.
    numpy, not torch: these [B, K] steps are single-threaded numpy calls, which (unlike torch's OpenMP
    kernels) do not stall when another process holds a core.
    """
    hit = (ids == target[:, None]) & (ids > 0)
    target_score = np.where(hit, scores, -np.inf).max(axis=1)
    rank = (scores >= target_score[:, None]).sum(axis=1)
    ranks = np.where(hit.any(axis=1) & (rank <= k_max), rank, 0)
    return np.where(target < 0, -1, ranks).astype(np.int64)


def _device_of(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


class Evaluator:
    """Ranks held-out targets for any retrieval or generative model under one stated protocol.

    Args:
        n_items: catalogue size (item indices 1..n_items).
        ks: cut-offs for Recall/NDCG/MRR@K.
        protocol: FullRanking() (default) or SampledRanking(n_negatives, distribution, seed).
        exclude_seen: drop each user's full history (from the split, not the truncated input window)
            from the ranking; under full ranking a target that is itself in the history then counts as a
            miss; under a sampled protocol it keeps history items out of the negatives (the target stays).
        index: faiss index for full ranking (exact by default).
        item_popularity: [n_items + 1] training counts, for popularity@K and popularity-sampled negatives.
        search_batch_size: users per faiss call.
        ties: `pessimistic` (default: items scoring the same as the target count as ranked above it) or
            `random` (the target takes a uniformly drawn place among them, seeded by `tie_seed` at every
            `prepare`; exact index only). It changes the ranks behind Recall/NDCG/MRR; the top-K lists
            (coverage, popularity@K) keep the index's order. Generative models rank without scores: no ties.
        tie_seed: seed of the random tie-breaking.
    """

    def __init__(
        self,
        n_items: int,
        ks: Sequence[int] = (10,),
        protocol: Protocol | None = None,
        exclude_seen: bool = False,
        index: IndexSpec | None = None,
        item_popularity: np.ndarray | Tensor | None = None,
        search_batch_size: int = 4096,
        ties: str = "pessimistic",
        tie_seed: int = 0,
    ) -> None:
        if ties not in TIE_POLICIES:
            raise ValueError(f"ties='{ties}': expected one of {', '.join(TIE_POLICIES)}")
        self.ties = ties
        self.tie_seed = tie_seed
        self._tie_rng = np.random.default_rng(tie_seed)
        self.n_items = n_items
        self.ks = tuple(sorted(set(int(k) for k in ks)))
        self.protocol: Protocol = protocol or FullRanking()
        self.exclude_seen = exclude_seen
        self.index = index or IndexSpec()
        self.item_popularity = None if item_popularity is None else np.asarray(item_popularity, dtype=np.int64)
        if self.item_popularity is not None and self.item_popularity.shape != (n_items + 1,):
            raise ValueError(f"item_popularity has shape {self.item_popularity.shape}; expected ({n_items + 1},)")
        if isinstance(self.protocol, SampledRanking) and self.protocol.distribution == "popularity":
            if self.item_popularity is None:
                raise ValueError("popularity-sampled negatives need item_popularity")
        if ties == "random" and isinstance(self.protocol, FullRanking) and self.index.kind != "exact":
            raise ValueError(f"ties='random' ranks every target exactly; it needs the exact index, not "
                             f"'{self.index.kind}'")
        self.search_batch_size = search_batch_size
        self._split: EvalSplit | None = None
        self._ranker: ItemRanker | None = None
        self._table: Tensor | None = None

    @property
    def k_max(self) -> int:
        return self.ks[-1]

    def describe(self, split: EvalSplit | None = None) -> str:
        """The protocol in words, e.g. 'full ranking over 12,101 items, leave-one-out (test), seen items kept, K=10'."""
        parts = [self.protocol.describe(self.n_items)]
        parts.append("leave-one-out" + (f" ({split.name})" if split is not None else ""))
        parts.append("seen items excluded" if self.exclude_seen else "seen items kept")
        if self.ties == "random":
            parts.append("ties broken at random")
        parts.append("K=" + ",".join(str(k) for k in self.ks))
        if isinstance(self.protocol, FullRanking) and self.index.kind != "exact":
            parts.append(self.index.describe())
        return ", ".join(parts)

    def metric(self) -> RankingMetrics:
        """A fresh accumulator for this evaluator's ks, with coverage and (given counts) popularity."""
        return RankingMetrics(self.ks, n_items=self.n_items, item_popularity=self.item_popularity)

    @torch.inference_mode()
    def prepare(self, model: nn.Module, split: EvalSplit) -> None:
        """Once per evaluation pass: export the item table and build the index (never once per batch)."""
        self._split = split
        self._ranker = None
        self._table = None
        self._tie_rng = np.random.default_rng(self.tie_seed)  # the same draws on every pass
        if isinstance(model, RetrievalModel):
            table = model.item_embeddings().detach()
            if table.ndim != 2 or table.shape[0] != self.n_items + 1:
                raise ValueError(f"item_embeddings() has shape {tuple(table.shape)}; expected [{self.n_items + 1}, d]")
            if isinstance(self.protocol, FullRanking):
                self._ranker = ItemRanker(table, self.index, batch_size=self.search_batch_size)
            if not isinstance(self.protocol, FullRanking) or self.ties == "random":
                self._table = table
        elif isinstance(model, GenerativeModel):
            if isinstance(self.protocol, SampledRanking):
                raise ValueError("sampled protocols need item scores; generative models only return ranked ids")
        else:
            raise TypeError(f"{type(model).__name__} has neither encode()+item_embeddings() nor generate()")

    @torch.inference_mode()
    def rank_batch(self, model: nn.Module, batch: dict[str, Tensor]) -> RankedBatch:
        """Ranks of this batch's targets, the top-K_max ids, both on CPU. Call `prepare` first."""
        if self._split is None:
            raise RuntimeError("call prepare(model, split) before rank_batch")
        rows = batch["row"].cpu().numpy()
        target = batch["target"].cpu()
        seen = SeenItems.of_rows(self._split.history, rows) if self.exclude_seen else None
        if isinstance(self.protocol, SampledRanking):
            return self._rank_sampled(model, batch, target, seen)
        if self._ranker is not None:
            users = model.encode(batch)
            ids, scores = (t.numpy() for t in self._ranker.search(users, self.k_max + 1, seen))
            topk = np.ascontiguousarray(ids[:, : self.k_max])
            if self.ties == "random":
                assert self._table is not None
                ranks = random_tie_ranks(users, self._table, target, self.k_max, self._tie_rng, seen)
                return RankedBatch(ranks, torch.from_numpy(topk))
            ranks = tie_aware_ranks(ids, scores, target.numpy(), self.k_max)
            return RankedBatch(torch.from_numpy(ranks), torch.from_numpy(topk))
        return self._rank_generated(model, batch, target, seen)

    def _rank_generated(
        self, model: nn.Module, batch: dict[str, Tensor], target: Tensor, seen: SeenItems | None
    ) -> RankedBatch:
        if seen is None:
            ids = model.generate(batch, self.k_max).cpu().to(torch.int64).numpy()
        else:
            # Each user needs K plus its own history count of results (at most that many can be dropped). Asking
            # the whole batch for K plus its longest history (hundreds on Amazon data) multiplies a beam search's
            # time and memory by that for every user, so users go in groups of similar history length.
            counts = np.diff(seen.offsets)
            ids = np.full((len(counts), self.k_max + seen.max_count), -1, dtype=np.int64)
            for rows in generation_groups(counts, self.k_max):
                want = self.k_max + int(counts[rows].max())
                ids[rows, :want] = model.generate(_take_rows(batch, rows), want).cpu().to(torch.int64).numpy()
        # An invalid id (<= 0) keeps its slot: the model wasted it, and later items do not move up.
        ids = np.where(ids > 0, ids, -1)
        drop = seen.mask(ids) if seen is not None else np.zeros(ids.shape, dtype=bool)
        kept, _ = drop_masked(ids, None, drop, self.k_max)
        topk = torch.from_numpy(kept)
        return RankedBatch(ranks_from_topk(topk, target), topk)

    def _rank_sampled(
        self, model: nn.Module, batch: dict[str, Tensor], target: Tensor, seen: SeenItems | None
    ) -> RankedBatch:
        assert isinstance(self.protocol, SampledRanking) and self._table is not None
        has_target = target > 0
        users = batch["user_idx"].cpu().numpy()
        # Rows without a target still get candidates (drawn around item 1) so shapes stay rectangular.
        safe_target = torch.where(has_target, target, torch.ones_like(target)).numpy()
        candidates = torch.from_numpy(
            self.protocol.candidates(users, safe_target, self.n_items, self.item_popularity, seen)
        )
        vectors = model.encode(batch).float()
        table = self._table.to(vectors.device, torch.float32)
        scores = torch.einsum("bd,bcd->bc", vectors, table[candidates.to(vectors.device)]).cpu()
        if self.ties == "random":
            rank = random_tie_rank(scores[:, 1:], scores[:, 0], self._tie_rng)
        else:
            rank = (scores[:, 1:] >= scores[:, :1]).sum(dim=1) + 1
        ranks = torch.where(rank <= self.k_max, rank, torch.zeros_like(rank))
        ranks = torch.where(has_target, ranks, torch.full_like(ranks, -1))
        k = min(self.k_max, candidates.shape[1])
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
        topk = candidates.gather(1, order)
        if k < self.k_max:
            topk = torch.nn.functional.pad(topk, (0, self.k_max - k), value=-1)
        return RankedBatch(ranks, topk)

    def evaluate(
        self, model: nn.Module, loader: Iterable[dict[str, Tensor]], split: EvalSplit, name: str = ""
    ) -> EvalResult:
        """Every row of `split` that `loader` yields, in eval mode and without autograd."""
        started = time.perf_counter()
        was_training = model.training
        model.eval()
        device = _device_of(model)
        metric = self.metric()
        try:
            with torch.inference_mode():
                self.prepare(model, split)
                for batch in loader:
                    batch = {key: value.to(device) for key, value in batch.items()}
                    ranked = self.rank_batch(model, batch)
                    metric.update(ranks=ranked.ranks, topk=ranked.topk)
                values = metric.compute()
        finally:
            model.train(was_training)
        return EvalResult(
            metrics={key: float(value) for key, value in values.items()},
            protocol=self.describe(split),
            split=split.name,
            n_users=int(metric.count),
            seconds=time.perf_counter() - started,
            model=name or type(model).__name__,
        )


# Users x results asked of one generate() call when seen items are dropped: bounds a beam search's memory.
GENERATE_BUDGET = 32_768


def generation_groups(counts: np.ndarray, k: int, budget: int = GENERATE_BUDGET, spread: float = 1.5) -> list[np.ndarray]:
    """Rows grouped by history length (`counts`) for generate(): within a group the most results asked (K plus the
    longest history) is at most `spread` times the fewest, and rows x that stays within `budget` (one row always
    goes, however long its history)."""
    order = np.argsort(counts, kind="stable")
    groups: list[np.ndarray] = []
    start = 0
    while start < len(order):
        fewest = k + int(counts[order[start]])
        stop = start + 1
        while stop < len(order):
            want = k + int(counts[order[stop]])
            if want > spread * fewest or (stop - start + 1) * want > budget:
                break
            stop += 1
        groups.append(order[start:stop])
        start = stop
    return groups


def _take_rows(batch: dict[str, Tensor], rows: np.ndarray) -> dict[str, Tensor]:
    """The batch restricted to `rows` (every tensor whose first dimension is the batch's)."""
    size = len(batch["target"])
    out = {}
    for key, value in batch.items():
        if isinstance(value, Tensor) and value.ndim and value.shape[0] == size:
            value = value[torch.as_tensor(rows, device=value.device)]
        out[key] = value
    return out
