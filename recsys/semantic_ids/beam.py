"""Beam search restricted to valid semantic IDs.

Generative retrieval returns the k best *items*, so every beam must stay a prefix of some item's
ID: disallowed tokens get -inf before the top-k, which also means k distinct items come out (IDs are
unique). Models plug in through one callable from prefixes to next-token logits, so TIGER, Mender
and tests share this loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from recsys.semantic_ids.trie import PrefixTrie


class BeamResult(NamedTuple):
    items: torch.Tensor  # [B, k] item indices, 0 where fewer than k items exist
    scores: torch.Tensor  # [B, k] summed log-probabilities, -inf where items is 0
    tokens: torch.Tensor  # [B, k, D] the decoded token sequences


def constrained_beam_search(
    step_logits_fn: Callable[[torch.Tensor], torch.Tensor],
    trie: PrefixTrie,
    batch_size: int,
    beam_width: int,
    k: int,
) -> BeamResult:
    """Decode `trie.depth` tokens per row, keeping the `beam_width` best valid prefixes.

    `step_logits_fn(prefix)` gets prefixes [batch_size * beam_width, t] (rows b * beam_width + w,
    t = 0 on the first call) and returns next-token logits or log-probs [batch_size * beam_width, V];
    they are log-softmaxed here, so either works. Beams are re-ordered between calls, so a model that
    caches state per row must recompute it from the prefix.
    """
    if not 1 <= k <= beam_width:
        raise ValueError(f"need 1 <= k <= beam_width, got k={k}, beam_width={beam_width}")
    device = trie.device
    vocab = trie.vocab_size
    rows = batch_size * beam_width
    prefix = torch.zeros(rows, 0, dtype=torch.long, device=device)
    scores = torch.full((batch_size, beam_width), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live beam per row at the start, so no beam is a duplicate
    for _ in range(trie.depth):
        logp = torch.log_softmax(step_logits_fn(prefix).float(), dim=-1)
        if logp.shape != (rows, vocab):
            raise ValueError(f"step_logits_fn returned {tuple(logp.shape)}, expected {(rows, vocab)}")
        logp = logp.masked_fill(~trie.allowed_mask(prefix), float("-inf"))
        candidates = (scores.unsqueeze(-1) + logp.view(batch_size, beam_width, vocab)).view(batch_size, -1)
        scores, flat = candidates.topk(beam_width, dim=-1)
        parent = (flat // vocab) + torch.arange(batch_size, device=device).unsqueeze(1) * beam_width
        prefix = torch.cat([prefix[parent.flatten()], (flat % vocab).reshape(-1, 1)], dim=1)
    items = trie.item_of(prefix).view(batch_size, beam_width)
    live = torch.isfinite(scores)
    items = torch.where(live, items, 0)
    return BeamResult(items[:, :k], scores[:, :k], prefix.view(batch_size, beam_width, -1)[:, :k])
