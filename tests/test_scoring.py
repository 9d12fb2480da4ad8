"""`recsys score` on a SASRec trained once (2 epochs, tiny synthetic data, in-process Lightning CLI).

The central check: ranks of the held-out items read back from `--split test` files give exactly the
Recall@10 / NDCG@10 that `recsys test` wrote to test_metrics.json for the same checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np
import polars as pl
import pytest
import torch

from recsys.scoring import ScoreOptions, score
from recsys.scoring.checkpoint import CheckpointError
from recsys.scoring.shards import ShardError
from recsys.scoring.users import UserListError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A prepared synthetic dataset, a 2-epoch SASRec checkpoint and the test_metrics.json `fit` wrote."""
    from data_prep import prepare
    from recsys.tasks.cli import run_lightning_cli

    root = tmp_path_factory.mktemp("scoring")
    data = prepare("synthetic", out=root / "data", users=400, items=120, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    # LightningCLI warns when it also sees pytest's own argv.
    with mock.patch.object(sys, "argv", ["recsys"]):
        try:
            run_lightning_cli([
                "fit", "--config", str(REPO / "configs/sasrec/synthetic.yaml"), "--data.path", str(data),
                "--trainer.default_root_dir", str(root / "run"), "--trainer.max_epochs", "2",
                "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                "--trainer.logger", "false", "--trainer.accelerator", "cpu",
            ])  # fmt: skip
        finally:
            torch.set_num_threads(threads)
    (metrics,) = list((root / "run").rglob("test_metrics.json"))
    record = json.loads(metrics.read_text())
    return {"root": root, "data": data, "ckpt": Path(record["checkpoint"]), "metrics": metrics}


def _options(trained: dict[str, Path], out: Path, **overrides: object) -> ScoreOptions:
    base = ScoreOptions(
        ckpt=trained["ckpt"], data=trained["data"], out=out, k=20, threads=1, progress=False, batch_size=64,
        shard_size=100, device="cpu",
    )  # fmt: skip
    return replace(base, **overrides)


def _read(out: Path) -> pl.DataFrame:
    return pl.read_parquet(sorted(out.glob("part-*.parquet")))


def test_split_test_files_reproduce_recsys_test_metrics(trained: dict[str, Path], tmp_path: Path) -> None:
    manifest = score(_options(trained, tmp_path / "out", split="test"))
    lists = _read(tmp_path / "out")
    data = trained["data"]
    interactions = pl.read_parquet(data / "interactions.parquet")
    names = pl.read_parquet(data / "users.parquet")
    items = pl.read_parquet(data / "items.parquet").select("item_idx", "item_id")
    held_out = (
        interactions.group_by("user_idx", maintain_order=True).last()
        .join(names, on="user_idx").join(items, on="item_idx")
        .select("user_id", pl.col("item_id").alias("target"))
    )  # fmt: skip
    # `recsys test` counts every item scoring at least the target's score as ranked above it.
    target_score = lists.join(held_out, on="user_id").filter(pl.col("item_id") == pl.col("target"))
    ranked = (
        lists.join(target_score.select("user_id", pl.col("score").alias("target_score")), on="user_id")
        .group_by("user_id").agg((pl.col("score") >= pl.col("target_score")).sum().alias("rank"))
    )  # fmt: skip
    ranks = held_out.join(ranked, on="user_id", how="left")["rank"].fill_null(0).to_numpy()
    reported = json.loads(trained["metrics"].read_text())
    assert manifest["n_users"] == reported["n_users"] == len(ranks) == 400
    for k in (5, 10, 20):
        hit = (ranks >= 1) & (ranks <= k)
        recall = hit.mean()
        ndcg = np.where(hit, 1.0 / np.log2(np.maximum(ranks, 1) + 1.0), 0.0).mean()
        assert recall == pytest.approx(reported["metrics"][f"recall@{k}"], abs=1e-9), k
        assert ndcg == pytest.approx(reported["metrics"][f"ndcg@{k}"], abs=1e-9), k
    assert math.isfinite(reported["metrics"]["ndcg@10"]) and reported["metrics"]["recall@10"] > 0.1


def test_output_layout_manifest_and_no_temporaries(trained: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = score(_options(trained, out))
    names = sorted(p.name for p in out.iterdir())
    assert names == ["manifest.json", "part-00000.parquet", "part-00001.parquet", "part-00002.parquet",
                     "part-00003.parquet"]  # fmt: skip
    lists = _read(out)
    assert lists.columns == ["user_id", "rank", "item_id", "score"]
    assert lists.height == manifest["n_rows"] == 400 * 20
    per_user = lists.group_by("user_id").agg(pl.col("rank").sort())
    assert per_user.height == 400
    assert all(r == list(range(1, 21)) for r in per_user["rank"].to_list())
    assert (lists.group_by("user_id").agg(pl.col("score").diff().max())["score"].drop_nulls() <= 0).all()
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["checkpoint"]["sha256"] == manifest["checkpoint"]["sha256"]
    assert on_disk["dataset"]["meta"]["n_items"] == 120 and on_disk["k"] == 20 and on_disk["split"] == "next"
    assert "seen items kept" in on_disk["protocol"] and "exact inner product" in on_disk["protocol"]
    assert [s["rows"] for s in on_disk["shards"]] == [2000, 2000, 2000, 2000]
    first = on_disk["shards"][0]
    names = pl.read_parquet(trained["data"] / "users.parquet")
    in_range = names.filter(pl.col("user_idx").is_between(first["first_user_idx"], first["last_user_idx"]))
    assert sorted(pl.read_parquet(out / "part-00000.parquet")["user_id"].unique()) == sorted(in_range["user_id"])
    assert first["first_user_id"] == in_range["user_id"][0] and first["users"] == in_range.height == 100
    lengths = pl.read_parquet(trained["data"] / "interactions.parquet").group_by("user_idx").len().join(names, on="user_idx")
    order = pl.read_parquet(out / "part-00000.parquet").select("user_id").unique(maintain_order=True)
    assert order.join(lengths, on="user_id", maintain_order="left")["len"].is_sorted(), "shortest histories first"
    assert on_disk["model"]["class_path"] == "recsys.models.SASRec"


def test_next_split_ranks_after_the_whole_history(trained: dict[str, Path], tmp_path: Path) -> None:
    score(_options(trained, tmp_path / "next"))
    score(_options(trained, tmp_path / "test", split="test"))
    nxt, test = _read(tmp_path / "next"), _read(tmp_path / "test")
    assert nxt.height == test.height
    assert not nxt.equals(test), "the next split must see each user's last item"


def test_exclude_seen_drops_history_items(trained: dict[str, Path], tmp_path: Path) -> None:
    score(_options(trained, tmp_path / "out", exclude_seen=True))
    lists = _read(tmp_path / "out")
    data = trained["data"]
    seen = (
        pl.read_parquet(data / "interactions.parquet")
        .join(pl.read_parquet(data / "users.parquet"), on="user_idx")
        .join(pl.read_parquet(data / "items.parquet").select("item_idx", "item_id"), on="item_idx")
        .select("user_id", "item_id").unique()
    )  # fmt: skip
    assert lists.join(seen, on=["user_id", "item_id"]).height == 0
    assert lists.group_by("user_id").len()["len"].min() == 20


def test_users_subset_text_and_parquet(trained: dict[str, Path], tmp_path: Path) -> None:
    score(_options(trained, tmp_path / "all"))
    everyone = _read(tmp_path / "all")
    wanted = ["user-7", "user-3", "user-250"]
    listing = tmp_path / "users.txt"
    listing.write_text("user_id\n# picked by hand\nuser-7\n\nuser-3\nuser-250\nuser-3\n")
    manifest = score(_options(trained, tmp_path / "txt", users=listing))
    subset = _read(tmp_path / "txt")
    assert manifest["n_users"] == 3 and sorted(subset["user_id"].unique().to_list()) == sorted(wanted)
    _assert_same_lists(subset, everyone.filter(pl.col("user_id").is_in(wanted)))
    table = tmp_path / "users.parquet"
    pl.DataFrame({"user_id": wanted}).write_parquet(table)
    score(_options(trained, tmp_path / "pq", users=table))
    assert _read(tmp_path / "pq").equals(subset)


def _assert_same_lists(a: pl.DataFrame, b: pl.DataFrame) -> None:
    """Same users, items and ranks; scores equal up to float rounding (batches of other widths)."""
    a, b = a.sort("user_id", "rank"), b.sort("user_id", "rank")
    assert a.select("user_id", "rank", "item_id").equals(b.select("user_id", "rank", "item_id"))
    assert np.allclose(a["score"].to_numpy(), b["score"].to_numpy(), rtol=0, atol=1e-5)


def test_unknown_user_is_named_with_file_and_line(trained: dict[str, Path], tmp_path: Path) -> None:
    listing = tmp_path / "users.txt"
    listing.write_text("user-1\nuser-2\nnobody\n")
    with pytest.raises(UserListError, match=r"users\.txt: 1 user id\(s\) not in .*line 3: 'nobody'"):
        score(_options(trained, tmp_path / "out", users=listing))


def test_checkpoint_for_another_catalogue_is_refused(trained: dict[str, Path], tmp_path: Path) -> None:
    from data_prep import prepare

    other = prepare("synthetic", out=tmp_path / "other", users=50, items=90, seed=1)
    with pytest.raises(CheckpointError, match=r"trained on 120 items but the prepared dataset .*other has 90"):
        score(_options(trained, tmp_path / "out", data=other))
    assert not (tmp_path / "out").exists()


def test_rerun_with_other_settings_is_refused_unless_overwrite(trained: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    score(_options(trained, out))
    again = score(_options(trained, out))
    assert again["shards_resumed"] == 4
    with pytest.raises(ShardError, match=r"differs in: k"):
        score(_options(trained, out, k=10))
    manifest = score(_options(trained, out, k=10, overwrite=True))
    assert manifest["shards_resumed"] == 0 and _read(out).height == 400 * 10


CHILD = """
import os, sys, time
from pathlib import Path
from recsys.scoring import ScoreOptions, score

def hook(shard, batch):
    if shard.index == 1 and batch == 0:  # shard 0 is complete, shard 1 is half-written
        print("ready", flush=True)
        time.sleep(120)  # the parent kill -9s us here

ckpt, data, out = sys.argv[1:4]
score(ScoreOptions(ckpt=Path(ckpt), data=Path(data), out=Path(out), k=20, threads=1, progress=False,
                   batch_size=64, shard_size=100, device="cpu"), on_batch=hook)
"""


def test_kill_9_mid_run_then_resume_equals_uninterrupted(trained: dict[str, Path], tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(trained["ckpt"]), str(trained["data"]), str(killed)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "ready", child.stderr.read() if child.stderr else ""
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    left = sorted(p.name for p in killed.iterdir())
    assert left[0].startswith(".part-00001.parquet.") and left[1:] == ["part-00000.parquet"], left

    resumed = score(_options(trained, killed))
    clean = score(_options(trained, tmp_path / "clean"))
    assert resumed["shards_resumed"] == 1 and clean["shards_resumed"] == 0
    assert sorted(p.name for p in killed.iterdir()) == sorted(p.name for p in (tmp_path / "clean").iterdir())
    for name in (f"part-{i:05d}.parquet" for i in range(4)):
        assert pl.read_parquet(killed / name).equals(pl.read_parquet(tmp_path / "clean" / name)), name
    lists = _read(killed)
    assert lists.group_by("user_id").len()["len"].to_list() == [20] * 400
    assert resumed["shards"] == clean["shards"] and resumed["plan"] == clean["plan"]


def test_cli_writes_the_same_files_and_reports(trained: dict[str, Path], tmp_path: Path) -> None:
    from recsys.cli import main

    started = time.perf_counter()
    code = main(["score", "--ckpt", str(trained["ckpt"]), "--data", str(trained["data"]), "--out",
                 str(tmp_path / "cli"), "--k", "20", "--threads", "1", "--batch-size", "64", "--shard-size", "100",
                 "--device", "cpu", "--no-progress"])  # fmt: skip
    assert code == 0 and time.perf_counter() - started < 30
    score(_options(trained, tmp_path / "api"))
    assert _read(tmp_path / "cli").equals(_read(tmp_path / "api"))
    assert main(["score", "--ckpt", str(tmp_path / "missing.ckpt"), "--data", str(trained["data"]),
                 "--out", str(tmp_path / "x")]) == 2  # fmt: skip
