"""Baselines every trained model must beat, written to the same retrieval contract as the models."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


class PopularityModel(nn.Module):
    """Recommends the most interacted-with items to everyone.

    Item vectors are [n_items + 1, 1] log(1 + count) and every user vector is 1, so the dot-product
    ranking is by count; the log keeps scores small and finite for items never seen in training.
    """

    def __init__(self, item_counts: np.ndarray | Tensor) -> None:
        super().__init__()
        counts = torch.as_tensor(np.asarray(item_counts), dtype=torch.float32)
        if counts.ndim != 1 or counts.numel() < 2:
            raise ValueError(f"item_counts has shape {tuple(counts.shape)}; expected [n_items + 1]")
        table = torch.log1p(counts.clamp(min=0))[:, None]
        table[0] = 0.0  # padding row: never indexed, kept neutral
        self.register_buffer("table", table)

    def encode(self, batch: dict[str, Tensor]) -> Tensor:
        return torch.ones(batch["item_seq"].shape[0], 1, device=self.table.device)

    def item_embeddings(self) -> Tensor:
        return self.table


class AttributeOverlapModel(nn.Module):
    """Recommends the items that share the rarest attributes with the user's most recent items.

    Content-based and trained on nothing: it reads only the catalogue's item attributes, so it is the bar a
    zero-shot text model has to clear on a catalogue it never saw, without the interactions popularity needs.
    Item vectors are binary attribute indicators weighted by inverse document frequency
    (log((1 + n_items) / (1 + items having it)): 0 for an attribute on every item) and L2-normalised; a user vector sums the history's item vectors,
    the newest weighted 1 and each older one `decay` times the next, so the dot product is a recency-weighted
    cosine. Items with the same attributes score the same: evaluate it with `Evaluator(ties="random")` too.

    Args:
        item_attributes: attribute ids of items 0..n_items (row 0, padding, is ignored; None or empty allowed).
        decay: weight of each older history item relative to the next newer one.
    """

    def __init__(self, item_attributes: list[list[int] | None], decay: float = 0.7) -> None:
        super().__init__()
        if not 0 < decay <= 1:
            raise ValueError(f"decay={decay}: expected a value in (0, 1]")
        if len(item_attributes) < 2:
            raise ValueError("item_attributes needs a row per item 0..n_items (row 0 is padding)")
        rows = [(i, a) for i, attributes in enumerate(item_attributes[1:], 1) for a in set(attributes or ())]
        if not rows:
            raise ValueError("no item has any attribute")
        if min(a for _, a in rows) < 0:
            raise ValueError("attribute ids must be >= 0")
        n_items = len(item_attributes) - 1
        table = torch.zeros(n_items + 1, max(a for _, a in rows) + 1)
        index = torch.tensor(rows)
        table[index[:, 0], index[:, 1]] = 1.0
        idf = torch.log((1.0 + n_items) / (1.0 + table[1:].sum(0)))
        self.register_buffer("table", torch.nn.functional.normalize(table * idf, dim=1))
        self.decay = decay

    @classmethod
    def from_items(cls, items: object, decay: float = 0.7) -> AttributeOverlapModel:
        """From a prepared dataset's items table (polars, columns `item_idx` 1..N and `attributes`)."""
        import polars as pl

        if not isinstance(items, pl.DataFrame) or "attributes" not in items.columns:
            raise ValueError("the items table has no 'attributes' column (list of attribute ids per item)")
        lists: list[list[int] | None] = [None] * (items.height + 1)
        for index, attributes in zip(items["item_idx"].to_list(), items["attributes"].to_list(), strict=True):
            lists[index] = attributes
        return cls(lists, decay)

    def encode(self, batch: dict[str, Tensor]) -> Tensor:
        """[B, A] recency-weighted sums of the (left-padded) history's item vectors."""
        seq = batch["item_seq"].to(self.table.device)
        users = torch.zeros(seq.shape[0], self.table.shape[1], device=self.table.device)
        weight = 1.0
        for column in range(seq.shape[1] - 1, -1, -1):  # newest first; padding rows of the table are zero
            users += weight * self.table[seq[:, column]] * (seq[:, column, None] > 0)
            weight *= self.decay
        return users

    def item_embeddings(self) -> Tensor:
        return self.table
