"""GenerativeTask: next-item pairs, `every` windows, a tiny TIGER beats popularity, the CLI end to end.

Semantic IDs here come from `hashed_text_embeddings` (a deterministic bag of the synthetic texts' fields), not
MiniLM: the synthetic texts are three generated fields, so the cheap embedding describes them as well, and the
tests need no encoder weights and spend no minutes embedding.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from recsys.data import SequenceDataModule
from recsys.data.collate import CausalCollator, TrainWindows
from recsys.data.sequences import Sequences
from recsys.eval import Evaluator, PopularityModel
from recsys.models import TIGER
from recsys.tasks import GenerativeTask
from recsys.tasks.generative import next_item_pairs

REPO = Path(__file__).resolve().parents[1]


def _seqs(rows: list[list[int]]) -> Sequences:
    import polars as pl_

    df = pl_.DataFrame({"user_idx": [u for u, r in enumerate(rows) for _ in r], "item_idx": [i for r in rows for i in r]})
    return Sequences.from_interactions(df)


def test_every_windows_make_each_pair_once_with_its_full_history() -> None:
    rows = [[1, 2, 3, 4, 5], [6, 7], [8]]
    seqs = _seqs(rows)
    windows = TrainWindows(seqs, max_len=3, mode="every")
    batch = CausalCollator(seqs, max_len=3, windows=windows)(list(range(len(windows))))
    assert len(windows) == 5  # 4 pairs of user 0, 1 of user 1, none of user 2
    assert batch["item_seq"].tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4], [0, 0, 6]]
    assert batch["targets"].tolist() == [[0, 0, 2], [0, 0, 3], [0, 0, 4], [0, 0, 5], [0, 0, 7]]
    assert batch["user_idx"].tolist() == [0, 0, 0, 0, 1]


def test_next_item_pairs_from_causal_windows() -> None:
    item_seq = torch.tensor([[0, 1, 2, 3], [0, 0, 5, 6]])
    targets = torch.tensor([[0, 2, 3, 4], [0, 0, 6, 7]])
    history, target, users = next_item_pairs(item_seq, targets, torch.tensor([10, 11]))
    assert target.tolist() == [2, 3, 4, 6, 7]
    assert history.tolist() == [[0, 0, 0, 1], [0, 0, 1, 2], [0, 1, 2, 3], [0, 0, 0, 5], [0, 0, 5, 6]]
    assert users.tolist() == [10, 10, 10, 11, 11]
    # one target per row at the end (train_windows: every): the windows themselves
    history, target, _ = next_item_pairs(item_seq, torch.tensor([[0, 0, 0, 4], [0, 0, 0, 7]]))
    assert torch.equal(history, item_seq) and target.tolist() == [4, 7]


def _tiny_tiger(n_items: int) -> TIGER:
    return TIGER(
        n_items, text_embeddings="hashed", n_levels=2, codebook_size=16, collision_size=32, n_user_buckets=0,
        max_tokens=12, d_model=48, d_kv=16, d_ff=96, n_layers=1, n_heads=3, dropout=0.0, beam_width=10,
    )


def test_tiny_tiger_beats_popularity_on_synthetic(prepared_synthetic: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0)
    dm = SequenceDataModule(str(prepared_synthetic), max_len=4, batch_size=256, eval_batch_size=500,
                            train_windows="every")
    task = GenerativeTask(_tiny_tiger(dm.n_items), lr=1e-2, weight_decay=0.0, schedule="cosine", warmup_steps=10,
                          ks=[10])
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                         default_root_dir=tmp_path, accelerator="cpu", devices=1)
    trainer.fit(task, datamodule=dm)
    assert task.model.has_semantic_ids  # built at setup from the item texts
    (result,) = trainer.test(task, datamodule=dm, verbose=False)
    record = json.loads(next(tmp_path.rglob("test_metrics.json")).read_text())
    assert record["model"] == "TIGER" and record["n_users"] == 1000 and "full ranking" in record["protocol"]
    popularity = Evaluator(dm.n_items, ks=[10]).evaluate(
        PopularityModel(dm.item_popularity()), dm.test_dataloader(), dm.eval_split("test"))
    tiger_ndcg, pop_ndcg = result["test/ndcg@10"], popularity.metrics["ndcg@10"]
    print(f"TIGER NDCG@10 {tiger_ndcg:.4f}, popularity {pop_ndcg:.4f}")
    assert tiger_ndcg > 3 * pop_ndcg and tiger_ndcg > pop_ndcg + 0.02, (tiger_ndcg, pop_ndcg)


@pytest.mark.integration
def test_cli_fits_tiger_and_the_checkpoint_alone_rebuilds_it(prepared_synthetic: Path, tmp_path: Path) -> None:
    root = tmp_path / "run"
    tiny = ["--model.model.init_args.d_model", "32", "--model.model.init_args.d_kv", "16",
            "--model.model.init_args.d_ff", "64", "--model.model.init_args.n_layers", "1",
            "--model.model.init_args.n_heads", "2", "--model.model.init_args.max_tokens", "16"]
    proc = subprocess.run(
        [sys.executable, "-m", "recsys.cli", "fit", "--config", str(REPO / "configs/tiger/synthetic.yaml"),
         "--data.path", str(prepared_synthetic), "--trainer.default_root_dir", str(root),
         "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "10", "--trainer.limit_val_batches", "1",
         "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", *tiny],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(next(root.rglob("test_metrics.json")).read_text())
    assert record["model"] == "TIGER" and record["n_users"] == 1000
    from recsys.scoring.checkpoint import load_model

    loaded = load_model(next((root / "checkpoints").glob("best-*.ckpt")))  # weights_only=True, no data folder
    model = loaded.model
    assert loaded.class_path == "recsys.models.TIGER" and model.has_semantic_ids
    batch = {"item_seq": torch.tensor([[0, 1, 2], [3, 4, 5]]), "user_idx": torch.tensor([0, 1])}
    out = model.generate(batch, 10)
    assert ((out >= 1) & (out <= model.n_items)).all()
    assert all(len(set(row)) == 10 for row in out.tolist())
    assert np.array_equal(model.semantic_ids.codes.shape, (model.n_items + 1, 3 + 1))
