"""The prefix trie that keeps beam search on real items.

A generative recommender emits an item as a short token sequence; most sequences name no item.
Constrained decoding asks, at every step and for every beam, which next tokens still lead to an
item. The trie answers for a whole batch of prefixes at once with a few `searchsorted` calls:
level t holds the sorted keys `parent_node * V + token` of its edges, so a node's children are one
contiguous slice and a child's node id is its position in that array. Memory is one int64 per edge,
whatever the vocabulary, so a million-item catalogue fits where dense per-level tables would not.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from recsys.semantic_ids.table import SemanticIds
from recsys.semantic_ids.tokens import TokenLayout


class PrefixTrie:
    """Valid token sequences [n, D] (one per item) over a vocabulary of `vocab_size` tokens.

    After a full ID, only `end_token` is allowed (when given), so a decoder can emit eos.
    """

    def __init__(
        self,
        sequences: np.ndarray | torch.Tensor,
        items: np.ndarray | torch.Tensor | None,
        vocab_size: int,
        end_token: int | None = None,
    ) -> None:
        seq = torch.as_tensor(np.asarray(sequences) if not isinstance(sequences, torch.Tensor) else sequences,
                              dtype=torch.long).cpu()
        if seq.ndim != 2 or seq.shape[1] == 0:
            raise ValueError(f"PrefixTrie: sequences must be [n, D] with D >= 1, got {tuple(seq.shape)}")
        if seq.numel() and (seq.min() < 0 or seq.max() >= vocab_size):
            raise ValueError(f"PrefixTrie: tokens must lie in 0..{vocab_size - 1}")
        self.vocab_size = int(vocab_size)
        self.depth = int(seq.shape[1])
        self.end_token = end_token
        node = torch.zeros(seq.shape[0], dtype=torch.long)
        self.edges: list[torch.Tensor] = []
        for t in range(self.depth):
            keys, node = torch.unique(node * self.vocab_size + seq[:, t], sorted=True, return_inverse=True)
            self.edges.append(keys)
        if len(self.edges[-1]) != seq.shape[0]:
            raise ValueError("PrefixTrie: two items share one token sequence; IDs must be unique")
        item_ids = torch.arange(1, seq.shape[0] + 1) if items is None else torch.as_tensor(
            np.asarray(items) if not isinstance(items, torch.Tensor) else items, dtype=torch.long).cpu()
        self.leaf_item = torch.zeros(seq.shape[0], dtype=torch.long)
        self.leaf_item[node] = item_ids

    @classmethod
    def from_semantic_ids(cls, ids: SemanticIds, layout: TokenLayout | None = None,
                          end_token: int | None = None) -> PrefixTrie:
        """The trie of every item's tokens under `layout` (default: the IDs' own layout)."""
        layout = layout or ids.layout()
        return cls(ids.tokens(layout)[1:], np.arange(1, ids.n_items + 1), layout.vocab_size, end_token)

    @property
    def device(self) -> torch.device:
        return self.leaf_item.device

    def to(self, device: str | torch.device) -> PrefixTrie:
        self.edges = [e.to(device) for e in self.edges]
        self.leaf_item = self.leaf_item.to(device)
        return self

    def walk(self, prefix: torch.Tensor) -> torch.Tensor:
        """Node id [B] at depth t reached by each prefix [B, t]; -1 where the prefix is not in the trie."""
        prefix = torch.as_tensor(prefix, dtype=torch.long, device=self.device)
        node = torch.zeros(prefix.shape[0], dtype=torch.long, device=self.device)
        for t in range(min(prefix.shape[1], self.depth)):
            keys = self.edges[t]
            key = node.clamp_min(0) * self.vocab_size + prefix[:, t]
            pos = torch.searchsorted(keys, key).clamp_max(len(keys) - 1)
            node = torch.where((node >= 0) & (keys[pos] == key), pos, -1)
        if prefix.shape[1] > self.depth:
            node = torch.full_like(node, -1)
        return node

    def contains(self, prefix: torch.Tensor) -> torch.Tensor:
        """bool [B]: each prefix [B, t] starts some item's ID."""
        return self.walk(prefix) >= 0

    def allowed_mask(self, prefix: torch.Tensor) -> torch.Tensor:
        """bool [B, vocab_size]: the tokens that may follow each prefix [B, t]; all False for a bad prefix."""
        prefix = torch.as_tensor(prefix, dtype=torch.long, device=self.device)
        batch, t = prefix.shape
        node = self.walk(prefix)
        mask = torch.zeros(batch, self.vocab_size, dtype=torch.bool, device=self.device)
        if t >= self.depth:
            if t == self.depth and self.end_token is not None:
                mask[node >= 0, self.end_token] = True
            return mask
        keys = self.edges[t]
        valid = node >= 0
        start = torch.searchsorted(keys, node.clamp_min(0) * self.vocab_size)
        stop = torch.searchsorted(keys, (node.clamp_min(0) + 1) * self.vocab_size)
        counts = torch.where(valid, stop - start, 0)
        rows = torch.repeat_interleave(torch.arange(batch, device=self.device), counts)
        first = torch.repeat_interleave(start, counts)
        before = torch.repeat_interleave(counts.cumsum(0) - counts, counts)
        edge = first + torch.arange(len(rows), device=self.device) - before
        mask[rows, keys[edge] % self.vocab_size] = True
        return mask

    def item_of(self, tokens: torch.Tensor) -> torch.Tensor:
        """Item index [B] named by each full token sequence [B, D]; 0 where it names none."""
        tokens = torch.as_tensor(tokens, dtype=torch.long, device=self.device)
        if tokens.shape[1] != self.depth:
            raise ValueError(f"item_of needs full IDs of {self.depth} tokens, got {tokens.shape[1]}")
        node = self.walk(tokens)
        return torch.where(node >= 0, self.leaf_item[node.clamp_min(0)], 0)

    def prefix_allowed_tokens_fn(self, n_leading: int = 1, fallback_token: int = 0) -> Callable[[int, torch.Tensor],
                                                                                                list[int]]:
        """A callable for transformers' `generate(prefix_allowed_tokens_fn=...)`.

        transformers passes the decoder ids with its start token(s) in front; `n_leading` of them are
        dropped. Finished or broken rows get `fallback_token` (pad) so that no row is left with no
        allowed token, which would turn its scores into NaN.
        """

        def allowed(batch_id: int, input_ids: torch.Tensor) -> list[int]:
            mask = self.allowed_mask(input_ids[n_leading:].reshape(1, -1))[0]
            ids = mask.nonzero().flatten().tolist()
            return ids or [fallback_token]

        return allowed
