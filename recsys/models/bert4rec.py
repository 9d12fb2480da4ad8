"""BERT4Rec: a bidirectional transformer trained to fill in masked items (the cloze objective)."""

from __future__ import annotations

import torch
from torch import nn

from recsys.models.blocks import Activation, SequenceEncoder, init_weights


class BERT4Rec(nn.Module):
    """Bidirectional sequential recommendation with a cloze objective (Sun et al., 2019).

    The embedding table has n_items + 2 rows: 0 is padding and n_items + 1 is [MASK]. Outputs are scored
    against the item rows only (no bias, the mask row excluded), so retrieval is a plain dot product. At
    inference a [MASK] is appended after the history and its output is the user vector, which is the
    situation the model was trained on.

    Args:
        n_items: number of items; indices run 1..n_items, 0 is padding and n_items + 1 is [MASK].
        hidden_size: width of embeddings and hidden states (the dimension of user and item vectors).
        n_layers: transformer layers.
        n_heads: attention heads; must divide hidden_size.
        max_len: the longest window the model accepts, the appended [MASK] included.
        dropout: dropout on embeddings and residual branches.
        attn_dropout: dropout on attention weights; None means the same as dropout. On CPU any value above 0
            moves attention off the fused kernel and costs several times the attention time at long windows.
        pre_norm: LayerNorm before each sub-layer; False gives the post-LN layout of the paper.
        ffn_size: feed-forward inner width; None means 4 * hidden_size.
        activation: feed-forward non-linearity.
        projection_head: pass outputs through Linear + GELU + LayerNorm before scoring, as in the paper;
            this lets the hidden states differ from the (tied) item space.
    """

    objective = "cloze"
    accepts_packed = True  # forward takes segments/positions (packed training batches)
    accepts_select = True  # forward takes select: only the positions a loss reads

    def __init__(
        self,
        n_items: int,
        hidden_size: int = 64,
        n_layers: int = 2,
        n_heads: int = 2,
        max_len: int = 50,
        dropout: float = 0.2,
        attn_dropout: float | None = None,
        pre_norm: bool = False,
        ffn_size: int | None = None,
        activation: Activation = "gelu",
        projection_head: bool = True,
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.max_len = max_len
        self.encoder = SequenceEncoder(
            n_embeddings=n_items + 2,
            hidden_size=hidden_size,
            n_layers=n_layers,
            n_heads=n_heads,
            max_len=max_len,
            dropout=dropout,
            attn_dropout=dropout if attn_dropout is None else attn_dropout,
            pre_norm=pre_norm,
            ffn_size=ffn_size or 4 * hidden_size,
            activation=activation,
            causal=False,
        )
        self.head: nn.Module = (
            nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.GELU(), nn.LayerNorm(hidden_size))
            if projection_head
            else nn.Identity()
        )
        self.head.apply(init_weights)

    @property
    def mask_token(self) -> int:
        """The [MASK] index the cloze collator must write: one past the last item."""
        return self.n_items + 1

    def forward(
        self,
        item_seq: torch.Tensor,
        segments: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        select: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[B, L] left-padded items with [MASK] at some positions -> [B, L, d]; every position sees the
        whole row (its own segment in packed batches), and the output at a masked position predicts the item
        hidden there (targets[:, t]). `select` [B, L] bool returns only those positions, [P, d]: training
        passes the masked ones, and the last layer's feed-forward and the head then run only there."""
        return self.head(self.encoder(item_seq, segments, positions, select=select))

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, d] user vectors: the output at a [MASK] appended after the most recent item.

        The window keeps the last max_len - 1 items, so a full window shifts left by one; shorter windows
        simply grow by a column (left padding does not change outputs).
        """
        item_seq = batch["item_seq"]
        history = item_seq[:, max(item_seq.shape[1] - (self.max_len - 1), 0) :]
        mask = torch.full_like(item_seq[:, :1], self.mask_token)
        item_seq = torch.cat([history, mask], dim=1)
        return self.head(self.encoder(item_seq, last_only=True)[:, -1])

    def item_embeddings(self) -> torch.Tensor:
        """[n_items + 1, d] the table scores are dot products against; row 0 (padding) is zero, no mask row."""
        return self.encoder.items.weight[: self.n_items + 1]
