"""Offline batch scoring: every selected user's top-K as parquet shards plus a manifest.

Memory is bounded by the batch, not the number of users: a batch of users is windowed, encoded, searched
and appended to the open shard before the next one is built. What stays for the whole run is the data the
split needs (the interactions), the id columns, the model and its index.

Shards split the selected users into contiguous ranges of user index; inside a shard users are batched
shortest history first (see windows.py), so a shard's rows are grouped by user but not sorted by user.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import torch
from tqdm import tqdm

from recsys.data.collate import EvalCollator
from recsys.data.contract import PreparedDataset, read_prepared
from recsys.data.sequences import Sequences
from recsys.data.split import EvalSplit, full_history, leave_one_out
from recsys.eval.ranker import IndexSpec
from recsys.scoring.checkpoint import LoadedModel, load_model
from recsys.scoring.plan import FORMAT, ScorePlan, Shard, dataset_digest, users_digest
from recsys.scoring.shards import (
    SCHEMA,
    DoneShard,
    ShardWriter,
    completed,
    locked,
    remove_outputs,
    remove_temporaries,
    write_manifest,
)
from recsys.scoring.topk import GenerativeTopK, RetrievalTopK, make_topk
from recsys.scoring.users import read_user_list
from recsys.scoring.windows import length_order

Split = Literal["next", "test"]
# Called after each batch is appended to its shard (shard, batch number within it); tests use it to die
# mid-run exactly where they mean to.
BatchHook = Callable[[Shard, int], None]

SCORE_NOTE = {
    "retrieval": "inner product of the user vector and the item vector (higher is better)",
    "generative": "null: generate(batch, k) returns ranked item ids only, no beam scores",
}


@dataclass(frozen=True)
class ScoreOptions:
    """Everything `recsys score` takes; see `recsys score --help` for each option."""

    ckpt: Path
    data: Path
    out: Path
    k: int = 100
    split: Split = "next"
    users: Path | None = None
    exclude_seen: bool = False
    index: IndexSpec = field(default_factory=IndexSpec)
    batch_size: int = 1024
    shard_size: int = 100_000
    min_length: int = 3
    max_len: int | None = None
    device: str = "auto"
    threads: int | None = None
    overwrite: bool = False
    progress: bool = True

    def check(self) -> None:
        for name in ("k", "batch_size", "shard_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} is {getattr(self, name)}; expected a positive integer")
        if self.split not in ("next", "test"):
            raise ValueError(f"--split '{self.split}': expected 'next' or 'test'")


def make_split(ds: PreparedDataset, split: Split, min_length: int) -> tuple[EvalSplit, str]:
    """The rows to rank and, in words, who is left out and why."""
    sequences = Sequences.from_interactions(ds.interactions)
    if split == "next":
        return full_history(sequences), "users without interactions have no history to score"
    return (
        leave_one_out(sequences, min_length).test,
        f"users with fewer than {min_length} interactions are not in the leave-one-out test split",
    )


def _index_identity(spec: IndexSpec) -> dict[str, Any]:
    fields = {"exact": (), "ivf": ("nlist", "nprobe"), "hnsw": ("hnsw_m", "ef_construction", "ef_search")}
    return {"kind": spec.kind, **{name: getattr(spec, name) for name in fields[spec.kind]}}


def protocol(options: ScoreOptions, n_items: int, max_len: int, kind: str, own_window: bool = False) -> str:
    """The run in one line, as every results table must carry it."""
    if options.split == "next":
        who = "each user's whole history (split next)"
    else:
        who = (f"leave-one-out test: each history without its last item, users with >= {options.min_length} "
               "interactions (split test, as `recsys test` ranks it)")  # fmt: skip
    how = (
        f"full ranking over {n_items:,} items by {options.index.describe()}"
        if kind == "retrieval"
        else f"generate(batch, k) over {n_items:,} items"
    )
    seen = "seen items excluded" if options.exclude_seen else "seen items kept"
    window = "whole histories as model input (the model cuts its own window)" if own_window else (
        f"last {max_len} items as model input")
    return f"top-{options.k} after {who}, {window}, {how}, {seen}"


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _max_len(options: ScoreOptions, loaded: LoadedModel, split: EvalSplit) -> int:
    """--max-len, else the model's `max_len`, else the longest history: a model without a window attribute
    (TIGER counts tokens) is handed whole histories and cuts them itself."""
    max_len = options.max_len or getattr(loaded.model, "max_len", None)
    if max_len:
        return int(max_len)
    return max(1, int(split.history.lengths.max(initial=1)))


def plan_run(options: ScoreOptions, ds: PreparedDataset, split: EvalSplit, why: str, loaded: LoadedModel,
             max_len: int) -> ScorePlan:  # fmt: skip
    users = split.users
    if options.users is None:
        rows = np.arange(len(split), dtype=np.int64)
    else:
        chosen = read_user_list(options.users, ds.users, str(options.data), eligible=users, why=why)
        rows = np.searchsorted(users, chosen).astype(np.int64)
    user_idx = users[rows]
    identity = {
        "format": FORMAT,
        "checkpoint_sha256": loaded.sha256,
        "dataset_sha256": dataset_digest(options.data),
        "k": options.k,
        "split": options.split,
        "min_length": options.min_length if options.split == "test" else None,
        "max_len": max_len,
        "exclude_seen": options.exclude_seen,
        "index": _index_identity(options.index),
        "n_users": int(rows.shape[0]),
        "users_sha256": users_digest(user_idx),
        "shard_size": options.shard_size,
    }
    return ScorePlan(rows, user_idx, options.shard_size, identity)


def _versions() -> dict[str, str]:
    import faiss  # already loaded by the ranker, which sets faiss's OpenMP wait policy at first import

    return {
        "python": platform.python_version(), "torch": torch.__version__, "faiss": faiss.__version__,
        "pyarrow": pa.__version__, "polars": pl.__version__, "numpy": np.__version__,
    }  # fmt: skip


def score(options: ScoreOptions, on_batch: BatchHook | None = None) -> dict[str, Any]:
    """Write (or finish writing) every planned user's top-K under `options.out`; returns the manifest."""
    options.check()
    threads = torch.get_num_threads()
    if options.threads:
        torch.set_num_threads(options.threads)
    try:
        return _score(options, on_batch)
    finally:
        torch.set_num_threads(threads)  # a caller's process keeps its own setting


