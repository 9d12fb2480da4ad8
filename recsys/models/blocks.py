"""Building blocks shared by the transformer sequence models: positions, attention masks, an encoder stack.

Sequences arrive left-padded with 0 and the most recent item in the last column. Two choices here make a
model's output for a user independent of how much padding sits in front of the history:
- positions are counted from the right (the most recent item is position 0), so a real item keeps its
  position id whatever the window length;
- padded keys are masked out of attention, so real queries never read padding.
A padded query is always allowed to see itself, so a fully padded row still has a finite softmax.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Activation = Literal["gelu", "relu"]
Init = Literal["normal", "xavier"]


def attention_mask(item_seq: torch.Tensor, causal: bool, segments: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean mask [B, 1, L, L], True where query i may attend to key j (broadcast over heads).

    Keys are real items (index > 0), earlier-or-equal when causal, plus the query itself: without the
    diagonal a padded query would have no key at all and softmax would return NaN. With `segments` (packed
    rows, see recsys.data.collate.pack_windows) a query sees only keys of its own segment.
    """
    length = item_seq.shape[1]
    allowed = (item_seq > 0)[:, None, None, :]  # [B, 1, 1, L] keys
    if segments is not None:
        allowed = allowed & (segments[:, None, :, None] == segments[:, None, None, :])
    eye = torch.eye(length, dtype=torch.bool, device=item_seq.device)
    allowed = allowed | eye
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=item_seq.device).tril()
    return allowed


def attention_bias(mask: torch.Tensor, n_heads: int, dtype: torch.dtype) -> torch.Tensor:
    """The boolean `mask` [B, 1, Lq, Lk] as an additive bias [B * n_heads, Lq, Lk]: 0 where attention is
    allowed, -inf elsewhere, for `torch.baddbmm` to add while it computes the scores.

    Computed once per forward and shared by the layers, it replaces a masked_fill per layer and its backward
    (the bias needs no gradient) on the written-out attention of CPU training with attention dropout."""
    batch, _, queries, keys = mask.shape
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))
    return bias.expand(batch, n_heads, queries, keys).reshape(batch * n_heads, queries, keys)


