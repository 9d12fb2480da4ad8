"""Shard files that are either complete or absent, and the checks that let a rerun keep them.

A shard is streamed batch by batch (one parquet row group each) into a hidden temporary file, which is
fsynced and renamed into place only when its last batch is written; a run killed at any moment leaves
complete shards and at most one temporary file, which the next run deletes. The output folder is locked
(flock on the folder itself, released by the kernel when the process dies) so two runs never interleave.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recsys.scoring.plan import ScorePlan, Shard, differences

META_KEY = b"recsys.scoring"
MANIFEST = "manifest.json"
SCHEMA = pa.schema(
    [("user_id", pa.string()), ("rank", pa.int32()), ("item_id", pa.string()), ("score", pa.float32())]
)
_TMP_GLOB = ".part-*.tmp"


class ShardError(RuntimeError):
    """The output folder holds files that do not belong to this scoring plan."""


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise ShardError(f"{out}: another `recsys score` is writing here") from None
            raise
        yield
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_temporaries(out: Path) -> int:
    """Delete what killed runs left half-written (only ever our own hidden names)."""
    stale = list(out.glob(_TMP_GLOB)) + list(out.glob(f".{MANIFEST}.*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def remove_outputs(out: Path) -> None:
    """--overwrite: delete earlier shards and manifest (nothing else in the folder is touched)."""
    (out / MANIFEST).unlink(missing_ok=True)
    for path in out.glob("part-*.parquet"):
        path.unlink()


@dataclass(frozen=True)
class DoneShard:
    index: int
    rows: int


def _footer(path: Path) -> dict[str, Any]:
    try:
        meta = pq.read_metadata(path).metadata or {}
        return json.loads(meta[META_KEY])
    except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
        raise ShardError(f"{path}: not a shard written by `recsys score` ({exc}); remove it or pass --overwrite") from exc


def completed(out: Path, plan: ScorePlan) -> dict[int, DoneShard]:
    """Shards already in `out` that this plan can keep; anything written under another plan is an error."""
    expected = {shard.name: shard for shard in plan.shards}
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            old = json.loads(manifest.read_text(encoding="utf-8")).get("plan", {})
        except (json.JSONDecodeError, AttributeError) as exc:
            raise ShardError(f"{manifest}: unreadable ({exc}); pass --overwrite to start again") from exc
        _check_plan(manifest, old, plan.identity)
    done: dict[int, DoneShard] = {}
    for path in sorted(out.glob("part-*.parquet")):
        footer = _footer(path)
        _check_plan(path, footer.get("plan", {}), plan.identity)
        shard = expected.get(path.name)
        if shard is None or footer.get("shard") != plan.shard_info(shard):
            raise ShardError(f"{path}: its users do not match shard {path.name} of this plan; pass --overwrite")
        done[shard.index] = DoneShard(shard.index, pq.read_metadata(path).num_rows)
    return done


def _check_plan(path: Path, found: dict[str, Any], wanted: dict[str, Any]) -> None:
    changed = differences(found, wanted)
    if changed:
        raise ShardError(
            f"{path} was written for another scoring run (differs in: {', '.join(changed)}); "
            "use a new --out folder or pass --overwrite"
        )


class ShardWriter:
    """Streams one shard's batches into a temporary file; `commit()` makes it appear whole."""

    def __init__(self, out: Path, plan: ScorePlan, shard: Shard, user_ids: pa.Array, item_ids: pa.Array) -> None:
        self.final = out / shard.name
        self.tmp = out / f".{shard.name}.{os.getpid()}.tmp"
        self.user_ids = user_ids
        self.item_ids = item_ids
        self.rows = 0
        footer = {"plan": plan.identity, "shard": plan.shard_info(shard)}
        schema = SCHEMA.with_metadata({META_KEY: json.dumps(footer, sort_keys=True).encode()})
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self.tmp, schema)
        self._schema = schema

    def write(self, user_idx: np.ndarray, ids: np.ndarray, scores: np.ndarray | None) -> None:
        """One batch: `ids` [B, k] item indices best first (<= 0 = empty slot, left out; a later item keeps
        its position as rank), `scores` [B, k] or None (written as nulls)."""
        assert self._writer is not None, "shard already committed"
        valid = ids > 0
        per_user = valid.sum(axis=1)
        ranks = np.broadcast_to(np.arange(1, ids.shape[1] + 1, dtype=np.int32), ids.shape)[valid]
        n = int(ranks.shape[0])
        score_col = pa.nulls(n, pa.float32()) if scores is None else pa.array(scores[valid], pa.float32())
        table = pa.Table.from_arrays(
            [
                self.user_ids.take(pa.array(np.repeat(user_idx, per_user))),
                pa.array(ranks, pa.int32()),
                self.item_ids.take(pa.array(ids[valid] - 1)),
                score_col,
            ],
            schema=self._schema,
        )
        self._writer.write_table(table)
        self.rows += n

    def commit(self) -> None:
        assert self._writer is not None, "shard already committed"
        self._writer.close()
        self._writer = None
        with self.tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(self.tmp, self.final)
        _fsync_dir(self.final.parent)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.tmp.unlink(missing_ok=True)


def write_manifest(out: Path, manifest: dict[str, Any]) -> Path:
    """Written last and renamed into place: a manifest present means every shard it lists is complete."""
    final = out / MANIFEST
    tmp = out / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    _fsync_dir(out)
    return final
