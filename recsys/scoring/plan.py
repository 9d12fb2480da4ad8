"""What a scoring run will write, fixed before the first batch: which users, in which shard, under which
settings. The plan's `identity` is stored in every shard and in the manifest, so a rerun can tell a shard it
may keep (same checkpoint bytes, data bytes, k, split, users, ...) from one it must not mix in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsys.data.contract import INTERACTIONS_FILE, ITEMS_FILE, META_FILE, USERS_FILE
from recsys.scoring.checkpoint import file_sha256

FORMAT = "recsys.scoring/1"


@dataclass(frozen=True)
class Shard:
    """Users `plan.rows[start:stop]` go to `name`, in that order."""

    index: int
    start: int
    stop: int

    @property
    def name(self) -> str:
        return f"part-{self.index:05d}.parquet"

    @property
    def n_users(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class ScorePlan:
    """`rows`: ascending rows of the split to score; `user_idx`: their user indices; `identity`: every
    setting the output depends on (batch size and threads are not among them)."""

    rows: np.ndarray
    user_idx: np.ndarray
    shard_size: int
    identity: dict[str, Any]

    @property
    def shards(self) -> list[Shard]:
        n = int(self.rows.shape[0])
        return [Shard(i, start, min(start + self.shard_size, n)) for i, start in enumerate(range(0, n, self.shard_size))]

    def shard_info(self, shard: Shard) -> dict[str, int]:
        """The shard's place in the plan, stored in its footer and checked on resume."""
        users = self.user_idx[shard.start : shard.stop]
        return {
            "index": shard.index, "start": shard.start, "stop": shard.stop,
            "first_user_idx": int(users[0]), "last_user_idx": int(users[-1]),
        }  # fmt: skip


def dataset_digest(root: Path) -> dict[str, str]:
    """sha256 of each contract file: the same folder name may hold other data after a re-prep."""
    return {name: file_sha256(root / name) for name in (INTERACTIONS_FILE, ITEMS_FILE, USERS_FILE, META_FILE)}


def users_digest(user_idx: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(user_idx, dtype="<i8").tobytes()).hexdigest()


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The keys on which two plan identities disagree, for an error message."""
    return sorted(key for key in set(a) | set(b) if a.get(key) != b.get(key))