def _score(options: ScoreOptions, on_batch: BatchHook | None) -> dict[str, Any]:
    started = time.perf_counter()
    ds = read_prepared(options.data)
    device = _device(options.device)
    loaded = load_model(options.ckpt, device, n_items=ds.n_items, data=str(options.data))
    split, why = make_split(ds, options.split, options.min_length)
    max_len = _max_len(options, loaded, split)
    plan = plan_run(options, ds, split, why, loaded, max_len)
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    with locked(out):
        if options.overwrite:
            remove_outputs(out)
        remove_temporaries(out)
        done = completed(out, plan)
        resumed = len(done)
        topk = make_topk(loaded.model, split, ds.n_items, options.k, options.exclude_seen, options.index, options.threads)
        user_ids = ds.users["user_id"].to_arrow().cast(pa.string())  # position = user_idx (contract)
        item_ids = ds.items["item_id"].to_arrow().cast(pa.string())  # position = item_idx - 1
        collate = EvalCollator(split, max_len)
        todo = [shard for shard in plan.shards if shard.index not in done]
        bar = tqdm(
            total=len(plan.rows), initial=len(plan.rows) - sum(s.n_users for s in todo), unit="user",
            unit_scale=True, desc="scoring", disable=not options.progress, file=sys.stderr,
        )  # fmt: skip
        try:
            for shard in todo:
                done[shard.index] = _write_shard(out, plan, shard, topk, collate, split, user_ids, item_ids,
                                                 options.batch_size, device, bar, on_batch)  # fmt: skip
        finally:
            bar.close()
        manifest = _manifest(options, ds, loaded, plan, done, max_len, topk.kind, resumed,
                             time.perf_counter() - started, why, str(device))  # fmt: skip
        write_manifest(out, manifest)
    return manifest


