"""SASRec: a causal transformer over the item history; every position predicts the next item."""

from __future__ import annotations

import torch
from torch import nn

from recsys.models.blocks import Activation, Dropout, Init, SequenceEncoder, init_weights, xavier_init


class SASRec(nn.Module):
    """Self-attentive sequential recommendation (Kang & McAuley, 2018).

    Scores are dot products with the item embedding table itself (input and output tied by default, no bias),
    so the user vector and the item table go straight into one faiss index. Positions are counted from the most
    recent item, which makes outputs independent of left padding.

    Args:
        n_items: number of items; indices run 1..n_items and 0 is padding.
        hidden_size: width of embeddings and hidden states (the dimension of user and item vectors).
        n_layers: transformer layers.
        n_heads: attention heads; must divide hidden_size.
        max_len: the longest history window the model accepts (rows in the position table).
        dropout: dropout on embeddings and residual branches.
        attn_dropout: dropout on attention weights; None means the same as dropout. On CPU any value above 0
            moves attention off the fused kernel and costs several times the attention time at long windows.
        pre_norm: LayerNorm before each sub-layer (stable without warm-up); False gives the post-LN layout.
        ffn_size: feed-forward inner width; None means 4 * hidden_size.
        activation: feed-forward non-linearity (the paper used relu).
        item_dropout: dropout on the item table that training scores are computed against (training only;
            evaluation and the faiss index see the plain table). It keeps item vectors from overfitting on
            sparse data, as RecTools' SASRec does (its item network applies dropout to the whole table).
        scale_item_embeddings: multiply the input item embeddings by sqrt(hidden_size) before the positions are
            added, as the original SASRec does (the scored table stays unscaled).
        init: weight initialisation, "normal" (N(0, 0.02) everywhere) or "xavier" (Xavier-normal weight
            matrices and tables, as the SASRec reference code); see SequenceEncoder.
        reference_block: the pre-LN block of the SASRec authors' code (queries normalised, keys and values
            raw, residuals added to the normalised input; see blocks.TransformerLayer); needs pre_norm. With
            ffn_size=hidden_size and activation relu it is their block as published.
        tie_output: score against the input item table (True, the paper's choice) or against a second table of
            the same shape, learned only as the output (False). Tied, the item just consumed tends to score
            highest, since the next item sits near it in the shared space: the d=64 Beauty model
            `ce-d64-packed-ls02` of benchmarks/results/quality.md ranks each test user's last item first for
            71% of users, although no Beauty target repeats an item of its history.
        subtract_input_item: learn a scalar a (starting at 0) and output h_t - a * e(item_t) at each position
            t, item_t being the item read there: the user vector is still one vector scored by dot products,
            and one parameter lets the model lower the item just consumed without untying the tables. On
            Beauty (d=64) training drove a to -4.65 instead, adding the item just read: the next item sits near it.
        negated_dims: score against the item table with its last `negated_dims` columns negated (0: the table as
            is). The tables stay tied, but an item's own vector then scores ||u||^2 - ||v||^2 against itself
            (u, v its leading and negated parts) while neighbours still meet in u, so the model has room to keep
            the item just read from outranking the items that follow it. Needs tie_output.
        output_offset: score against the item table plus a second, output-only table that starts at zero
            (False: the table alone). Scoring starts tied and may drift apart where the output needs it, while
            every item's output vector keeps what its input row learns (an untied table learns a rare item only
            as a target or a negative). Needs tie_output.
    """

    objective = "causal"
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
        pre_norm: bool = True,
        ffn_size: int | None = None,
        activation: Activation = "gelu",
        item_dropout: float = 0.0,
        scale_item_embeddings: bool = False,
        init: Init = "normal",
        reference_block: bool = False,
        tie_output: bool = True,
        subtract_input_item: bool = False,
        negated_dims: int = 0,
        output_offset: bool = False,
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.max_len = max_len
        self.encoder = SequenceEncoder(
            n_embeddings=n_items + 1,
            hidden_size=hidden_size,
            n_layers=n_layers,
            n_heads=n_heads,
            max_len=max_len,
            dropout=dropout,
            attn_dropout=dropout if attn_dropout is None else attn_dropout,
            pre_norm=pre_norm,
            ffn_size=ffn_size or 4 * hidden_size,
            activation=activation,
            causal=True,
            item_scale=hidden_size**0.5 if scale_item_embeddings else 1.0,
            init=init,
            reference_block=reference_block,
        )
        self.item_dropout = Dropout(item_dropout)
        self.output_items: nn.Embedding | None = None
        if not tie_output:
            self.output_items = nn.Embedding(n_items + 1, hidden_size, padding_idx=0)
            (xavier_init if init == "xavier" else init_weights)(self.output_items)
        self.input_item_weight = nn.Parameter(torch.zeros(())) if subtract_input_item else None
        if not 0 <= negated_dims <= hidden_size:
            raise ValueError(f"negated_dims={negated_dims}: expected 0..hidden_size ({hidden_size})")
        if negated_dims and not tie_output:
            raise ValueError("negated_dims applies to the tied table: leave tie_output true")
        if output_offset and not tie_output:
            raise ValueError("output_offset adds to the tied table: leave tie_output true")
        self.output_offset = nn.Embedding(n_items + 1, hidden_size, padding_idx=0) if output_offset else None
        if self.output_offset is not None:
            nn.init.zeros_(self.output_offset.weight)
        self.register_buffer("output_signs", None)
        if negated_dims:
            self.output_signs = torch.ones(hidden_size)
            self.output_signs[hidden_size - negated_dims :] = -1.0

    def forward(
        self,
        item_seq: torch.Tensor,
        segments: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        select: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[B, L] left-padded items -> [B, L, d]; position t only sees items up to t and predicts targets[:, t].
        Packed batches add `segments` and `positions`; `select` [B, L] bool returns only those positions,
        [P, d], computing less (see SequenceEncoder.forward)."""
        hidden = self.encoder(item_seq, segments, positions, select=select)
        return self._offset_by_input(hidden, item_seq if select is None else item_seq[select])

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, d] user vectors: the output at the most recent item (longer histories are cut to max_len)."""
        item_seq = batch["item_seq"][:, -self.max_len :]
        return self._offset_by_input(self.encoder(item_seq, last_only=True)[:, -1], item_seq[:, -1])

    def _offset_by_input(self, hidden: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
        """`hidden` [..., d] minus a times the embeddings of the items `read` [...] at those positions
        (subtract_input_item); unchanged without it."""
        if self.input_item_weight is None:
            return hidden
        return hidden - self.input_item_weight * self.encoder.items(read)

    def item_embeddings(self) -> torch.Tensor:
        """[n_items + 1, d] the table scores are dot products against; row 0 (padding) is zero.

        In training mode with item_dropout > 0 the table comes back with dropout applied.
        """
        table = (self.encoder.items if self.output_items is None else self.output_items).weight
        if self.output_offset is not None:
            table = table + self.output_offset.weight
        if self.output_signs is not None:
            table = table * self.output_signs
        return self.item_dropout(table)
