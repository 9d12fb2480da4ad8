"""Scoring without training: safe checkpoint loading, every model contract, approximate indexes, --help.

Checkpoints here are written by hand in the layout `recsys fit` uses (hyper_parameters.model =
{class_path, init_args}, weights under `model.`), with untrained weights: what is tested is the plumbing.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
from torch import nn

from recsys.data.contract import PreparedDataset, write_prepared
from recsys.eval.ranker import IndexSpec
from recsys.models import BERT4Rec, SASRec
from recsys.scoring import ScoreOptions, score
from recsys.scoring.checkpoint import CheckpointError
from recsys.scoring.users import UserListError

N_ITEMS = 80


def write_checkpoint(path: Path, model: nn.Module, class_path: str, init_args: dict[str, Any],
                     hparams_type: type = dict) -> Path:  # fmt: skip
    hparams = hparams_type({"_class_path": "recsys.tasks.RetrievalTask",
                            "model": {"class_path": class_path, "init_args": init_args}})  # fmt: skip
    state = {f"model.{key}": value for key, value in model.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": hparams, "epoch": 0}, path)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from data_prep import prepare

    return prepare("synthetic", out=tmp_path_factory.mktemp("scoring-models") / "data", users=150, items=N_ITEMS, seed=3)


@pytest.fixture(scope="module")
def sasrec_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    args = {"n_items": N_ITEMS, "hidden_size": 16, "n_layers": 1, "n_heads": 1, "max_len": 12}
    path = tmp_path_factory.mktemp("ckpt") / "sasrec.ckpt"
    return write_checkpoint(path, SASRec(**args), "recsys.models.SASRec", args)


def _options(ckpt: Path, data: Path, out: Path, **overrides: object) -> ScoreOptions:
    base = ScoreOptions(ckpt=ckpt, data=data, out=out, k=10, threads=1, progress=False, batch_size=32,
                        shard_size=64, device="cpu")  # fmt: skip
    return replace(base, **overrides)


def _read(out: Path) -> pl.DataFrame:
    return pl.read_parquet(sorted(out.glob("part-*.parquet")))


def _brute_force(model: nn.Module, data: Path, k: int) -> pl.DataFrame:
    """Dense scores and torch.topk: the reference the faiss path must agree with."""
    from recsys.data.sequences import Sequences

    seqs = Sequences.from_interactions(pl.read_parquet(data / "interactions.parquet"))
    window = torch.from_numpy(seqs.windows(model.max_len))
    with torch.inference_mode():
        scores = model.eval().encode({"item_seq": window}) @ model.item_embeddings()[1:].T
    top = torch.topk(scores, k).indices.numpy() + 1
    users = pl.read_parquet(data / "users.parquet")["user_id"].to_numpy()[seqs.users]
    items = pl.read_parquet(data / "items.parquet")["item_id"].to_numpy()
    ranks = np.tile(np.arange(1, k + 1, dtype=np.int32), len(users))
    return pl.DataFrame({"user_id": np.repeat(users, k), "rank": ranks, "item_id": items[top.ravel() - 1]})


@pytest.mark.parametrize("family", ["sasrec", "bert4rec"])
def test_retrieval_models_match_dense_topk(family: str, data: Path, tmp_path: Path) -> None:
    torch.manual_seed(1)
    args = {"n_items": N_ITEMS, "hidden_size": 16, "n_layers": 1, "n_heads": 2, "max_len": 48}  # > any history: padded
    model = SASRec(**args) if family == "sasrec" else BERT4Rec(**args)
    path = write_checkpoint(tmp_path / "m.ckpt", model, f"recsys.models.{type(model).__name__}", args)
    manifest = score(_options(path, data, tmp_path / "out"))
    lists = _read(tmp_path / "out")
    assert manifest["model"]["kind"] == "retrieval" and lists["score"].null_count() == 0
    expected = _brute_force(model, data, 10).sort("user_id", "rank")
    assert lists.sort("user_id", "rank").select("user_id", "rank", "item_id").equals(expected)


def test_attribute_dict_hparams_load_as_plain_data(sasrec_ckpt: Path, data: Path, tmp_path: Path) -> None:
    from lightning_fabric.utilities.data import AttributeDict

    state = torch.load(sasrec_ckpt, weights_only=True)
    model = SASRec(**state["hyper_parameters"]["model"]["init_args"])
    model.load_state_dict({k[len("model."):]: v for k, v in state["state_dict"].items()})
    wrapped = write_checkpoint(tmp_path / "ad.ckpt", model, "recsys.models.SASRec",
                               state["hyper_parameters"]["model"]["init_args"], hparams_type=AttributeDict)  # fmt: skip
    score(_options(wrapped, data, tmp_path / "a"))
    score(_options(sasrec_ckpt, data, tmp_path / "b"))
    assert _read(tmp_path / "a").equals(_read(tmp_path / "b"))


class _Touch:
    """Unpickling this would create a file: the attack weights_only loading must stop."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_pickled_objects_are_refused_without_running_them(data: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"model": _Touch(marker)}}, evil)
    with pytest.raises(CheckpointError, match=r"refusing to unpickle .*pathlib"):
        score(_options(evil, data, tmp_path / "out"))
    assert not marker.exists()
    module_inside = tmp_path / "module.ckpt"  # a LightningModule built in Python keeps the model object
    torch.save({"state_dict": {}, "hyper_parameters": {"model": SASRec(N_ITEMS, hidden_size=8)}}, module_inside)
    with pytest.raises(CheckpointError, match=r"recsys\.models\.sasrec\.SASRec.*class_path, init_args"):
        score(_options(module_inside, data, tmp_path / "out"))


