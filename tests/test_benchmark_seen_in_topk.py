"""benchmarks/seen_in_topk.py against the same counts taken one user at a time."""

from __future__ import annotations

from pathlib import Path

import torch
from test_scoring_models import _import_toy_models, write_checkpoint

from recsys.data import SequenceDataModule
from recsys.models import SASRec

TINY = {"n_items": 300, "hidden_size": 16, "n_layers": 1, "n_heads": 1, "max_len": 20}


def tiny_sasrec(tmp_path: Path) -> tuple[SASRec, Path]:
    """An untrained tied SASRec in evaluation mode and its checkpoint, seeded by the caller."""
    model = SASRec(**TINY).eval()
    return model, write_checkpoint(tmp_path / "tiny.ckpt", model, "recsys.models.SASRec", TINY)


def test_seen_in_topk_matches_a_per_user_count(benchmark_script, prepared_synthetic: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, checkpoint = tiny_sasrec(tmp_path)

    result = benchmark_script("seen_in_topk").seen_in_topk(checkpoint, prepared_synthetic, k=5, max_len=20, threads=1)

    data = SequenceDataModule(str(prepared_synthetic), max_len=20)
    data.setup("test")
    split = data.eval_split("test")
    table = model.item_embeddings().detach()
    seen = last = any_seen = 0
    for row in range(len(split)):
        history = split.history.row(row)
        with torch.inference_mode():
            scores = model.encode({"item_seq": torch.as_tensor(history[-20:])[None]})[0] @ table.T
            scores[0] = float("-inf")
        top = scores.topk(5).indices.tolist()
        in_history = [item in set(history.tolist()) for item in top]
        seen += sum(in_history)
        any_seen += any(in_history)
        last += top[0] == history[-1]
    users = len(split)
    assert result["users"] == users
    assert abs(result["history items per top-5"] - seen / users) < 1e-9
    assert abs(result["top-1 is the last item"] - last / users) < 1e-9
    assert abs(result["any history item in top-5"] - any_seen / users) < 1e-9
    assert last > 0  # an untrained tied model already puts the item just consumed first for some users


def test_read_item_counts_match_one_window_at_a_time(benchmark_script, prepared_synthetic: Path,
                                                      tmp_path: Path) -> None:
    torch.manual_seed(1)
    model, checkpoint = tiny_sasrec(tmp_path)

    result = benchmark_script("seen_in_topk").read_item_in_training(
        checkpoint, prepared_synthetic, max_len=20, windows=10**9, threads=1)

    data = SequenceDataModule(str(prepared_synthetic), max_len=20, objective="causal")
    data.setup("fit")
    table = model.item_embeddings().detach()
    windows = positions = read_first = target_above = 0
    for batch in data.train_dataloader():
        for item_seq, targets in zip(batch["item_seq"], batch["targets"], strict=True):
            windows += 1
            real = item_seq > 0  # left padding dropped: the window alone, as a batch of one
            items, wanted = item_seq[real], targets[real]
            with torch.inference_mode():
                scores = model(items[None])[0] @ table.T
                scores[:, 0] = float("-inf")
            for t in range(len(items)):
                if wanted[t] == 0:
                    continue
                positions += 1
                read_first += int(scores[t].argmax()) == int(items[t])
                target_above += bool(scores[t, wanted[t]] > scores[t, items[t]])
    assert result["training windows"] == windows
    assert result["training positions"] == positions > 0
    assert abs(result["top-1 is the item read there"] - read_first / positions) < 1e-9
    assert abs(result["target outscores the item read"] - target_above / positions) < 1e-9
    assert 0 < target_above < positions


def test_read_item_counts_stop_at_the_window_limit(benchmark_script, prepared_synthetic: Path,
                                                   tmp_path: Path) -> None:
    _, checkpoint = tiny_sasrec(tmp_path)
    result = benchmark_script("seen_in_topk").read_item_in_training(
        checkpoint, prepared_synthetic, max_len=20, windows=70, threads=1, batch_size=32)
    assert result["training windows"] == 70


def test_a_text_config_builds_its_untrained_recformer_and_counts(benchmark_script, prepared_synthetic: Path) -> None:
    script = benchmark_script("seen_in_topk")
    config = Path(__file__).resolve().parents[1] / "configs" / "recformer" / "synthetic.yaml"
    data = SequenceDataModule(str(prepared_synthetic), max_len=10)
    data.setup("test")

    torch.manual_seed(0)
    model = script.text_model_from_config(config, data)
    torch.manual_seed(0)
    result = script.seen_in_topk(None, prepared_synthetic, k=5, max_len=10, threads=1, text_config=config)

    assert model.max_items == 10  # ${data.init_args.max_len} resolved from the same file
    assert model.item_embeddings().shape[0] == data.n_items + 1  # the catalogue is encoded, padding row included
    assert result["users"] == len(data.eval_split("test"))
    assert 0 <= result["history items per top-5"] <= 5
    assert 0 <= result["any history item in top-5"] <= 1



def test_seen_in_topk_reads_a_generative_model_through_generate(
    benchmark_script, prepared_synthetic: Path, tmp_path: Path, monkeypatch
) -> None:
    toy_models = _import_toy_models(tmp_path, monkeypatch)  # EchoGenerator: the newest history item first
    data = SequenceDataModule(str(prepared_synthetic), max_len=20)
    data.setup("test")
    model = toy_models.EchoGenerator(data.n_items, max_len=20)
    checkpoint = write_checkpoint(tmp_path / "echo.ckpt", model, "toy_models.EchoGenerator", {"n_items": data.n_items})

    result = benchmark_script("seen_in_topk").seen_in_topk(checkpoint, prepared_synthetic, k=5, max_len=20, threads=1)

    split = data.eval_split("test")
    seen = 0
    for row in range(len(split)):
        history = set(split.history.row(row).tolist())
        seen += sum(item in history for item in [split.history.row(row)[-1], *range(data.n_items, data.n_items - 4, -1)])
    assert result["top-1 is the last item"] == 1.0 and result["top-1 is a history item"] == 1.0
    assert result["any history item in top-5"] == 1.0
    assert abs(result["history items per top-5"] - seen / len(split)) < 1e-9
