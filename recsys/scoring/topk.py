"""Each batch's top-K through the evaluator's own code paths, so scoring and `recsys test` rank alike.

Retrieval models (`encode` + `item_embeddings`): the item table goes into one faiss `ItemRanker` (the index
the Evaluator builds), searched per batch with the same seen-item exclusion; scores are the inner products.
Generative models (`generate(batch, k)`): the Evaluator's generated path (invalid ids keep their slot, seen
items dropped from k + longest-history candidates). The contract returns ids only, so their scores are null.
A model with both is treated as a retrieval model, which has scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from recsys.data.split import EvalSplit
from recsys.eval.contract import GenerativeModel, RetrievalModel
from recsys.eval.evaluator import Evaluator
from recsys.eval.ranker import IndexSpec, ItemRanker
from recsys.eval.seen import SeenItems


class ModelContractError(TypeError):
    """The model offers neither the retrieval nor the generative contract, or breaks its shapes."""


@dataclass
class RetrievalTopK:
    model: nn.Module
    ranker: ItemRanker
    split: EvalSplit
    k: int
    exclude_seen: bool
    scored = True
    kind = "retrieval"

    @torch.inference_mode()
    def __call__(self, batch: dict[str, Tensor]) -> tuple[np.ndarray, np.ndarray | None]:
        seen = SeenItems.of_rows(self.split.history, batch["row"].cpu().numpy()) if self.exclude_seen else None
        ids, scores = self.ranker.search(self.model.encode(batch), self.k, seen)
        return ids.numpy(), scores.numpy()


@dataclass
class GenerativeTopK:
    model: nn.Module
    evaluator: Evaluator
    scored = False
    kind = "generative"

    @torch.inference_mode()
    def __call__(self, batch: dict[str, Tensor]) -> tuple[np.ndarray, np.ndarray | None]:
        return self.evaluator.rank_batch(self.model, batch).topk.numpy(), None


def make_topk(
    model: nn.Module,
    split: EvalSplit,
    n_items: int,
    k: int,
    exclude_seen: bool,
    index: IndexSpec,
    threads: int | None = None,
) -> RetrievalTopK | GenerativeTopK:
    """Export the item table and build the index once, before the first batch."""
    if isinstance(model, RetrievalModel):
        with torch.inference_mode():
            table = model.item_embeddings().detach()
        if table.ndim != 2 or table.shape[0] != n_items + 1:
            raise ModelContractError(
                f"{type(model).__name__}.item_embeddings() has shape {tuple(table.shape)}; the dataset has "
                f"{n_items:,} items, so expected [{n_items + 1}, d]"
            )
        # One faiss call per scoring batch: the batch size already bounds memory.
        ranker = ItemRanker(table, index, threads=threads, batch_size=1 << 30)
        return RetrievalTopK(model, ranker, split, k, exclude_seen)
    if isinstance(model, GenerativeModel):
        evaluator = Evaluator(n_items=n_items, ks=(k,), exclude_seen=exclude_seen)
        evaluator.prepare(model, split)
        return GenerativeTopK(model, evaluator)
    raise ModelContractError(
        f"{type(model).__name__} has neither encode() + item_embeddings() (retrieval) nor generate(batch, k)"
    )