def test_bad_class_path_and_weights_are_named(sasrec_ckpt: Path, data: Path, tmp_path: Path) -> None:
    args = {"n_items": N_ITEMS, "hidden_size": 16, "n_layers": 1, "n_heads": 1, "max_len": 12}
    missing = write_checkpoint(tmp_path / "a.ckpt", SASRec(**args), "recsys.models.NoSuchModel", args)
    with pytest.raises(CheckpointError, match=r"cannot import class_path 'recsys.models.NoSuchModel'"):
        score(_options(missing, data, tmp_path / "out"))
    wider = write_checkpoint(tmp_path / "b.ckpt", SASRec(**{**args, "hidden_size": 32}), "recsys.models.SASRec", args)
    with pytest.raises(CheckpointError, match=r"do not fit recsys.models.SASRec"):
        score(_options(wider, data, tmp_path / "out"))


TOY_MODELS = '''
import torch
from torch import nn


class CountdownGenerator(nn.Module):
    """Recommends n_items, n_items - 1, ... to everyone and wastes slot 2 on an invalid id (0)."""

    def __init__(self, n_items: int, max_len: int = 8) -> None:
        super().__init__()
        self.n_items = n_items
        self.max_len = max_len
        self.unused = nn.Parameter(torch.zeros(1))

    def generate(self, batch, k):
        ids = torch.arange(self.n_items, self.n_items - k, -1).repeat(batch["item_seq"].shape[0], 1)
        ids[:, 1] = 0
        return ids


class EchoGenerator(CountdownGenerator):
    """Recommends each user's newest history item, then n_items, n_items - 1, ..."""

    def generate(self, batch, k):
        seq = batch["item_seq"]
        rest = torch.arange(self.n_items, self.n_items - (k - 1), -1).repeat(seq.shape[0], 1)
        return torch.cat([seq[:, -1:], rest], dim=1)
'''


