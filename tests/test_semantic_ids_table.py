from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from recsys.semantic_ids import (
    RQKMeans,
    SemanticIds,
    TokenLayout,
    add_collision_digit,
    collision_groups,
    semantic_id_report,
)

small_codes = st.integers(1, 4).flatmap(
    lambda levels: arrays(np.int64, st.tuples(st.integers(0, 40), st.just(levels)), elements=st.integers(0, 3)))


@settings(max_examples=60, deadline=None)
@given(small_codes)
def test_collision_digit_makes_ids_unique(codes: np.ndarray) -> None:
    full, size = add_collision_digit(codes)
    assert full.shape == (codes.shape[0], codes.shape[1] + 1)
    np.testing.assert_array_equal(full[:, :-1], codes)
    assert len({tuple(r) for r in full}) == len(full)
    _, sizes = collision_groups(codes)
    assert size == (sizes.max() if len(sizes) else 1)
    for row in range(len(codes)):  # the digit counts earlier items with the same codes
        earlier = (codes[:row] == codes[row]).all(1).sum()
        assert full[row, -1] == earlier


@settings(max_examples=60, deadline=None)
@given(small_codes, st.integers(0, 2**16))
def test_collision_digit_by_priority_gives_zero_to_the_highest(codes: np.ndarray, seed: int) -> None:
    priority = np.random.default_rng(seed).integers(0, 3, len(codes))  # ties on purpose
    full, size = add_collision_digit(codes, priority)
    np.testing.assert_array_equal(full[:, :-1], codes)
    assert len({tuple(r) for r in full}) == len(full)
    assert size == add_collision_digit(codes)[1]
    for row in range(len(codes)):  # the digit counts group members ahead: higher priority, or equal and earlier
        same = (codes == codes[row]).all(1)
        ahead = same & ((priority > priority[row]) | ((priority == priority[row]) & (np.arange(len(codes)) < row)))
        assert full[row, -1] == ahead.sum()


def test_collision_priority_must_have_one_value_per_row() -> None:
    with pytest.raises(ValueError, match="one per code row"):
        add_collision_digit(np.zeros((3, 2), np.int64), np.zeros(2))


@settings(max_examples=40, deadline=None)
@given(small_codes)
def test_semantic_ids_round_trip(codes: np.ndarray) -> None:
    ids = SemanticIds.from_codes(codes, 4)
    assert ids.n_items == len(codes) and ids.n_levels == codes.shape[1] + 1
    assert (ids.codes[0] == -1).all()
    np.testing.assert_array_equal(ids.items_of(ids.codes[1:]), np.arange(1, len(codes) + 1))
    for item in range(1, len(codes) + 1):
        assert ids.item_of(ids.codes[item]) == item
    assert ids.item_of([9] * ids.n_levels) == 0  # out of range
    tokens = ids.tokens()
    assert (tokens[0] == 0).all()
    np.testing.assert_array_equal(ids.layout().decode(tokens[1:]), ids.codes[1:])


@pytest.mark.parametrize("kind", ["random", "clustered"])
def test_round_trip_from_embeddings(kind: str) -> None:
    rng = np.random.default_rng(0)
    if kind == "random":
        x = rng.normal(size=(300, 8)).astype(np.float32)
    else:  # few tight clusters + exact duplicates: many collisions before the digit
        x = np.repeat(rng.normal(size=(20, 8)), 15, axis=0).astype(np.float32)
    codes = RQKMeans(n_levels=2, n_codes=8).fit(x).encode(x)
    ids = SemanticIds.from_codes(codes, 8)
    assert len({tuple(r) for r in ids.codes[1:]}) == 300
    np.testing.assert_array_equal(ids.items_of(ids.codes[1:]), np.arange(1, 301))
    if kind == "clustered":
        assert ids.collision_size >= 15


def test_unknown_tuples_map_to_no_item() -> None:
    ids = SemanticIds.from_codes(np.array([[0, 1], [1, 0], [0, 1]]), 2)
    assert ids.level_sizes == (2, 2, 2)
    got = ids.items_of(np.array([[0, 1, 0], [0, 1, 1], [1, 0, 0], [1, 1, 0], [1, 0, 1], [-1, 0, 0]]))
    np.testing.assert_array_equal(got, [1, 3, 2, 0, 0, 0])


