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
