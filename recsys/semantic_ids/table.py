"""The item ↔ semantic-ID table a generative model is trained and decoded with.

It is the only place where an item index becomes codes and codes become an item again, so the two
directions can never drift apart; it is saved inside model checkpoints as plain tensors and lists,
readable with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from recsys.semantic_ids.collisions import add_collision_digit
from recsys.semantic_ids.tokens import TokenLayout


class SemanticIds:
    """`codes` [n_items + 1, D] int64 (row 0, padding, is -1), unique per item; `level_sizes` [D]."""

    def __init__(self, codes: np.ndarray, level_sizes: Sequence[int]) -> None:
        codes = np.asarray(codes, dtype=np.int64)
        self.level_sizes = tuple(int(s) for s in level_sizes)
        if codes.ndim != 2 or codes.shape[1] != len(self.level_sizes):
            raise ValueError(f"SemanticIds: codes must be [n_items + 1, {len(self.level_sizes)}], got {codes.shape}")
        body = codes[1:]
        if body.size and ((body < 0) | (body >= np.asarray(self.level_sizes))).any():
            raise ValueError(f"SemanticIds: codes out of range for level sizes {self.level_sizes}")
        if np.prod(np.asarray(self.level_sizes, dtype=np.float64)) >= 2.0**62:
            raise ValueError(f"SemanticIds: code space {self.level_sizes} too large for int64 keys")
        self.codes = codes.copy()
        self.codes[0] = -1
        self._radix = np.cumprod((1, *self.level_sizes[::-1][:-1]))[::-1].astype(np.int64)  # mixed-radix place values
        keys = body @ self._radix
        self._order = np.argsort(keys, kind="stable")
        self._sorted_keys = keys[self._order]
        if len(keys) and (np.diff(self._sorted_keys) == 0).any():
            raise ValueError("SemanticIds: two items share an ID; add the collision digit (from_codes does)")

    @classmethod
    def from_codes(cls, codes: np.ndarray, n_codes: int | Sequence[int],
                   priority: np.ndarray | None = None) -> SemanticIds:
        """From tokenizer codes [n_items, L] for items 1..n: appends the collision digit.

        `n_codes` is the codebook size (one int, or one per level); `priority` [n_items] orders the digit
        within each collision group, highest first (None: item order).
        """
        codes = np.asarray(codes, dtype=np.int64)
        full, digit_size = add_collision_digit(codes, priority)
        sizes = [int(n_codes)] * codes.shape[1] if isinstance(n_codes, int) else [int(s) for s in n_codes]
        table = np.concatenate([np.full((1, full.shape[1]), -1, np.int64), full])
        return cls(table, [*sizes, digit_size])

    @property
    def n_items(self) -> int:
        return self.codes.shape[0] - 1

    @property
    def n_levels(self) -> int:
        """Levels including the collision digit."""
        return len(self.level_sizes)

    @property
    def collision_size(self) -> int:
        """Size of the last (collision) level: the largest group of items that shared their codes."""
        return self.level_sizes[-1]

    def layout(self, special_tokens: Sequence[str] | None = None) -> TokenLayout:
        return TokenLayout(self.level_sizes) if special_tokens is None else TokenLayout(
            self.level_sizes, tuple(special_tokens))

    def tokens(self, layout: TokenLayout | None = None) -> np.ndarray:
        """Token ids [n_items + 1, D]; row 0 (padding item) is all pad."""
        layout = layout or self.layout()
        if layout.level_sizes != self.level_sizes:
            raise ValueError(f"layout {layout.level_sizes} does not match these IDs {self.level_sizes}")
        out = np.full(self.codes.shape, layout.pad_id, dtype=np.int64)
        out[1:] = layout.encode(self.codes[1:])
        return out

    def item_of(self, code: Sequence[int]) -> int:
        """The item with this code tuple, or 0 when none has it."""
        return int(self.items_of(np.asarray([code]))[0])

    def items_of(self, codes: np.ndarray) -> np.ndarray:
        """Item indices int64 [B] for code tuples [B, D]; 0 where a tuple is no item's ID."""
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, self.n_levels)
        if not len(self._sorted_keys):
            return np.zeros(len(codes), np.int64)
        in_range = ((codes >= 0) & (codes < np.asarray(self.level_sizes))).all(1)
        keys = np.where(in_range[:, None], codes, 0) @ self._radix
        pos = np.searchsorted(self._sorted_keys, keys).clip(max=len(self._sorted_keys) - 1)
        hit = in_range & (self._sorted_keys[pos] == keys)
        return np.where(hit, self._order[pos] + 1, 0)

    def state_dict(self) -> dict[str, torch.Tensor | list[int]]:
        return {"codes": torch.from_numpy(self.codes.copy()), "level_sizes": list(self.level_sizes)}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor | list[int]]) -> SemanticIds:
        codes = state["codes"]
        array = codes.cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
        return cls(array, list(state["level_sizes"]))  # type: ignore[arg-type]

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            np.savez(fh, codes=self.codes, level_sizes=np.asarray(self.level_sizes, np.int64))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SemanticIds:
        with np.load(Path(path)) as data:
            return cls(data["codes"], data["level_sizes"].tolist())
