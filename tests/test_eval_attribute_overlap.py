"""AttributeOverlapModel: a content baseline from item attributes alone, to the retrieval contract."""

from __future__ import annotations

import polars as pl
import pytest
import torch

from recsys.eval import AttributeOverlapModel


def _model() -> AttributeOverlapModel:
    # attribute 0 is on every item (no information), 1 on items 1-2, 2 on item 3 only, 3 on items 3-4
    return AttributeOverlapModel([None, [0, 1], [0, 1], [0, 2, 3], [0, 3]])


def test_items_sharing_rare_attributes_rank_first() -> None:
    model = _model()
    scores = model.encode({"item_seq": torch.tensor([[0, 3]])}) @ model.item_embeddings().T
    # item 3 itself, then 4 (shares attribute 3); 1 and 2 share only the ubiquitous attribute 0 (IDF 0)
    assert scores[0, 3] > scores[0, 4] > 0
    assert scores[0, 1] == scores[0, 2] == 0
    assert torch.allclose(model.item_embeddings()[1:].norm(dim=1), torch.ones(4))


def test_newer_history_items_weigh_more() -> None:
    model = AttributeOverlapModel([None, [0, 1], [0, 1], [0, 2, 3], [0, 3]], decay=0.5)
    scores = model.encode({"item_seq": torch.tensor([[0, 1, 4], [0, 4, 1]])}) @ model.item_embeddings().T
    assert scores[0, 4] > scores[0, 2] and scores[1, 2] > scores[1, 4]


def test_padding_adds_nothing() -> None:
    model = _model()
    padded = model.encode({"item_seq": torch.tensor([[0, 0, 3]])})
    assert torch.equal(padded, model.encode({"item_seq": torch.tensor([[3]])}))


def test_from_a_prepared_items_table_and_bad_input() -> None:
    items = pl.DataFrame({"item_idx": [2, 1], "attributes": [[0, 3], [0, 1]]})
    model = AttributeOverlapModel.from_items(items)
    assert model.item_embeddings().shape == (3, 4)
    assert model.item_embeddings()[2, 3] > 0 and model.item_embeddings()[1, 1] > 0
    with pytest.raises(ValueError, match="'attributes'"):
        AttributeOverlapModel.from_items(pl.DataFrame({"item_idx": [1], "text": ["a"]}))
    with pytest.raises(ValueError, match="decay"):
        AttributeOverlapModel([None, [1]], decay=0)
    with pytest.raises(ValueError, match="no item"):
        AttributeOverlapModel([None, [], None])
