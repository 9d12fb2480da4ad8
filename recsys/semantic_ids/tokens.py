"""Where semantic-ID codes sit in a seq2seq model's vocabulary.

Code 5 at level 0 and code 5 at level 1 mean different things, so each level gets its own block of
token ids; special tokens come first so that pad is 0 everywhere. The layout is a tiny value object
that a model checkpoint stores beside its weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch

DEFAULT_SPECIALS = ("<pad>", "<eos>", "<bos>")
ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class TokenLayout:
    """Vocabulary = special tokens, then level 0's codes, then level 1's, and so on."""

    level_sizes: tuple[int, ...]
    special_tokens: tuple[str, ...] = DEFAULT_SPECIALS
    offsets: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "level_sizes", tuple(int(s) for s in self.level_sizes))
        object.__setattr__(self, "special_tokens", tuple(self.special_tokens))
        if not self.level_sizes or min(self.level_sizes) < 1:
            raise ValueError(f"TokenLayout: level_sizes must be positive, got {self.level_sizes}")
        if self.special_tokens[:1] != ("<pad>",):
            raise ValueError("TokenLayout: the first special token must be '<pad>' (id 0)")
        starts = np.cumsum((len(self.special_tokens), *self.level_sizes[:-1]))
        object.__setattr__(self, "offsets", tuple(int(s) for s in starts))

    @property
    def n_levels(self) -> int:
        return len(self.level_sizes)

    @property
    def vocab_size(self) -> int:
        return self.offsets[-1] + self.level_sizes[-1]

    def special_id(self, name: str) -> int:
        return self.special_tokens.index(name)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def eos_id(self) -> int:
        return self.special_id("<eos>")

    @property
    def bos_id(self) -> int:
        return self.special_id("<bos>")

    def token(self, level: int, code: int) -> int:
        if not 0 <= code < self.level_sizes[level]:
            raise ValueError(f"code {code} out of range for level {level} (size {self.level_sizes[level]})")
        return self.offsets[level] + code

    def level_code(self, token: int) -> tuple[int, int]:
        """(level, code) of one token; special tokens raise."""
        for level in range(self.n_levels - 1, -1, -1):
            if token >= self.offsets[level]:
                if token >= self.vocab_size:
                    break
                return level, token - self.offsets[level]
        raise ValueError(f"token {token} is not a semantic-ID token (specials are 0..{len(self.special_tokens) - 1}, "
                         f"vocabulary size {self.vocab_size})")

    def _offsets_like(self, x: ArrayT) -> ArrayT:
        if isinstance(x, torch.Tensor):
            return torch.tensor(self.offsets[: x.shape[-1]], dtype=x.dtype, device=x.device)
        return np.asarray(self.offsets[: x.shape[-1]], dtype=x.dtype)

    def encode(self, codes: ArrayT) -> ArrayT:
        """Codes [..., t] for levels 0..t-1 → token ids, same type (numpy or torch)."""
        sizes = np.asarray(self.level_sizes[: codes.shape[-1]])
        arr = codes.cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
        if arr.size and ((arr < 0) | (arr >= sizes)).any():
            raise ValueError(f"codes out of range for level sizes {self.level_sizes}")
        return codes + self._offsets_like(codes)

    def decode(self, tokens: ArrayT) -> ArrayT:
        """Token ids [..., t] (levels 0..t-1 in order) → codes; a token of the wrong level raises."""
        codes = tokens - self._offsets_like(tokens)
        sizes = np.asarray(self.level_sizes[: tokens.shape[-1]])
        arr = codes.cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
        if arr.size and ((arr < 0) | (arr >= sizes)).any():
            raise ValueError(f"tokens do not follow the level layout {self.level_sizes} (offsets {self.offsets})")
        return codes

    def state_dict(self) -> dict[str, list[int] | list[str]]:
        return {"level_sizes": list(self.level_sizes), "special_tokens": list(self.special_tokens)}

    @classmethod
    def from_state_dict(cls, state: dict[str, list[int] | list[str]]) -> TokenLayout:
        return cls(tuple(int(s) for s in state["level_sizes"]), tuple(str(s) for s in state["special_tokens"]))