def test_duplicate_ids_refused() -> None:
    with pytest.raises(ValueError, match="share an ID"):
        SemanticIds(np.array([[-1, -1], [0, 1], [0, 1]]), [2, 2])
    with pytest.raises(ValueError, match="out of range"):
        SemanticIds(np.array([[-1, -1], [0, 2]]), [2, 2])


def test_state_dict_survives_weights_only_load(tmp_path: Path) -> None:
    ids = SemanticIds.from_codes(np.random.default_rng(1).integers(0, 5, (50, 3)), 5)
    layout = ids.layout()
    torch.save({"semantic_ids": ids.state_dict(), "layout": layout.state_dict()}, tmp_path / "ckpt.pt")
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    back = SemanticIds.from_state_dict(state["semantic_ids"])
    np.testing.assert_array_equal(back.codes, ids.codes)
    assert back.level_sizes == ids.level_sizes
    assert TokenLayout.from_state_dict(state["layout"]) == layout
    loaded = SemanticIds.load(ids.save(tmp_path / "ids.npz"))
    np.testing.assert_array_equal(loaded.codes, ids.codes)
    assert loaded.level_sizes == ids.level_sizes


def test_token_layout() -> None:
    layout = TokenLayout((4, 4, 3))
    assert (layout.pad_id, layout.eos_id, layout.bos_id) == (0, 1, 2)
    assert layout.offsets == (3, 7, 11) and layout.vocab_size == 14
    assert layout.token(1, 2) == 9 and layout.level_code(9) == (1, 2)
    assert layout.level_code(13) == (2, 2)
    for bad in (0, 2, 14):
        with pytest.raises(ValueError):
            layout.level_code(bad)
    with pytest.raises(ValueError):
        layout.token(2, 3)
    codes = np.array([[3, 0, 2], [0, 3, 0]])
    tokens = layout.encode(codes)
    np.testing.assert_array_equal(tokens, [[6, 7, 13], [3, 10, 11]])
    np.testing.assert_array_equal(layout.decode(tokens), codes)
    torch.testing.assert_close(layout.encode(torch.tensor(codes)), torch.tensor(tokens))
    np.testing.assert_array_equal(layout.encode(codes[:, :2]), tokens[:, :2])  # prefixes too
    with pytest.raises(ValueError):
        layout.decode(np.array([[7, 7, 13]]))  # level-1 token in level 0's place
    assert TokenLayout((4,), ("<pad>", "<eos>", "<bos>", "<user>")).offsets == (4,)
    with pytest.raises(ValueError, match="pad"):
        TokenLayout((4,), ("<eos>", "<pad>"))


def test_report_figures() -> None:
    codes = np.array([[0, 0], [0, 1], [1, 0], [1, 0], [2, 0], [3, 0], [1, 0], [2, 1]])
    x = np.ones((8, 2), np.float32)
    rec = x.copy()
    rec[0] = 0.0
    report = semantic_id_report("toy", codes, 4, x, rec, seconds=1.5, extra={"distinct_texts": 7})
    assert report.levels[0].used == 4 and report.levels[0].usage == 1.0
    assert report.levels[1].used == 2 and report.levels[1].usage == 0.5
    p = np.array([2, 3, 2, 1]) / 8
    assert math.isclose(report.levels[0].perplexity, float(np.exp(-(p * np.log(p)).sum())), rel_tol=1e-9)
    assert report.unique_tuples == 6
    assert report.max_collision == 3 and math.isclose(report.collision_rate, 3 / 8)
    assert math.isclose(report.mse, 2 / 8) and math.isclose(report.relative_error, (2 / 8) / 2)
    assert json.loads(json.dumps(report.to_dict()))["levels"][1]["used"] == 2
    md = report.to_markdown()
    assert "| 1 | 2 / 4 | 0.500 |" in md and "distinct_texts: 7" in md
    uniform = semantic_id_report("u", np.arange(8)[:, None], 8, x, x)
    assert math.isclose(uniform.levels[0].perplexity, 8.0) and uniform.collision_rate == 0.0
