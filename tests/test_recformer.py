"""Recformer: key-value tokenization, the pretrained backbone, the retrieval contract, training and zero-shot.

Models here are tiny (from-scratch BERTs with hidden 32, or MiniLM cut to one layer) so the file runs in well
under a minute on two CPU cores; quality numbers on real data come from benchmarks/recformer_quality.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from recsys.data import SequenceDataModule
from recsys.eval import Evaluator, PopularityModel
from recsys.models import Recformer
from recsys.models.recformer import (
    KEY_TYPE,
    VALUE_TYPE,
    ItemTokens,
    catalogue_embeddings,
    item_tokens_cached,
    parse_attributes,
    sequence_tokens,
    tokenize_items,
)
from recsys.tasks import RecformerTask
from recsys.tasks.optim import build_optimizer
from recsys.tasks.recformer import prefix_targets
from recsys.text_embeddings import default_encoder_path


class _Vocab:
    """A whitespace tokenizer with fixed ids, so expected token rows can be written by hand."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def __call__(self, strings: list[str], add_special_tokens: bool = False) -> dict[str, list[list[int]]]:
        return {"input_ids": [[self.ids.setdefault(w, 10 + len(self.ids)) for w in s.split()] for s in strings]}


def _table(tokens: ItemTokens) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.from_numpy(tokens.ids), torch.from_numpy(tokens.types), torch.from_numpy(tokens.lengths)


@pytest.fixture(scope="module")
def minilm() -> Path:
    try:
        return default_encoder_path()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        pytest.skip(str(exc))


# -- tokenization ---------------------------------------------------------------------------------------
def test_parse_attributes_keeps_keys_values_and_free_text() -> None:
    assert parse_attributes("brand: OPI; categories: Makeup, Nails") == [("brand", "OPI"), ("categories", "Makeup, Nails")]
    assert parse_attributes("just text;  ; size: L") == [("", "just text"), ("size", "L")]


def test_item_tokens_have_key_value_types_and_respect_tokens_per_item() -> None:
    vocab = _Vocab()
    tokens = tokenize_items(["brand: acme co; color: red", "size: XL", "color: very dark blue green"], vocab, 5)
    acme, co, red = vocab.ids["acme"], vocab.ids["co"], vocab.ids["red"]
    brand, color = vocab.ids["brand"], vocab.ids["color"]
    assert tokens.ids.shape == (4, 5) and tokens.lengths.tolist() == [0, 5, 2, 5]
    assert tokens.ids[0].tolist() == [0] * 5  # padding row
    assert tokens.ids[1].tolist() == [brand, acme, co, color, red]
    assert tokens.types[1].tolist() == [KEY_TYPE, VALUE_TYPE, VALUE_TYPE, KEY_TYPE, VALUE_TYPE]
    assert tokens.types[2].tolist() == [KEY_TYPE, VALUE_TYPE, 0, 0, 0]
    assert tokens.ids[3].tolist() == [color] + [vocab.ids[w] for w in ("very", "dark", "blue", "green")]  # cut at 5


def test_text_format_keeps_punctuation_and_closes_each_item_with_sep() -> None:
    vocab = _Vocab()
    tokens = tokenize_items(["brand: acme; color: red", "size: very large indeed"], vocab, 6, "text", sep_id=102)
    brand, colon, acme, semi = vocab.ids["brand"], vocab.ids[":"], vocab.ids["acme"], vocab.ids[";"]
    assert tokens.ids[1].tolist() == [brand, colon, acme, semi, vocab.ids["color"], 102]  # cut, [SEP] kept
    assert tokens.types[1].tolist() == [KEY_TYPE, KEY_TYPE, VALUE_TYPE, VALUE_TYPE, KEY_TYPE, 0]
    size, very, large = vocab.ids["size"], vocab.ids["very"], vocab.ids["large"]
    assert tokens.ids[2].tolist() == [size, colon, very, large, vocab.ids["indeed"], 102]
    assert tokens.lengths.tolist() == [0, 6, 6]
    short = tokenize_items(["a: b"], vocab, 6, "text", sep_id=102)  # the last value gets no ';'
    assert short.ids[1].tolist() == [vocab.ids["a"], colon, vocab.ids["b"], 102, 0, 0] and short.lengths[1] == 4
    with pytest.raises(ValueError, match="sep_token_id"):
        tokenize_items(["a: b"], vocab, 6, "text")
    with pytest.raises(ValueError, match="item_format='words'"):
        tokenize_items(["a: b"], vocab, 6, "words")  # type: ignore[arg-type]


