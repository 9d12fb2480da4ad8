"""quality.py --resume continues a finished run in a copy of its folder: the copy's checkpoints must point their
callback state (best and last paths, ModelCheckpoint's own folder) at the copy, or Lightning drops the best score
on resume and the resumed run's first validation would count as its best."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def _checkpoint(folder: Path) -> dict:
    ckpts = folder / "checkpoints"
    return {
        "epoch": 3,
        "state_dict": {"w": torch.ones(2)},
        "callbacks": {
            "ModelCheckpoint{'monitor': 'val/ndcg@10'}": {
                "best_model_score": torch.tensor(0.06),
                "best_model_path": str(ckpts / "best-2-30.ckpt"),
                "dirpath": str(ckpts),
                "best_k_models": {str(ckpts / "best-2-30.ckpt"): torch.tensor(0.06)},
                "last_model_path": str(ckpts / "last.ckpt"),
            },
            "Timer": {"time_elapsed": {"train": 12.5}},
        },
    }


def test_relocated_copy_points_checkpoints_at_the_copy_and_leaves_the_source(benchmark_script, tmp_path: Path) -> None:
    quality = benchmark_script("quality")
    source, copy = tmp_path / "run-a", tmp_path / "run-b"
    (source / "checkpoints").mkdir(parents=True)
    for name in ("last.ckpt", "best-2-30.ckpt"):
        torch.save(_checkpoint(source), source / "checkpoints" / name)

    last = quality._relocated_copy(source, copy)

    assert last == copy / "checkpoints" / "last.ckpt"
    for name in ("last.ckpt", "best-2-30.ckpt"):
        state = torch.load(copy / "checkpoints" / name, weights_only=False)
        ckpt_state = state["callbacks"]["ModelCheckpoint{'monitor': 'val/ndcg@10'}"]
        assert ckpt_state["dirpath"] == str(copy / "checkpoints")
        assert ckpt_state["best_model_path"] == str(copy / "checkpoints" / "best-2-30.ckpt")
        assert list(ckpt_state["best_k_models"]) == [str(copy / "checkpoints" / "best-2-30.ckpt")]
        assert ckpt_state["last_model_path"] == str(copy / "checkpoints" / "last.ckpt")
        assert float(ckpt_state["best_model_score"]) == pytest.approx(0.06)  # values kept
        assert state["callbacks"]["Timer"] == {"time_elapsed": {"train": 12.5}}
        assert torch.equal(state["state_dict"]["w"], torch.ones(2))
        assert not list((copy / "checkpoints").glob("*.partial"))
    original = torch.load(source / "checkpoints" / "last.ckpt", weights_only=False)
    assert original["callbacks"]["ModelCheckpoint{'monitor': 'val/ndcg@10'}"]["dirpath"] == str(source / "checkpoints")


def test_relocated_copy_needs_a_last_checkpoint(benchmark_script, tmp_path: Path) -> None:
    quality = benchmark_script("quality")
    (tmp_path / "run-a" / "checkpoints").mkdir(parents=True)
    with pytest.raises(SystemExit, match="last.ckpt"):
        quality._relocated_copy(tmp_path / "run-a", tmp_path / "run-b")


def test_table_marks_runs_tested_with_seen_items_excluded(benchmark_script) -> None:
    quality = benchmark_script("quality")
    metrics = {"recall@10": 0.09, "ndcg@10": 0.05, "recall@5": 0.06, "ndcg@5": 0.04}
    base = {"model": "sasrec", "dataset": "amazon-beauty", "metrics": metrics, "epochs": 3, "best_epoch": 2,
            "seconds": 60.0, "capped": 1.0, "command": "recsys fit"}
    runs = [
        {**base, "label": "kept", "protocol": "full ranking, seen items kept"},
        {**base, "label": "trained-excluding", "protocol": "full ranking, seen items excluded"},
        {**base, "label": "kept, seen excluded", "protocol": "full ranking, seen items excluded"},
    ]
    table = quality._table(runs)
    assert "| ours: sasrec (kept) |" in table
    assert "| ours: sasrec (trained-excluding, seen excluded) |" in table
    assert "| ours: sasrec (kept, seen excluded) |" in table  # not marked twice