def _write_shard(out: Path, plan: ScorePlan, shard: Shard, topk: RetrievalTopK | GenerativeTopK,
                 collate: EvalCollator, split: EvalSplit,
                 user_ids: pa.Array, item_ids: pa.Array, batch_size: int, device: torch.device, bar: tqdm,
                 on_batch: BatchHook | None) -> DoneShard:  # fmt: skip
    writer = ShardWriter(out, plan, shard, user_ids, item_ids)
    ordered = length_order(split, plan.rows[shard.start : shard.stop])
    try:
        for number, start in enumerate(range(0, ordered.shape[0], batch_size)):
            rows = ordered[start : start + batch_size]
            batch = {key: value.to(device) for key, value in collate(rows).items()}
            ids, scores = topk(batch)
            writer.write(split.users[rows], ids, scores)
            bar.update(len(rows))
            if on_batch is not None:
                on_batch(shard, number)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return DoneShard(shard.index, writer.rows)


def _manifest(options: ScoreOptions, ds: PreparedDataset, loaded: LoadedModel, plan: ScorePlan,
              done: dict[int, DoneShard], max_len: int, kind: str, resumed: int, seconds: float,
              why: str, device: str) -> dict[str, Any]:  # fmt: skip
    user_ids = ds.users["user_id"]
    shards = []
    for shard in plan.shards:
        info = plan.shard_info(shard)
        shards.append({
            "file": shard.name, "users": shard.n_users, "rows": done[shard.index].rows,
            "first_user_idx": info["first_user_idx"], "last_user_idx": info["last_user_idx"],
            "first_user_id": user_ids[info["first_user_idx"]], "last_user_id": user_ids[info["last_user_idx"]],
        })  # fmt: skip
    return {
        "format": FORMAT,
        "protocol": protocol(options, ds.n_items, max_len, kind,
                             own_window=not (options.max_len or getattr(loaded.model, "max_len", None))),
        "checkpoint": {"path": str(loaded.path.resolve()), "sha256": loaded.sha256},
        "model": {"class_path": loaded.class_path, "kind": kind, "init_args": _jsonable(loaded.init_args)},
        "dataset": {"path": str(options.data.resolve()), "meta": ds.meta},
        "k": options.k,
        "split": options.split,
        "min_length": plan.identity["min_length"],
        "max_len": max_len,
        "batches": "users of a shard shortest history first; the shared EvalCollator drops columns that are "
                   "padding in every row of a batch, as in `recsys test`",
        "exclude_seen": options.exclude_seen,
        "index": options.index.describe() if kind == "retrieval" else "none (generative)",
        "columns": {
            "user_id": "original user id (users.parquet)",
            "rank": "1..k, position in the ranked list; ties in score are listed in index order",
            "item_id": "original item id (items.parquet)",
            "score": SCORE_NOTE[kind],
        },
        "row_order": "shards hold contiguous ranges of users (by user index); within a shard users come by "
                     "history length, then user index; each user's k rows are contiguous, by rank",
        "n_users": int(plan.rows.shape[0]),
        "n_rows": sum(entry["rows"] for entry in shards),
        "users_not_scored": {"count": ds.n_users - int(plan.rows.shape[0]),
                             "reason": why if options.users is None else f"not listed in {options.users}; {why}"},
        "seconds_this_run": round(seconds, 3),  # a resumed run counts only its own time
        "shards_resumed": resumed,
        "batch_size": options.batch_size,
        "device": device,
        "versions": _versions(),
        "schema": SCHEMA.to_string(show_schema_metadata=False),
        "plan": plan.identity,
        "shards": shards,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)