def test_user_tokens_most_recent_first_with_item_positions_and_budget() -> None:
    vocab = _Vocab()
    tokens = tokenize_items(["a: x", "b: y z", "c: w"], vocab, 4)  # lengths 2, 3, 2
    ids, types, lengths = _table(tokens)
    history = torch.tensor([[1, 2, 3], [0, 0, 2], [0, 0, 0]])  # left-padded, most recent last
    out = sequence_tokens(history, ids, types, lengths, max_items=3, max_tokens=7, cls_id=101)
    c, w, b, y, z = (vocab.ids[t] for t in ("c", "w", "b", "y", "z"))
    # user 0: [CLS] item 3 (2 tokens) item 2 (3 tokens) = 6 tokens; item 1 would exceed the budget of 7
    assert out["input_ids"][0].tolist() == [101, c, w, b, y, z]
    assert out["token_type"][0].tolist() == [0, KEY_TYPE, VALUE_TYPE, KEY_TYPE, VALUE_TYPE, VALUE_TYPE]
    assert out["item_position"][0].tolist() == [0, 1, 1, 2, 2, 2]
    assert out["item_index"][0].tolist() == [0, 3, 3, 2, 2, 2]
    assert out["item_index"][1].tolist() == [0, 2, 2, 2, 0, 0]
    assert out["attention_mask"][0].tolist() == [1] * 6
    assert out["input_ids"][1].tolist() == [101, b, y, z, 0, 0]
    assert out["attention_mask"][1].tolist() == [1, 1, 1, 1, 0, 0]
    assert out["input_ids"][2].tolist() == [101, 0, 0, 0, 0, 0] and out["attention_mask"][2].sum() == 1
    # max_items keeps only the most recent items; every row stays within the budget
    out = sequence_tokens(history, ids, types, lengths, max_items=1, max_tokens=7, cls_id=101)
    assert out["input_ids"][0].tolist() == [101, c, w, 0]
    budget = sequence_tokens(torch.randint(0, 4, (64, 12)), ids, types, lengths, 12, 6, 101)
    assert int(budget["attention_mask"].sum(1).max()) <= 6


