"""Offline batch scoring (`recsys score`): every user's top-K as resumable parquet shards.

    from recsys.scoring import ScoreOptions, score
    manifest = score(ScoreOptions(ckpt=Path("last.ckpt"), data=Path("prepared/amazon-beauty"), out=Path("scores")))

The heavy modules (torch, faiss, polars) load only when scoring starts, so `recsys score --help` is instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recsys.scoring.cli import main

if TYPE_CHECKING:
    from recsys.scoring.runner import ScoreOptions, score

__all__ = ["ScoreOptions", "main", "score"]


def __getattr__(name: str) -> Any:
    if name in ("ScoreOptions", "score"):
        from recsys.scoring import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'recsys.scoring' has no attribute '{name}'")
