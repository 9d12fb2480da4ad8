"""How good a set of semantic IDs is, in the figures that predict trouble later.

Low codebook usage or perplexity wastes vocabulary; a high collision rate means the extra digit,
not the content, tells items apart (the model then has to memorise it); reconstruction error says
how much of the embedding the codes keep.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from recsys.semantic_ids.collisions import collision_groups


@dataclass(frozen=True)
class LevelStats:
    level: int
    n_codes: int
    used: int
    usage: float  # used / n_codes
    perplexity: float  # exp(entropy) of the code distribution; n_codes when perfectly balanced


@dataclass(frozen=True)
class SemanticIdReport:
    tokenizer: str
    n_items: int
    n_levels: int
    n_codes: int
    levels: list[LevelStats]
    unique_tuples: int  # distinct L-level code tuples before the extra digit
    collision_rate: float  # share of items whose L-level tuple is shared with another item
    max_collision: int  # largest group sharing one tuple = size of the extra digit's level
    mse: float  # mean over items of ||x - x̂||²
    relative_error: float  # mean ||x - x̂||² / mean ||x||²
    seconds: float
    extra: dict[str, float | int | str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def to_markdown(self) -> str:
        lines = [
            f"### {self.tokenizer}",
            "",
            f"{self.n_items} items, {self.n_levels} levels x {self.n_codes} codes + collision digit; "
            f"fit + encode {self.seconds:.1f} s",
            "",
            "| level | codes used | usage | perplexity |",
            "|---|---|---|---|",
            *(f"| {s.level} | {s.used} / {s.n_codes} | {s.usage:.3f} | {s.perplexity:.1f} |" for s in self.levels),
            "",
            "| distinct tuples | collision rate (before digit) | max collision group | MSE | relative error |",
            "|---|---|---|---|---|",
            f"| {self.unique_tuples} | {self.collision_rate:.4f} | {self.max_collision} | "
            f"{self.mse:.5f} | {self.relative_error:.4f} |",
        ]
        if self.extra:
            lines += ["", *(f"- {k}: {v}" for k, v in self.extra.items())]
        return "\n".join(lines) + "\n"


def level_stats(codes: np.ndarray, n_codes: int) -> list[LevelStats]:
    stats = []
    for level in range(codes.shape[1]):
        counts = np.bincount(codes[:, level], minlength=n_codes).astype(np.float64)
        p = counts[counts > 0] / counts.sum()
        stats.append(LevelStats(level, n_codes, int((counts > 0).sum()), float((counts > 0).mean()),
                                float(np.exp(-(p * np.log(p)).sum()))))
    return stats


def semantic_id_report(
    tokenizer: str,
    codes: np.ndarray,
    n_codes: int,
    embeddings: np.ndarray,
    reconstruction: np.ndarray,
    seconds: float = 0.0,
    extra: dict[str, float | int | str] | None = None,
) -> SemanticIdReport:
    """Report on L-level `codes` [n, L] (before the collision digit) of `embeddings` [n, d]."""
    codes = np.asarray(codes, dtype=np.int64)
    _, sizes = collision_groups(codes)
    err = ((np.asarray(embeddings, np.float64) - np.asarray(reconstruction, np.float64)) ** 2).sum(1)
    norm = (np.asarray(embeddings, np.float64) ** 2).sum(1)
    return SemanticIdReport(
        tokenizer=tokenizer,
        n_items=codes.shape[0],
        n_levels=codes.shape[1],
        n_codes=n_codes,
        levels=level_stats(codes, n_codes),
        unique_tuples=int(len(np.unique(codes, axis=0))),
        collision_rate=float((sizes > 1).mean()) if len(sizes) else 0.0,
        max_collision=int(sizes.max()) if len(sizes) else 0,
        mse=float(err.mean()),
        relative_error=float(err.mean() / max(norm.mean(), 1e-12)),
        seconds=seconds,
        extra=dict(extra or {}),
    )