def test_token_table_cache_round_trips(minilm: Path, tmp_path: Path) -> None:
    texts = ["brand: OPI; categories: Makeup, Nails", "color: red"]
    first = item_tokens_cached(texts, minilm, 8, tmp_path)
    files = list(tmp_path.glob("recformer-tokens-*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob(".*tmp*"))
    again = item_tokens_cached(texts, minilm, 8, tmp_path)
    assert np.array_equal(first.ids, again.ids) and np.array_equal(first.types, again.types)
    item_tokens_cached(texts, minilm, 6, tmp_path)  # another budget: another file, never the stale one
    assert len(list(tmp_path.glob("recformer-tokens-*.npz"))) == 2


# -- the model ------------------------------------------------------------------------------------------
def test_pretrained_backbone_matches_plain_transformers(minilm: Path) -> None:
    """With the extra embeddings at their zero start, the encoder is exactly the pretrained MiniLM."""
    from transformers import AutoModel, AutoTokenizer

    model = Recformer(n_items=2, n_layers=1, pooling="mean", tokens_per_item=8)
    assert all(m.training for m in model.modules())  # like any fresh nn.Module, so dropout trains
    model.eval()
    plain = AutoModel.from_pretrained(minilm)
    plain.encoder.layer = plain.encoder.layer[:1]
    plain.eval()
    encoded = AutoTokenizer.from_pretrained(minilm)(["brand OPI makeup nail polish"], return_tensors="pt")
    tokens = {
        "input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
        "token_type": torch.full_like(encoded["input_ids"], VALUE_TYPE),  # zero embeddings: no effect yet
        "item_position": torch.ones_like(encoded["input_ids"]),
    }
    with torch.no_grad():
        expected = plain(**encoded).last_hidden_state
        hidden = model.hidden_states(tokens)
        vector = model.embed(tokens)
    torch.testing.assert_close(hidden, expected, rtol=1e-5, atol=1e-5)
    mean = expected.mean(1)
    torch.testing.assert_close(vector, mean / mean.norm(dim=-1, keepdim=True), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="n_layers=7"):
        Recformer(n_items=2, n_layers=7)


def test_text_format_item_vector_is_the_plain_sentence_embedding(minilm: Path) -> None:
    """With item_format='text' and mean pooling, an item embeds exactly as MiniLM embeds its text as a sentence."""
    from transformers import AutoModel, AutoTokenizer

    texts = ["brand: OPI; categories: Makeup, Nails", "brand: Maybelline; categories: Beauty, Makeup, Face, Foundation"]
    model = Recformer(n_items=2, n_layers=1, pooling="mean", tokens_per_item=32, item_format="text").eval()
    model.set_item_tokens(tokenize_items(texts, AutoTokenizer.from_pretrained(minilm), 32, "text"))
    plain = AutoModel.from_pretrained(minilm)
    plain.encoder.layer = plain.encoder.layer[:1]
    plain.eval()
    encoded = AutoTokenizer.from_pretrained(minilm)(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = plain(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1).float()
        expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        vectors = model.encode_items(torch.tensor([1, 2]))
    torch.testing.assert_close(vectors, expected, rtol=1e-5, atol=1e-5)


def _tiny(n_items: int, **kw: object) -> Recformer:
    args: dict = dict(pretrained=False, n_layers=1, hidden_size=32, n_heads=2, max_items=5, tokens_per_item=8,
                      max_tokens=48, dropout=0.0)
    args.update(kw)
    return Recformer(n_items=n_items, **args)


def test_retrieval_contract_and_catalogue_encoding(tmp_path: Path) -> None:
    texts = ["category: beauty; color: red", "category: camera; color: blue", "category: beauty; size: L"]
    model = _tiny(3)
    with pytest.raises(RuntimeError, match="no item tokens"):
        model.encode({"item_seq": torch.tensor([[1, 2]])})
    model.set_item_tokens(tokenize_items(texts, _Vocab(), 8))
    with pytest.raises(ValueError, match="4 items"):
        model.set_item_tokens(tokenize_items(texts + ["x: y"], _Vocab(), 8))
    model.eval()
    table = model.refresh_item_table()
    assert table.shape == (4, 32) and torch.all(table[0] == 0)
    torch.testing.assert_close(table[1:].norm(dim=1), torch.ones(3))
    assert model.item_embeddings() is model.item_table
    users = model.encode({"item_seq": torch.tensor([[0, 1, 2], [3, 2, 1]])})
    assert users.shape == (2, 32)
    torch.testing.assert_close(model.encode_items(torch.tensor([2, 3])), table[2:], rtol=1e-5, atol=1e-5)
    # streamed into a float16 file, batch by batch: the same vectors
    stored = np.lib.format.open_memmap(tmp_path / "items.npy", mode="w+", dtype=np.float16, shape=(4, 32))
    model.encode_catalogue(stored, batch_size=2, progress=False)
    np.testing.assert_allclose(np.asarray(stored, dtype=np.float32), table.numpy(), atol=2e-3)
    # cached on disk under the model's fingerprint: read again while unchanged, re-encoded after a change
    cached = catalogue_embeddings(model, tmp_path / "cache", dtype="float16", batch_size=2, progress=False)
    assert cached.dtype == np.float16 and len(list((tmp_path / "cache").glob("*.npy"))) == 1
    np.testing.assert_allclose(cached.astype(np.float32), table.numpy(), atol=2e-3)
    catalogue_embeddings(model, tmp_path / "cache", dtype="float16", progress=False)
    assert len(list((tmp_path / "cache").iterdir())) == 1  # no second file, no temporary left
    with torch.no_grad():
        model.token_types.weight[KEY_TYPE].normal_()  # (a constant shift would vanish in LayerNorm)
    changed = catalogue_embeddings(model, tmp_path / "cache", dtype="float16", progress=False)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2
    assert float(np.abs(changed.astype(np.float32) - cached.astype(np.float32)).max()) > 1e-3


def test_item_ids_tell_items_with_one_text_apart_and_stay_with_their_catalogue(
    trained: tuple[Path, dict[str, float]], prepared_synthetic: Path, tmp_path: Path
) -> None:
    """Transductive fine-tuning: items 1 and 2 share their text, so a text model cannot rank one above the
    other; with `item_ids` the softmax over the table learns a vector per item (the target's rises)."""
    texts = ["category: beauty; color: red", "category: beauty; color: red", "category: camera; color: blue"]
    torch.manual_seed(0)
    model = _tiny(3, item_ids=True)
    model.set_item_tokens(tokenize_items(texts, _Vocab(), 8))
    model.refresh_item_table()
    torch.testing.assert_close(model.item_embeddings(), model.item_table)  # zero at the start: the text model
    torch.testing.assert_close(model.item_table[1], model.item_table[2])
    task = RecformerTask(model, lr=1e-2, temperature=0.05)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    users = torch.tensor([[3, 1], [3, 3]])
    for _ in range(20):  # after [3, 1] comes item 2, never item 1
        vectors = model.encode({"item_seq": users[:1]})
        logits = vectors @ model.item_embeddings().T / task.hparams.temperature
        logits[:, 0] = float("-inf")
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor([2]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    table = model.item_embeddings().detach()
    assert torch.all(model.item_id_embeddings.weight[0] == 0) and torch.all(table[0] == 0)
    torch.testing.assert_close(table[1:].norm(dim=1), torch.ones(3))
    scores = model.encode({"item_seq": users[:1]}).detach() @ table.T
    assert scores[0, 2] > scores[0, 1]  # same text, told apart by the learned vectors
    # the refreshed buffer holds the texts alone; what retrieval and scoring read joins the learned vectors
    model.eval()
    text = model.refresh_item_table().clone()
    joined = model.item_embeddings().detach()
    assert not torch.allclose(joined, text)
    torch.testing.assert_close(torch.as_tensor(model.encode_catalogue(progress=False)), joined, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.as_tensor(model.encode_catalogue(progress=False, text_only=True)), text,
                               atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="item_table"):
        RecformerTask(_tiny(3, item_ids=True), loss="in_batch")
    # the learned vectors belong to one catalogue: a checkpoint with them starts a model of another catalogue
    # (with or without item_ids) on its encoder alone, and one without them starts a transductive model
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "ids.ckpt")
    other = RecformerTask(_tiny(7), pretrained_checkpoint=str(tmp_path / "ids.ckpt")).model
    torch.testing.assert_close(other.item_positions.weight, model.item_positions.weight)
    again = RecformerTask(_tiny(7, item_ids=True), pretrained_checkpoint=str(tmp_path / "ids.ckpt")).model
    assert torch.all(again.item_id_embeddings.weight == 0)
    checkpoint, _ = trained
    RecformerTask(_tiny(3, item_ids=True), pretrained_checkpoint=str(checkpoint))


def test_history_item_ids_tell_histories_with_one_text_apart(tmp_path: Path) -> None:
    """Items 1 and 2 share their text, so a text encoder gives histories [3, 1] and [3, 2] one user vector;
    `history_item_ids` adds a learned vector per item to its tokens in a history, and training on two users
    whose next items differ pulls their vectors apart. Items encoded alone stay text."""
    texts = ["category: beauty; color: red", "category: beauty; color: red", "category: camera; color: blue"]
    torch.manual_seed(0)
    model = _tiny(3, item_ids=True, history_item_ids=True)
    model.set_item_tokens(tokenize_items(texts, _Vocab(), 8))
    model.refresh_item_table()
    users = torch.tensor([[3, 1], [3, 2]])
    torch.testing.assert_close(model.encode({"item_seq": users[:1]}), model.encode({"item_seq": users[1:]}))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(20):  # after [3, 1] comes item 3, after [3, 2] item 1
        logits = model.encode({"item_seq": users}) @ model.item_embeddings().T / 0.05
        logits[:, 0] = float("-inf")
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor([3, 1]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        first, second = model.encode({"item_seq": users})
        scores = model.encode({"item_seq": users}) @ model.item_embeddings().T
    assert float((first - second).norm()) > 1e-2
    assert scores[0, 3] > scores[0, 1] and scores[1, 1] > scores[1, 3]
    assert torch.all(model.history_item_embeddings.weight[0] == 0)
    torch.testing.assert_close(model.encode_items(torch.tensor([1, 2]))[0], model.encode_items(torch.tensor([2]))[0])
    # like item_ids, the vectors stay with their catalogue
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "ids.ckpt")
    other = RecformerTask(_tiny(7, history_item_ids=True), pretrained_checkpoint=str(tmp_path / "ids.ckpt")).model
    assert torch.all(other.history_item_embeddings.weight == 0)
    torch.testing.assert_close(other.item_positions.weight, model.item_positions.weight)
    # item_id_lr trains both per-item tables at a rate of their own, the encoder at lr
    task = RecformerTask(model, lr=1e-4, item_id_lr=1e-2)
    groups = build_optimizer(task, 1e-4, 0.0, "constant", 0, 1, own_lr=task._own_lr())["optimizer"].param_groups
    own = [g for g in groups if g["lr"] == 1e-2]
    assert sorted(p.data_ptr() for g in own for p in g["params"]) == sorted(
        p.data_ptr() for p in (model.item_id_embeddings.weight, model.history_item_embeddings.weight))
    assert {g["lr"] for g in groups} == {1e-4, 1e-2}


@pytest.mark.parametrize("pooling", ["mean", "last_item"])
def test_causal_layout_gives_every_prefix_in_one_pass(pooling: str) -> None:
    """Under `layout: causal` row k of prefix_users (one pass over the window) is the vector the model gives
    the history cut after its k-th item, and prefix_targets pairs it with the item that came next."""
    texts = ["a: x", "b: y z", "c: w", "d: v u t", "e: s"]
    torch.manual_seed(0)
    model = _tiny(5, pooling=pooling, layout="causal", history_item_ids=True).eval()
    with torch.no_grad():
        for table in (model.item_positions, model.history_item_embeddings, model.token_types):
            table.weight[1:].normal_()
    model.set_item_tokens(tokenize_items(texts, _Vocab(), 8))
    window = torch.tensor([[0, 1, 2, 3, 4], [0, 0, 0, 5, 2]])
    tokens = model.tokens_of(window)
    assert tokens["item_position"][1].tolist()[:6] == [0, 1, 1, 2, 2, 2]  # oldest first: item 5, then item 2
    with torch.no_grad():
        prefixes = torch.nn.functional.normalize(model.prefix_users(model.hidden_states(tokens), tokens), dim=-1)
        for row, kept in ((0, 4), (1, 2)):
            for k in range(1, kept + 1):
                alone = model(window[row:row + 1, : window.shape[1] - kept + k])
                torch.testing.assert_close(prefixes[row, k], alone[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(prefixes[row, -1], model(window[row:row + 1])[0], atol=1e-5, rtol=1e-5)
    targets = torch.tensor([[0, 2, 3, 4, 5], [0, 0, 0, 2, 1]])
    assert prefix_targets(targets, tokens["item_position"]).tolist() == [[2, 3, 4, 5], [2, 1, 0, 0]]
    with pytest.raises(ValueError, match="pooling='mean' or 'last_item'"):
        _tiny(5, layout="causal")


def test_last_item_pooling_reads_only_the_newest_item() -> None:
    """`last_item` averages the newest item's tokens ([CLS] and older items left out; under `recent_first` the
    newest is laid out first), and an item alone is the mean of its own tokens."""
    texts = ["a: x", "b: y z", "c: w"]
    torch.manual_seed(0)
    model = _tiny(3, pooling="last_item").eval()
    model.set_item_tokens(tokenize_items(texts, _Vocab(), 8))
    tokens = model.tokens_of(torch.tensor([[1, 2]]))
    hidden = torch.randn(1, tokens["input_ids"].shape[1], 4)
    newest = (tokens["item_position"][0] == 1) & tokens["attention_mask"][0].bool()  # item 2, laid out first
    torch.testing.assert_close(model.pool(hidden, tokens)[0], hidden[0, newest].mean(0))
    alone = model.tokens_of(torch.tensor([[3]]))
    hidden = torch.randn(1, alone["input_ids"].shape[1], 4)
    torch.testing.assert_close(model.pool(hidden, alone)[0], hidden[0, 1:].mean(0))


def test_causal_layout_trains_on_every_prefix_and_learns(prepared_synthetic: Path, tmp_path: Path) -> None:
    """One pass per window, every target of it a pair: a tiny causal Recformer beats popularity."""
    torch.manual_seed(0)
    data = _data(prepared_synthetic)
    task = RecformerTask(_tiny(data.n_items, pooling="mean", layout="causal"), lr=3e-3, temperature=0.05, ks=[10])
    trainer = _trainer(tmp_path, 2)
    trainer.fit(task, datamodule=data)
    metrics = trainer.test(task, datamodule=data, verbose=False)[0]
    popularity = _popularity(data)
    assert metrics["test/ndcg@10"] > 2 * popularity["ndcg@10"], (metrics, popularity)


# -- training ---------------------------------------------------------------------------------------------
def _data(path: Path) -> SequenceDataModule:
    return SequenceDataModule(str(path), max_len=5, batch_size=64, eval_batch_size=500, train_windows="last")


def _trainer(root: Path, epochs: int) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs, default_root_dir=root, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=True, num_sanity_val_steps=0, accelerator="cpu",
    )


def _popularity(data: SequenceDataModule) -> dict[str, float]:
    evaluator = Evaluator(data.n_items, ks=[10])
    return evaluator.evaluate(PopularityModel(data.item_popularity()), data.test_dataloader(),
                              data.split.test).metrics


@pytest.fixture(scope="module")
def trained(prepared_synthetic: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """A tiny Recformer fine-tuned 3 epochs on the synthetic data: (its checkpoint, its test metrics)."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("recformer")
    data = _data(prepared_synthetic)
    task = RecformerTask(_tiny(data.n_items), lr=3e-3, temperature=0.05, ks=[10])
    trainer = _trainer(root, 3)
    trainer.fit(task, datamodule=data)
    # Weights only: a checkpoint of a task built in Python pickles the model object in its hparams, which the
    # safe loader refuses (`recsys fit` checkpoints keep {class_path, init_args}; the CLI test covers those).
    torch.save({"state_dict": task.state_dict()}, root / "model.ckpt")
    metrics = {k.removeprefix("test/"): v for k, v in trainer.test(task, datamodule=data, verbose=False)[0].items()}
    return root / "model.ckpt", metrics


def test_tiny_recformer_beats_popularity(trained: tuple[Path, dict[str, float]], prepared_synthetic: Path) -> None:
    _, metrics = trained
    data = _data(prepared_synthetic)
    data.setup()
    popularity = _popularity(data)
    assert metrics["ndcg@10"] > 2 * popularity["ndcg@10"], (metrics, popularity)
    assert metrics["recall@10"] > 2 * popularity["recall@10"], (metrics, popularity)


def test_pretrain_in_batch_with_mlm_then_finetune_from_its_checkpoint(
    trained: tuple[Path, dict[str, float]], prepared_synthetic: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    data = _data(prepared_synthetic)
    task = RecformerTask(_tiny(data.n_items), loss="in_batch", mlm_weight=0.1, lr=3e-3, ks=[10])
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=0, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    trainer.fit(task, datamodule=data)
    after = task.model.state_dict()
    for name in ("mlm_bias", "token_types.weight", "item_positions.weight"):
        assert not torch.equal(before[name], after[name]), f"{name} was not trained"
    # fine-tuning starts from a checkpoint: every encoder weight is copied, catalogue buffers are not
    checkpoint, _ = trained
    fresh = RecformerTask(_tiny(data.n_items), pretrained_checkpoint=str(checkpoint))
    source = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(fresh.model.item_positions.weight, source["model.item_positions.weight"])
    assert not fresh.model.has_item_tokens
    with pytest.raises(ValueError, match="does not fit"):
        RecformerTask(_tiny(data.n_items, hidden_size=16), pretrained_checkpoint=str(checkpoint))


def test_zero_shot_on_a_catalogue_never_seen(
    trained: tuple[Path, dict[str, float]], tmp_path: Path
) -> None:
    """The synthetic model ranks another generated catalogue (other seed, other size) without training."""
    from data_prep import prepare

    other = prepare("synthetic", out=tmp_path / "other", users=400, items=200, seed=7, progress=False)
    data = _data(other)
    data.setup()
    # Synthetic chains reach every item, so no target is cold; pretend the odd items never had a training
    # interaction, so that the cold report has users to count.
    counts = data.item_popularity().copy()
    counts[1::2] = 0
    data.item_popularity = lambda: counts  # type: ignore[method-assign]
    checkpoint, _ = trained
    task = RecformerTask(_tiny(data.n_items), pretrained_checkpoint=str(checkpoint), ks=[10])
    trainer = _trainer(tmp_path, 1)
    metrics = trainer.test(task, datamodule=data, verbose=False)[0]
    record = json.loads((tmp_path / "test_metrics.json").read_text())
    data.setup()
    assert record["n_users"] == len(data.split.test) and record["model"] == "Recformer"
    cold_targets = counts[data.split.test.targets] == 0
    assert record["cold"]["n_users"] == int(cold_targets.sum()) > 0
    assert 0.0 <= record["cold"]["metrics"]["ndcg@10"] <= record["cold"]["metrics"]["recall@10"] <= 1.0
    assert task.model.item_table.shape == (201, 32) and torch.all(task.model.item_table[1:].norm(dim=1) > 0.99)
    assert 0.0 <= metrics["test/ndcg@10"] <= metrics["test/recall@10"] <= 1.0
    # Rankings are over the new catalogue only: ids in 1..200.
    evaluator = Evaluator(data.n_items, ks=[10])
    evaluator.prepare(task.model, data.split.test)
    batch = next(iter(data.test_dataloader()))
    ranked = evaluator.rank_batch(task.model.eval(), batch)
    assert ranked.topk.min() >= 1 and ranked.topk.max() <= 200
    # What transfers is the text: categories mean the same clusters in both catalogues.
    popularity = _popularity(_data(other))
    print("zero-shot", metrics, "popularity", popularity)
    assert metrics["test/ndcg@10"] > popularity["ndcg@10"], (metrics, popularity)


def test_cli_pretrains_then_finetunes_from_the_checkpoint_and_scoring_rebuilds_it(
    prepared_synthetic: Path, tmp_path: Path
) -> None:
    """The two stages as two `recsys fit` commands; the fine-tuning checkpoint alone rebuilds the model."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    tiny = ["--model.model.init_args.hidden_size", "32", "--model.model.init_args.n_layers", "1",
            "--data.init_args.max_len", "5", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "5",
            "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}

    def fit(config: str, root: Path, *extra: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "recsys.cli", "fit", "--config", str(repo / "configs/recformer" / config),
             "--data.path", str(prepared_synthetic), "--trainer.default_root_dir", str(root), *tiny, *extra],
            capture_output=True, text=True, env=env, timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]

    fit("synthetic-pretrain.yaml", tmp_path / "pre")
    pretrained = tmp_path / "pre" / "checkpoints" / "last.ckpt"
    fit("synthetic.yaml", tmp_path / "fine", "--model.pretrained_checkpoint", str(pretrained))
    record = json.loads(next((tmp_path / "fine").rglob("test_metrics.json")).read_text())
    assert record["model"] == "Recformer" and "full ranking" in record["protocol"]

    from recsys.scoring.checkpoint import load_model

    loaded = load_model(tmp_path / "fine" / "checkpoints" / "last.ckpt", n_items=300)
    model = loaded.model
    assert loaded.class_path == "recsys.models.Recformer" and model.has_item_tokens
    assert model.item_embeddings().shape == (301, 32) and float(model.item_embeddings()[1:].norm(dim=1).min()) > 0.99
    assert model.encode({"item_seq": torch.tensor([[0, 3, 4]])}).shape == (1, 32)
    # `recsys score` serves it unchanged: every user's top-K from the checkpoint alone
    import polars as pl_

    from recsys.scoring.runner import ScoreOptions, score

    score(ScoreOptions(ckpt=tmp_path / "fine" / "checkpoints" / "last.ckpt", data=prepared_synthetic,
                       out=tmp_path / "scores", k=5, device="cpu", progress=False))
    top = pl_.read_parquet(next((tmp_path / "scores").rglob("*.parquet")))
    assert {"user_id", "rank", "item_id", "score"} <= set(top.columns)
    assert top["rank"].max() == 5 and top["item_id"].str.starts_with("item-").all()


def test_concat_datasets_offsets_items_and_users(prepared_synthetic: Path) -> None:
    """Pre-training on several sources: the union is one contract-valid dataset, item ids offset per part."""
    from recsys.data import read_prepared
    from recsys.data.concat import ConcatDataModule

    data = ConcatDataModule([str(prepared_synthetic), str(prepared_synthetic)], max_len=5)
    one, both = read_prepared(prepared_synthetic), data.dataset
    assert (both.n_items, both.n_users) == (2 * one.n_items, 2 * one.n_users)
    assert both.items["text"][300] == one.items["text"][0] and both.items["item_id"][300] == "synthetic:item-1"
    second = both.interactions.filter(both.interactions["user_idx"] >= one.n_users)
    assert second["item_idx"].min() == 301 and second["item_idx"].to_list() == (one.interactions["item_idx"] + 300).to_list()
    data.setup()
    single = SequenceDataModule(str(prepared_synthetic), max_len=5)
    assert len(data.split.test) == 2 * len(single.split.test)
    assert np.array_equal(data.item_popularity(), np.r_[single.item_popularity(), single.item_popularity()[1:]])


def test_training_pairs_every_position_or_each_rows_last() -> None:
    from recsys.tasks.recformer import training_pairs

    batch = {"item_seq": torch.tensor([[0, 1, 2], [4, 5, 6]]), "targets": torch.tensor([[0, 2, 3], [5, 6, 7]])}
    history, target = training_pairs(batch, "all")
    assert target.tolist() == [2, 3, 5, 6, 7] and history[0].tolist() == [0, 0, 1]
    history, target = training_pairs(batch, "last")
    assert target.tolist() == [3, 7] and history.tolist() == [[0, 1, 2], [4, 5, 6]]
