"""`recsys average` writes the mean of a run's checkpoints: floating weights averaged, everything that is not a
weight (integer buffers, the model config) required equal, training state dropped, the file loadable for scoring."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recsys.cli import main as recsys_main
from recsys.models import SASRec
from recsys.scoring.average import average_checkpoints
from recsys.scoring.checkpoint import CheckpointError, load_model, read_checkpoint

SPEC = {"class_path": "recsys.models.SASRec", "init_args": {"n_items": 20, "hidden_size": 8, "n_layers": 1,
                                                             "n_heads": 1, "max_len": 5}}


def _checkpoint(path: Path, seed: int, step: int, spec: dict = SPEC, codes: torch.Tensor | None = None) -> Path:
    torch.manual_seed(seed)
    model = SASRec(**spec["init_args"])
    weights = {f"model.{k}": v for k, v in model.state_dict().items()}
    weights["task.codes"] = torch.arange(6) if codes is None else codes  # an integer buffer, like TIGER's semantic-ID table
    torch.save({"state_dict": weights, "hyper_parameters": {"model": spec}, "global_step": step, "epoch": step // 10,
                "optimizer_states": [{"state": {}}], "loops": {"fit_loop": {}}}, path)
    return path


def test_the_mean_of_two_checkpoints(tmp_path: Path) -> None:
    a, b = _checkpoint(tmp_path / "best.ckpt", 0, 150), _checkpoint(tmp_path / "last.ckpt", 1, 230)
    out = average_checkpoints([a, b], tmp_path / "avg.ckpt")
    state, first, second = (read_checkpoint(p) for p in (out, a, b))
    key = next(k for k, v in state["state_dict"].items() if v.is_floating_point() and v.numel() > 1)
    torch.testing.assert_close(state["state_dict"][key], (first["state_dict"][key] + second["state_dict"][key]) / 2)
    assert not torch.equal(first["state_dict"][key], second["state_dict"][key])
    assert torch.equal(state["state_dict"]["task.codes"], torch.arange(6))
    assert "optimizer_states" not in state and "loops" not in state and state["global_step"] == 150
    assert state["averaged_from"] == [{"file": "best.ckpt", "global_step": 150}, {"file": "last.ckpt", "global_step": 230}]
    assert not (tmp_path / "avg.ckpt.tmp").exists()


def test_checkpoints_of_different_runs_are_refused(tmp_path: Path) -> None:
    a = _checkpoint(tmp_path / "a.ckpt", 0, 1)
    other_ids = _checkpoint(tmp_path / "b.ckpt", 1, 2, codes=torch.arange(6).flip(0))
    with pytest.raises(CheckpointError, match="'task.codes'.*differs"):
        average_checkpoints([a, other_ids], tmp_path / "avg.ckpt")
    wider = {**SPEC, "init_args": {**SPEC["init_args"], "n_layers": 2}}
    with pytest.raises(CheckpointError, match="hyper_parameters\\['model'\\] differs|state_dict keys differ"):
        average_checkpoints([a, _checkpoint(tmp_path / "c.ckpt", 1, 2, spec=wider)], tmp_path / "avg.ckpt")
    other_dropout = {**SPEC, "init_args": {**SPEC["init_args"], "dropout": 0.3}}
    with pytest.raises(CheckpointError, match="hyper_parameters\\['model'\\] differs"):
        average_checkpoints([a, _checkpoint(tmp_path / "d.ckpt", 1, 2, spec=other_dropout)], tmp_path / "avg.ckpt")
    with pytest.raises(CheckpointError, match="one of the inputs"):
        average_checkpoints([a, tmp_path / "b.ckpt"], a)
    assert not (tmp_path / "avg.ckpt").exists()


def test_the_command_writes_a_file_scoring_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _checkpoint(tmp_path / "a.ckpt", 0, 1), _checkpoint(tmp_path / "b.ckpt", 1, 2)
    assert recsys_main(["average", str(a), str(b), "--out", str(tmp_path / "avg.ckpt")]) == 0
    assert "averaged 2 checkpoints" in capsys.readouterr().out
    loaded = load_model(tmp_path / "avg.ckpt")
    assert isinstance(loaded.model, SASRec) and loaded.class_path == "recsys.models.SASRec"
    with pytest.raises(SystemExit) as exit_:
        recsys_main(["average", str(a), "--out", str(tmp_path / "x.ckpt")])
    assert exit_.value.code == 2 and "at least two checkpoints" in capsys.readouterr().err
