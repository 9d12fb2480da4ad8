from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.semantic_ids import PrefixTrie, SemanticIds, TokenLayout, constrained_beam_search


@st.composite
def catalogues(draw: st.DrawFn) -> tuple[SemanticIds, TokenLayout]:
    """Random unique IDs: 1-4 levels of 1-5 codes, 1-30 items."""
    sizes = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    space = int(np.prod(sizes))
    keys = draw(st.lists(st.integers(0, space - 1), min_size=1, max_size=min(30, space), unique=True))
    codes = np.array(np.unravel_index(keys, sizes)).T.reshape(len(keys), len(sizes))
    ids = SemanticIds(np.concatenate([np.full((1, len(sizes)), -1), codes]), sizes)
    return ids, ids.layout()


def valid_tokens(ids: SemanticIds, layout: TokenLayout) -> set[tuple[int, ...]]:
    return {tuple(r) for r in ids.tokens(layout)[1:].tolist()}


@settings(max_examples=80, deadline=None)
@given(catalogues(), st.data())
def test_random_walk_ends_at_an_item(catalogue: tuple[SemanticIds, TokenLayout], data: st.DataObject) -> None:
    ids, layout = catalogue
    trie = PrefixTrie.from_semantic_ids(ids, layout, end_token=layout.eos_id)
    prefix = torch.zeros(1, 0, dtype=torch.long)
    for _ in range(ids.n_levels):
        allowed = trie.allowed_mask(prefix)[0].nonzero().flatten().tolist()
        assert allowed, "a valid prefix always has a continuation"
        token = data.draw(st.sampled_from(allowed))
        prefix = torch.cat([prefix, torch.tensor([[token]])], dim=1)
    item = int(trie.item_of(prefix)[0])
    assert 1 <= item <= ids.n_items
    assert tuple(ids.tokens(layout)[item]) == tuple(prefix[0].tolist())
    assert trie.allowed_mask(prefix)[0].nonzero().flatten().tolist() == [layout.eos_id]


@settings(max_examples=80, deadline=None)
@given(catalogues(), st.data())
def test_mask_matches_brute_force(catalogue: tuple[SemanticIds, TokenLayout], data: st.DataObject) -> None:
    ids, layout = catalogue
    trie = PrefixTrie.from_semantic_ids(ids, layout)
    valid = valid_tokens(ids, layout)
    t = data.draw(st.integers(0, ids.n_levels))
    prefixes = data.draw(st.lists(st.one_of(
        st.sampled_from(sorted(valid)).map(lambda s: s[:t]),  # in the trie
        st.lists(st.integers(0, layout.vocab_size - 1), min_size=t, max_size=t).map(tuple),  # mostly not
    ), min_size=1, max_size=8))
    mask = trie.allowed_mask(torch.tensor(prefixes, dtype=torch.long).reshape(len(prefixes), t))
    contains = trie.contains(torch.tensor(prefixes, dtype=torch.long).reshape(len(prefixes), t))
    for row, prefix in enumerate(prefixes):
        expected = {s[t] for s in valid if s[:t] == prefix and t < len(s)}
        assert set(mask[row].nonzero().flatten().tolist()) == expected
        assert bool(contains[row]) == any(s[:t] == prefix for s in valid)
    if t == ids.n_levels:
        items = trie.item_of(torch.tensor(prefixes, dtype=torch.long).reshape(len(prefixes), t)).tolist()
        assert [i != 0 for i in items] == [p in valid for p in prefixes]