def _import_toy_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    (tmp_path / "toy_models.py").write_text(TOY_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("toy_models", None)
    import toy_models

    return toy_models


def test_generative_model_through_generate(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toy_models = _import_toy_models(tmp_path, monkeypatch)
    model = toy_models.CountdownGenerator(N_ITEMS)
    ckpt = write_checkpoint(tmp_path / "gen.ckpt", model, "toy_models.CountdownGenerator", {"n_items": N_ITEMS})
    manifest = score(_options(ckpt, data, tmp_path / "out", k=5))
    lists = _read(tmp_path / "out")
    assert manifest["model"]["kind"] == "generative" and manifest["columns"]["score"].startswith("null")
    assert lists["score"].null_count() == lists.height == 150 * 4
    first = lists.filter(pl.col("user_id") == lists["user_id"][0])
    items = pl.read_parquet(data / "items.parquet")["item_id"].to_list()
    assert first["rank"].to_list() == [1, 3, 4, 5]  # the wasted slot keeps its place, as in the Evaluator
    assert first["item_id"].to_list() == [items[N_ITEMS - i] for i in (1, 3, 4, 5)]
    score(_options(ckpt, data, tmp_path / "unseen", k=5, exclude_seen=True))
    unseen = _read(tmp_path / "unseen")
    history = (
        pl.read_parquet(data / "interactions.parquet").join(pl.read_parquet(data / "users.parquet"), on="user_idx")
        .join(pl.read_parquet(data / "items.parquet").select("item_idx", "item_id"), on="item_idx")
    )  # fmt: skip
    assert unseen.join(history.select("user_id", "item_id"), on=["user_id", "item_id"]).height == 0


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes(kind: str, sasrec_ckpt: Path, data: Path, tmp_path: Path) -> None:
    manifest = score(_options(sasrec_ckpt, data, tmp_path / "approx", index=IndexSpec(kind=kind, use_gpu=False)))
    score(_options(sasrec_ckpt, data, tmp_path / "exact"))
    approx, exact = _read(tmp_path / "approx"), _read(tmp_path / "exact")
    assert kind.upper() in manifest["protocol"] and manifest["plan"]["index"]["kind"] == kind
    overlap = approx.join(exact, on=["user_id", "item_id"]).height / exact.height
    assert overlap > 0.9


def test_users_too_short_for_the_test_split_are_named(tmp_path: Path) -> None:
    interactions = pl.DataFrame({
        "user_idx": [0, 0, 0, 1, 1], "item_idx": [1, 2, 3, 2, 3], "timestamp": [1, 2, 3, 1, 2],
        "rating": [None] * 5,
    }).cast({"user_idx": pl.Int32, "item_idx": pl.Int32, "timestamp": pl.Int64, "rating": pl.Float32})  # fmt: skip
    ds = PreparedDataset(
        interactions=interactions,
        items=pl.DataFrame({"item_idx": [1, 2, 3], "item_id": ["a", "b", "c"], "text": ["", "", ""]},
                           schema_overrides={"item_idx": pl.Int32}),
        users=pl.DataFrame({"user_idx": [0, 1], "user_id": ["long", "short"]}, schema_overrides={"user_idx": pl.Int32}),
        meta={"name": "tiny", "n_users": 2, "n_items": 3, "n_interactions": 5, "prep_version": "1"},
    )  # fmt: skip
    data = write_prepared(ds, tmp_path / "tiny")
    args = {"n_items": 3, "hidden_size": 8, "n_layers": 1, "n_heads": 1, "max_len": 4}
    ckpt = write_checkpoint(tmp_path / "tiny.ckpt", SASRec(**args), "recsys.models.SASRec", args)
    listing = tmp_path / "users.txt"
    listing.write_text("long\nshort\n")
    with pytest.raises(UserListError, match=r"fewer than 3 interactions .*line 2: 'short'"):
        score(_options(ckpt, data, tmp_path / "out", split="test", users=listing))
    manifest = score(_options(ckpt, data, tmp_path / "next", users=listing, k=5))
    assert manifest["n_users"] == 2 and _read(tmp_path / "next").height == 2 * 3  # k capped by the catalogue


def test_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    from recsys.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["score", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--ckpt", "--data", "--out", "--k", "--split", "--users", "--exclude-seen", "--index",
                   "--batch-size", "--shard-size", "--min-length", "--overwrite"):  # fmt: skip
        assert option in text, option
    assert "recsys test" in text and "rerun" in text


def test_a_second_run_on_the_same_folder_is_refused(sasrec_ckpt: Path, data: Path, tmp_path: Path) -> None:
    from recsys.scoring.shards import ShardError, locked

    out = tmp_path / "out"
    out.mkdir()
    with locked(out), pytest.raises(ShardError, match=r"another `recsys score` is writing here"):
        score(_options(sasrec_ckpt, data, out))
    assert score(_options(sasrec_ckpt, data, out))["n_users"] == 150  # the lock went with its holder