class RightAlignedPositions(nn.Module):
    """Learned position embeddings indexed from the most recent item (the last column is position 0).

    Counting from the right makes left padding irrelevant: an item three steps before the most recent one
    gets the same position id in a window of 10 or of 200.

    Args:
        max_len: the longest window the model accepts.
        hidden_size: embedding width.
    """

    def __init__(self, max_len: int, hidden_size: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.embedding = nn.Embedding(max_len, hidden_size)

    def forward(self, length: int) -> torch.Tensor:
        """[length, hidden_size] embeddings for columns 0..length-1 of a window of `length` columns."""
        if length > self.max_len:
            raise ValueError(f"sequence of {length} columns is longer than max_len={self.max_len}")
        return self.embedding.weight[:length].flip(0)


MASK_BITS = 16  # resolution of the dropout draw: p is rounded to a multiple of 2**-16


def cpu_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout with the keep mask drawn as integers, for CPU tensors.

    torch's CPU dropout draws its mask with `bernoulli_`, several times slower than drawing integers and
    comparing them with a threshold (about 4 ms against 1 ms for a [128, 50, 64] tensor on this project's CPU);
    dropout was 14% of a SASRec training step there, and this path took the step (ML-100K, batch 128, one
    thread) from 200 to 183 ms. Same distribution: each element is kept with probability 1 - p (p rounded to
    2**-16) and scaled by 1 / (1 - p).
    """
    if p <= 0.0:
        return x
    if p >= 1.0:
        return torch.zeros_like(x)
    return x * dropout_scale(x.shape, p, x.dtype, x.device)


def dropout_scale(shape: torch.Size | tuple[int, ...], p: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The multiplier inverted dropout applies: 0 with probability p, else 1 / (1 - p) (0 < p < 1).

    The generator's cost is per value drawn, not per bit, so one full-range 64-bit draw is split into four
    16-bit lanes, each uniform over [-2**15, 2**15): a quarter of the draws of one value per element (on
    the AVX2 EPYC, one thread, a [32, 2, 50, 50] mask, median of 9 interleaved timings: 1.00 ms for one
    32-bit draw in [0, 2**24) per element, 0.33 ms for the quarter as many 64-bit words).
    """
    count = math.prod(shape)
    words = torch.empty((count + 3) // 4, dtype=torch.int64, device=device).random_(-(1 << 63), None)
    lanes = words.view(torch.int16)[:count].view(shape)
    threshold = round(p * (1 << MASK_BITS)) - (1 << (MASK_BITS - 1))
    return (lanes >= threshold).to(dtype).mul_(1.0 / (1.0 - p))


class Dropout(nn.Dropout):
    """nn.Dropout that uses `cpu_dropout` for CPU tensors in training; elsewhere (CUDA's fused kernel) unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.device.type == "cpu" and not self.inplace:
            return cpu_dropout(x, self.p)
        return super().forward(x)

    def rows(self, x: torch.Tensor, picked: Picked) -> torch.Tensor:
        """Dropout on `x` [P, d], the rows `picked` takes out of a [B, L, d] tensor, with the mask drawn for
        the whole [B, L, d]: the random stream, and so a seeded run, does not depend on which positions were
        computed."""
        if not self.training or self.p <= 0.0:
            return x
        if self.p >= 1.0:
            return torch.zeros_like(x)
        return x * picked(dropout_scale((*picked.shape, x.shape[-1]), self.p, x.dtype, x.device))


class Picked:
    """The positions a [B, L] bool `select` marks, as flat row indices computed once: `picked(t)` takes
    those rows of a [B, L, ...] tensor (row-major, as `t[select]`), through index_select, whose backward
    is a cheap index_add."""

    def __init__(self, select: torch.Tensor) -> None:
        self.shape = tuple(select.shape)
        self.index = select.reshape(-1).nonzero().squeeze(1)

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(-1, *t.shape[2:]).index_select(0, self.index)


class SelfAttention(nn.Module):
    """Multi-head self-attention (one fused QKV projection) through F.scaled_dot_product_attention.

    With attention dropout in training on CPU, torch's attention falls back to its unfused path anyway, so the
    same arithmetic is written out here with `cpu_dropout` on the weights (the cheaper mask draw).
    """

    def __init__(self, hidden_size: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if hidden_size % n_heads:
            raise ValueError(f"hidden_size={hidden_size} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.dropout = dropout
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)

    def written_out(self, x: torch.Tensor) -> bool:
        """Whether attention on `x` runs the written-out path (CPU training with attention dropout)."""
        return self.training and self.dropout > 0 and x.device.type == "cpu"

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        keys: torch.Tensor | None = None,
        last_only: bool = False,
        picked: Picked | None = None,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Queries from `x`; keys and values from `keys` when given (same shape), else from `x`.

        `last_only` asks only the last column's query: [B, 1, d] comes back (what a user vector needs).
        `picked` keeps only those positions after attention: [P, d] comes back, the output projection
        computed for them alone. `bias` is `attention_bias(mask, n_heads, x.dtype)` when the caller has it
        (shared by the layers of one forward); it is used only on the written-out path (see `written_out`).
        """
        batch, length, hidden = x.shape
        heads, head_size = self.n_heads, hidden // self.n_heads
        if keys is None and not last_only:
            # [B, L, 3, H, Dh] -> three [B, H, L, Dh]
            q, k, v = self.qkv(x).view(batch, length, 3, heads, head_size).permute(2, 0, 3, 1, 4)
        else:
            keys = x if keys is None else keys
            queries = x[:, -1:] if last_only else x
            w_q, w_kv = self.qkv.weight.split([hidden, 2 * hidden])
            b_q, b_kv = self.qkv.bias.split([hidden, 2 * hidden])
            q = F.linear(queries, w_q, b_q).view(batch, queries.shape[1], heads, head_size).transpose(1, 2)
            k, v = F.linear(keys, w_kv, b_kv).view(batch, length, 2, heads, head_size).permute(2, 0, 3, 1, 4)
            if last_only:
                mask = mask[:, :, -1:]
                length = 1
        if self.written_out(x):
            if bias is None or last_only:
                bias = attention_bias(mask, heads, x.dtype)
            flat = batch * heads
            scores = torch.baddbmm(bias, q.reshape(flat, length, head_size),
                                   k.reshape(flat, k.shape[2], head_size).transpose(1, 2), alpha=head_size**-0.5)
            weights = scores.softmax(dim=-1).view(batch, heads, length, -1)
            y = cpu_dropout(weights, self.dropout) @ v
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
            )
        y = y.transpose(1, 2).reshape(batch, length, hidden)
        return self.out(y if picked is None else picked(y))


class TransformerLayer(nn.Module):
    """Attention then feed-forward, each in a residual branch, normalised before (pre-LN) or after (post-LN).

    Pre-LN trains stably without warm-up; post-LN is what BERT4Rec was published with. `reference_block`
    is the pre-LN variant of the SASRec authors' code (and of the implementations that reproduce its
    numbers): only the queries are normalised, keys and values read the raw stream, and each residual is
    added to the normalised input rather than to the stream itself.
    """

    def __init__(
        self,
        hidden_size: int,
        n_heads: int,
        ffn_size: int,
        dropout: float,
        attn_dropout: float,
        pre_norm: bool,
        activation: Activation,
        reference_block: bool = False,
    ) -> None:
        super().__init__()
        if reference_block and not pre_norm:
            raise ValueError("reference_block is a pre-LN layout: it needs pre_norm=True")
        self.pre_norm = pre_norm
        self.reference_block = reference_block
        self.attention = SelfAttention(hidden_size, n_heads, attn_dropout)
        self.attention_norm = nn.LayerNorm(hidden_size)
        self.ffn = nn.Sequential(
            nn.Linear(hidden_size, ffn_size),
            nn.GELU() if activation == "gelu" else nn.ReLU(),
            nn.Linear(ffn_size, hidden_size),
        )
        self.ffn_norm = nn.LayerNorm(hidden_size)
        self.dropout = Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        last_only: bool = False,
        picked: Picked | None = None,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[B, L, d] -> [B, L, d]; [B, 1, d] for the last column alone with `last_only`; [P, d] for the
        positions `picked` takes. Every column still serves as a key; only the kept ones are carried through
        the output projection and the feed-forward."""
        if picked is not None:  # dropout masks are drawn full-size, so a seeded run does not depend on `picked`
            keep, drop = picked, partial(self.dropout.rows, picked=picked)
        else:
            last = slice(-1, None) if last_only else slice(None)
            keep, drop = (lambda t: t[:, last]), self.dropout
        attend = partial(self.attention, mask=mask, last_only=last_only, picked=picked, bias=bias)
        if self.reference_block:
            queries = self.attention_norm(x)
            x = self.ffn_norm(keep(queries) + drop(attend(queries, keys=x)))
            return x + drop(self.ffn(x))
        if self.pre_norm:
            x = keep(x) + drop(attend(self.attention_norm(x)))
            return x + drop(self.ffn(self.ffn_norm(x)))
        x = self.attention_norm(keep(x) + drop(attend(x)))
        return self.ffn_norm(x + drop(self.ffn(x)))


class SequenceEncoder(nn.Module):
    """Item + position embeddings through a transformer stack: item ids [B, L] -> hidden states [B, L, d].

    The item table lives here so that the models can tie their output to it.

    Args:
        n_embeddings: rows in the item table (row 0 is padding and stays zero).
        hidden_size: model width d.
        n_layers: transformer layers.
        n_heads: attention heads; must divide hidden_size.
        max_len: the longest window accepted (rows in the position table).
        dropout: dropout on embeddings and residual branches.
        attn_dropout: dropout on attention weights.
        pre_norm: LayerNorm before each sub-layer (plus one after the stack) instead of after.
        ffn_size: feed-forward inner width.
        activation: feed-forward non-linearity.
        causal: each position sees only itself and earlier items.
        item_scale: factor on the item embeddings before positions are added (the original SASRec uses
            sqrt(hidden_size), so that positions start as a small perturbation of the items); 1 leaves them as is.
        reference_block: the SASRec authors' pre-LN block (see TransformerLayer); needs pre_norm.
        init: "normal" draws every weight from N(0, 0.02) (BERT); "xavier" draws every weight matrix and
            embedding table Xavier-normal, as the SASRec reference code does: its layers start far more active
            (std 0.125 for a 64 x 64 projection) and its item table smaller (std ~0.013 for 12k items).
    """

    def __init__(
        self,
        n_embeddings: int,
        hidden_size: int,
        n_layers: int,
        n_heads: int,
        max_len: int,
        dropout: float,
        attn_dropout: float,
        pre_norm: bool,
        ffn_size: int,
        activation: Activation,
        causal: bool,
        item_scale: float = 1.0,
        init: Init = "normal",
        reference_block: bool = False,
    ) -> None:
        super().__init__()
        if init not in ("normal", "xavier"):
            raise ValueError(f"init={init!r}: expected 'normal' or 'xavier'")
        self.causal = causal
        self.item_scale = item_scale
        self.max_len = max_len
        self.items = nn.Embedding(n_embeddings, hidden_size, padding_idx=0)
        self.positions = RightAlignedPositions(max_len, hidden_size)
        # Post-LN layers expect normalised input; pre-LN layers normalise their own input but leave the
        # residual stream unnormalised, so the stack ends with one LayerNorm.
        self.input_norm = nn.Identity() if pre_norm else nn.LayerNorm(hidden_size)
        self.output_norm = nn.LayerNorm(hidden_size) if pre_norm else nn.Identity()
        self.dropout = Dropout(dropout)
        self.layers = nn.ModuleList(
            TransformerLayer(
                hidden_size, n_heads, ffn_size, dropout, attn_dropout, pre_norm, activation, reference_block
            )
            for _ in range(n_layers)
        )
        self.apply(init_weights)
        if init == "xavier":
            xavier_init(self)

    def forward(
        self,
        item_seq: torch.Tensor,
        segments: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        last_only: bool = False,
        select: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`segments` and `positions` [B, L] come with packed batches: several windows per row, each attending
        within itself and counting positions from its own most recent item.

        `last_only` returns [B, 1, d], the last column alone: the final layer then computes one query per row
        instead of L, which is what scoring a user needs (ML-100K validation, 2 layers: 0.15-0.18 s against
        0.22-0.25 s). `select` [B, L] bool returns [P, d], the positions it picks in row-major order (as
        `hidden[select]` would): the final layer's output projection and feed-forward run only there, which is
        what training with a loss on a few positions needs (BERT4Rec's masked ones, or every real item but not
        the padding).
        """
        if last_only and select is not None:
            raise ValueError("pass last_only or select, not both")
        mask = attention_mask(item_seq, self.causal, segments)
        items = self.items(item_seq)
        if self.item_scale != 1.0:
            items = items * self.item_scale
        if positions is None:
            x = items + self.positions(item_seq.shape[1])
        else:
            x = items + self.positions.embedding(positions)
        x = self.dropout(self.input_norm(x))
        picked = None if select is None else Picked(select)
        first = self.layers[0].attention if self.layers else None
        bias = attention_bias(mask, first.n_heads, x.dtype) if first is not None and first.written_out(x) else None
        if not self.layers and picked is not None:
            x = picked(x)
        for depth, layer in enumerate(self.layers, start=1):
            final = depth == len(self.layers)
            x = layer(x, mask, last_only=last_only and final, picked=picked if final else None, bias=bias)
        return self.output_norm(x)


def init_weights(module: nn.Module) -> None:
    """BERT-style init: small normal weights keep initial dot-product scores near zero; padding row zero."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def xavier_init(module: nn.Module) -> None:
    """Xavier-normal on every parameter with two or more dimensions (projections and embedding tables);
    biases and norms keep `init_weights`' values and padding rows stay zero."""
    for param in module.parameters():
        if param.dim() > 1:
            nn.init.xavier_normal_(param)
    for sub in module.modules():
        if isinstance(sub, nn.Embedding) and sub.padding_idx is not None:
            with torch.no_grad():
                sub.weight[sub.padding_idx].zero_()
