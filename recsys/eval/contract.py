"""The two model shapes the evaluator accepts (DESIGN.md, "The model contract"), checked structurally."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class RetrievalModel(Protocol):
    """Scores are dot products of `encode(batch)` [B, d] with `item_embeddings()` [n_items + 1, d]."""

    def encode(self, batch: dict[str, Tensor]) -> Tensor: ...

    def item_embeddings(self) -> Tensor: ...


@runtime_checkable
class GenerativeModel(Protocol):
    """Returns `generate(batch, k)` [B, k] item indices, best first (<= 0 = no item)."""

    def generate(self, batch: dict[str, Tensor], k: int) -> Tensor: ...
