"""Less padding: packed training batches (the models compute exactly what they compute unpacked) and evaluation
batches ordered by history length (the metrics do not change)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recsys.data.collate import pack_windows


def test_pack_windows_by_hand() -> None:
    item_seq = np.array([[0, 0, 0, 7, 8], [0, 0, 0, 0, 9], [0, 4, 5, 6, 3], [0, 0, 1, 2, 3]])
    targets = item_seq * 10
    out = pack_windows(item_seq, targets, width=5)
    # first-fit by decreasing length: 4 items open row 0, 3 items open row 1, 2 items join row 1, 1 item row 0
    np.testing.assert_array_equal(out["item_seq"], [[9, 4, 5, 6, 3], [7, 8, 1, 2, 3]])
    np.testing.assert_array_equal(out["segments"], [[2, 1, 1, 1, 1], [2, 2, 1, 1, 1]])
    np.testing.assert_array_equal(out["positions"], [[0, 3, 2, 1, 0], [1, 0, 2, 1, 0]])
    np.testing.assert_array_equal(out["targets"], out["item_seq"] * 10)


def test_pack_windows_keeps_every_item_once_within_the_width() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 21, size=200)
    item_seq = np.zeros((200, 20), dtype=np.int64)
    for row, n in enumerate(lengths):
        item_seq[row, 20 - n :] = rng.integers(1, 1000, size=n)
    out = pack_windows(item_seq, item_seq, width=20)
    assert out["item_seq"].shape[1] <= 20 and out["item_seq"].shape[0] < 200 * 0.7
    assert sorted(out["item_seq"][out["item_seq"] > 0]) == sorted(item_seq[item_seq > 0])
    assert (out["segments"] > 0).sum() == lengths.sum()
    assert out["positions"].max() < 20


def _collated(prepared: Path, objective: str, pack: bool) -> dict[str, torch.Tensor]:
    from recsys.data import SequenceDataModule

    data = SequenceDataModule(str(prepared), max_len=20, batch_size=64, objective=objective, packed=pack, seed=3)
    return next(iter(data.train_dataloader()))


@pytest.mark.parametrize(
    ("objective", "options"), [("causal", {}), ("causal", {"reference_block": True}), ("cloze", {})]
)
def test_packed_batches_give_the_same_outputs_and_loss(
    prepared_synthetic: Path, objective: str, options: dict
) -> None:
    from recsys.losses import FullSoftmaxCE
    from recsys.models import BERT4Rec, SASRec

    torch.manual_seed(0)
    model = (SASRec if objective == "causal" else BERT4Rec)(n_items=300, hidden_size=32, max_len=20, **options)
    model.eval()
    plain, packed = _collated(prepared_synthetic, objective, False), _collated(prepared_synthetic, objective, True)
    assert packed["item_seq"].shape[0] < plain["item_seq"].shape[0]  # fewer rows to compute
    with torch.no_grad():
        h_plain = model(plain["item_seq"])
        h_packed = model(packed["item_seq"], packed["segments"], packed["positions"])
    # The same targets in another order: match them up by sorting (target item, then the hidden state itself).
    t_plain, t_packed = plain["targets"], packed["targets"]
    assert sorted(t_plain[t_plain > 0].tolist()) == sorted(t_packed[t_packed > 0].tolist())
    a, b = h_plain[t_plain > 0], h_packed[t_packed > 0]
    key_a = torch.cat([t_plain[t_plain > 0, None].float(), a], dim=1)
    key_b = torch.cat([t_packed[t_packed > 0, None].float(), b], dim=1)
    order_a = np.lexsort(key_a.numpy().T[::-1])
    order_b = np.lexsort(key_b.numpy().T[::-1])
    torch.testing.assert_close(a[order_a], b[order_b], rtol=1e-4, atol=1e-5)
    loss = FullSoftmaxCE()
    table = model.item_embeddings()
    torch.testing.assert_close(
        loss(a, t_plain[t_plain > 0], table), loss(b, t_packed[t_packed > 0], table), rtol=1e-5, atol=1e-6
    )


def test_packed_rejects_models_and_windows_that_cannot_use_it(prepared_synthetic: Path) -> None:
    from recsys.data import SequenceDataModule

    data = SequenceDataModule(str(prepared_synthetic), max_len=20, packed=True, train_windows="every")
    with pytest.raises(ValueError, match="packed"):
        data.train_dataloader()


def test_evaluation_batches_go_shortest_first_and_give_the_same_metrics(prepared_synthetic: Path) -> None:
    from torch.utils.data import DataLoader

    from recsys.data import SequenceDataModule
    from recsys.data.collate import EvalCollator
    from recsys.eval import Evaluator, SampledRanking
    from recsys.models import SASRec

    data = SequenceDataModule(str(prepared_synthetic), max_len=20, eval_batch_size=100)
    split = data.eval_split("test")
    sorted_rows = [int(r) for b in data.test_dataloader() for r in b["row"]]
    lengths = np.minimum(split.history.lengths[sorted_rows], 20)
    assert sorted(sorted_rows) == list(range(len(split))) and (np.diff(lengths) >= 0).all()
    assert [int(r) for b in data.predict_dataloader() for r in b["row"]] == list(range(len(split)))
    in_order = DataLoader(list(range(len(split))), batch_size=100, collate_fn=EvalCollator(split, 20))
    torch.manual_seed(0)
    model = SASRec(n_items=data.n_items, hidden_size=32, max_len=20)
    for protocol in (None, SampledRanking(n_negatives=50)):
        evaluator = Evaluator(n_items=data.n_items, ks=(5, 10), protocol=protocol)
        a = evaluator.evaluate(model, data.test_dataloader(), split).metrics
        b = evaluator.evaluate(model, in_order, split).metrics
        assert a == pytest.approx(b, abs=1e-6)


def test_limited_evaluation_keeps_the_first_users_in_split_order(prepared_synthetic: Path) -> None:
    from types import SimpleNamespace

    from recsys.data import SequenceDataModule

    data = SequenceDataModule(str(prepared_synthetic), max_len=20, eval_batch_size=64)
    data.trainer = SimpleNamespace(world_size=1, global_rank=0, limit_val_batches=3, limit_test_batches=0.5)
    val_rows = [int(r) for b in data.val_dataloader() for r in b["row"]]
    assert sorted(val_rows) == list(range(3 * 64))  # what Lightning's limit took before the sorting, reordered
    test_rows = [int(r) for b in data.test_dataloader() for r in b["row"]]
    assert sorted(test_rows) == list(range(int(16 * 0.5) * 64))  # 1,000 users = 16 batches of 64


def test_val_users_validates_a_seeded_random_sample_and_leaves_the_test_whole(prepared_synthetic: Path) -> None:
    from types import SimpleNamespace

    from recsys.data import SequenceDataModule

    data = SequenceDataModule(str(prepared_synthetic), max_len=20, eval_batch_size=64, val_users=200, seed=3)
    data.trainer = SimpleNamespace(world_size=1, global_rank=0, limit_val_batches=None, limit_test_batches=None)
    first = [int(r) for b in data.val_dataloader() for r in b["row"]]
    again = [int(r) for b in data.val_dataloader() for r in b["row"]]
    assert len(set(first)) == 200 and first == again  # the same users every validation pass
    assert max(first) > 500 and sorted(first) != list(range(200))  # drawn from the whole split, not its head
    other = SequenceDataModule(str(prepared_synthetic), max_len=20, eval_batch_size=64, val_users=200, seed=4)
    other.trainer = data.trainer
    assert sorted(first) != sorted(int(r) for b in other.val_dataloader() for r in b["row"])
    assert sorted(int(r) for b in data.test_dataloader() for r in b["row"]) == list(range(len(data.split.test)))
    shards = []
    for rank in (0, 1):  # two ranks split the same sample between them, no user twice
        data.trainer = SimpleNamespace(world_size=2, global_rank=rank, limit_val_batches=None)
        shards.append([int(r) for b in data.val_dataloader() for r in b["row"]])
    assert sorted(shards[0] + shards[1]) == sorted(first)
    with pytest.raises(ValueError, match="val_users=0"):
        SequenceDataModule(str(prepared_synthetic), val_users=0)