@settings(max_examples=60, deadline=None)
@given(catalogues(), st.integers(1, 3), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_beam_search_returns_only_valid_distinct_items(catalogue: tuple[SemanticIds, TokenLayout], batch: int,
                                                       beam: int, seed: int) -> None:
    ids, layout = catalogue
    trie = PrefixTrie.from_semantic_ids(ids, layout)
    gen = torch.Generator().manual_seed(seed)
    k = max(1, beam - 1)
    result = constrained_beam_search(lambda p: torch.randn(p.shape[0], layout.vocab_size, generator=gen) * 5,
                                     trie, batch_size=batch, beam_width=beam, k=k)
    assert result.items.shape == result.scores.shape == (batch, k)
    n_found = min(k, ids.n_items)
    for row in range(batch):
        items = result.items[row].tolist()
        assert all(1 <= i <= ids.n_items for i in items[:n_found])
        assert len(set(items[:n_found])) == n_found
        assert all(i == 0 for i in items[n_found:]) and torch.isinf(result.scores[row, n_found:]).all()
        for i, item in enumerate(items[:n_found]):
            assert tuple(result.tokens[row, i].tolist()) == tuple(ids.tokens(layout)[item])
        assert (result.scores[row, :-1] >= result.scores[row, 1:]).all()


@settings(max_examples=40, deadline=None)
@given(catalogues(), st.integers(0, 2**31 - 1))
def test_wide_beam_is_exact(catalogue: tuple[SemanticIds, TokenLayout], seed: int) -> None:
    """With a beam as wide as the catalogue nothing is pruned, so the top-k is the true top-k."""
    ids, layout = catalogue
    trie = PrefixTrie.from_semantic_ids(ids, layout)
    logits = torch.randn(ids.n_levels, layout.vocab_size, generator=torch.Generator().manual_seed(seed))
    logp = torch.log_softmax(logits, -1)
    result = constrained_beam_search(lambda p: logits[p.shape[1]].expand(p.shape[0], -1), trie, 1,
                                     beam_width=ids.n_items, k=ids.n_items)
    tokens = torch.as_tensor(ids.tokens(layout)[1:])
    truth = logp[torch.arange(ids.n_levels), tokens].sum(1)
    torch.testing.assert_close(result.scores[0], truth.sort(descending=True).values)
    torch.testing.assert_close(truth[result.items[0] - 1], result.scores[0])


def test_prefix_allowed_tokens_fn_for_transformers() -> None:
    ids = SemanticIds.from_codes(np.array([[0, 1], [0, 2], [1, 1]]), 3)
    layout = ids.layout()
    trie = PrefixTrie.from_semantic_ids(ids, layout, end_token=layout.eos_id)
    fn = trie.prefix_allowed_tokens_fn(n_leading=1)
    start = layout.pad_id
    assert fn(0, torch.tensor([start])) == [layout.token(0, 0), layout.token(0, 1)]
    assert fn(0, torch.tensor([start, layout.token(0, 0)])) == [layout.token(1, 1), layout.token(1, 2)]
    full = [start, *ids.tokens(layout)[2].tolist()]
    assert fn(0, torch.tensor(full)) == [layout.eos_id]
    assert fn(0, torch.tensor([start, layout.token(0, 2)])) == [layout.pad_id]  # no item: fallback


def test_trie_refuses_duplicates_and_bad_tokens() -> None:
    with pytest.raises(ValueError, match="share"):
        PrefixTrie(np.array([[1, 2], [1, 2]]), None, vocab_size=4)
    with pytest.raises(ValueError, match="0..3"):
        PrefixTrie(np.array([[1, 4]]), None, vocab_size=4)


def test_beam_needs_k_within_width() -> None:
    trie = PrefixTrie(np.array([[1, 2]]), None, vocab_size=4)
    with pytest.raises(ValueError):
        constrained_beam_search(lambda p: torch.zeros(p.shape[0], 4), trie, 1, beam_width=2, k=3)


def test_transformers_generate_stays_on_items() -> None:
    from transformers import T5Config, T5ForConditionalGeneration

    ids = SemanticIds.from_codes(np.random.default_rng(0).integers(0, 4, (40, 3)), 4)
    layout = ids.layout()
    trie = PrefixTrie.from_semantic_ids(ids, layout, end_token=layout.eos_id)
    torch.manual_seed(0)
    config = T5Config(vocab_size=layout.vocab_size, d_model=16, d_ff=32, num_layers=1, num_decoder_layers=1,
                      num_heads=2, d_kv=8, pad_token_id=layout.pad_id, eos_token_id=layout.eos_id,
                      decoder_start_token_id=layout.pad_id)
    model = T5ForConditionalGeneration(config).eval()
    out = model.generate(input_ids=torch.randint(3, layout.vocab_size, (2, 5)), num_beams=6, num_return_sequences=6,
                         max_new_tokens=ids.n_levels + 1, do_sample=False,
                         prefix_allowed_tokens_fn=trie.prefix_allowed_tokens_fn(n_leading=1))
    items = trie.item_of(out[:, 1:1 + ids.n_levels]).view(2, 6)
    assert (items > 0).all()
    assert all(len(set(row.tolist())) == 6 for row in items)
