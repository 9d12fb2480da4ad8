"""`train_exclude_seen`: each training position's softmax leaves out the items it has already seen in its
window, packed or not; `train_seen_margin` keeps them, scored higher; the task refuses the losses and models
neither applies to."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recsys.losses import FullSoftmaxCE, SampledSoftmax
from recsys.models import BERT4Rec, SASRec
from recsys.tasks.retrieval import RetrievalTask, earlier_items


def test_earlier_items_by_hand() -> None:
    item_seq = torch.tensor([[0, 3, 5, 7], [4, 9, 2, 6]])
    segments = torch.tensor([[0, 1, 1, 1], [2, 2, 1, 1]])  # row 1 packs two windows: (4, 9) and (2, 6)
    plain = earlier_items(item_seq)
    assert plain[0].tolist() == [[0, 0, 0, 0], [0, 3, 0, 0], [0, 3, 5, 0], [0, 3, 5, 7]]
    packed = earlier_items(item_seq, segments)
    assert packed[1].tolist() == [[4, 0, 0, 0], [4, 9, 0, 0], [0, 0, 2, 0], [0, 0, 2, 6]]


def test_packed_and_plain_batches_exclude_the_same_items(prepared_synthetic: Path) -> None:
    from recsys.data import SequenceDataModule

    def batch(pack: bool) -> dict[str, torch.Tensor]:
        data = SequenceDataModule(str(prepared_synthetic), max_len=20, batch_size=64, packed=pack, seed=3)
        return next(iter(data.train_dataloader()))

    plain, packed = batch(False), batch(True)

    def seen_per_target(b: dict[str, torch.Tensor]) -> list[tuple[int, ...]]:
        mask = b["targets"] > 0
        earlier = earlier_items(b["item_seq"], b.get("segments"))[mask]
        rows = [(int(t), *sorted(int(i) for i in row if i > 0)) for t, row in zip(b["targets"][mask], earlier, strict=True)]
        return sorted(rows)

    assert seen_per_target(plain) == seen_per_target(packed)
    # every target position has seen at least its own input item, and never more than the window holds
    counts = (earlier_items(plain["item_seq"])[plain["targets"] > 0] > 0).sum(dim=1).numpy()
    assert counts.min() >= 1 and counts.max() <= 20


@pytest.mark.parametrize(
    ("option", "loss_extra", "against_plain"),
    [
        ({"train_exclude_seen": True}, {}, -1),  # fewer competitors: lower loss
        ({"train_seen_margin": 2.0}, {"exclude_offset": 2.0}, 1),  # stronger competitors: higher loss
    ],
)
def test_training_step_applies_the_seen_items_option_to_the_loss(
    prepared_synthetic: Path, option: dict, loss_extra: dict, against_plain: int
) -> None:
    from recsys.data import SequenceDataModule

    torch.manual_seed(0)
    data = SequenceDataModule(str(prepared_synthetic), max_len=20, batch_size=64, packed=True, seed=3)
    batch = next(iter(data.train_dataloader()))
    model = SASRec(n_items=300, hidden_size=16, max_len=20).eval()
    plain, seen_aware = RetrievalTask(model), RetrievalTask(model, **option)
    for task in (plain, seen_aware):
        task.log = lambda *args, **kwargs: None
    with torch.no_grad():
        hidden = model(batch["item_seq"], batch["segments"], batch["positions"])
        mask = batch["targets"] > 0
        by_hand = FullSoftmaxCE()(hidden[mask], batch["targets"][mask], model.item_embeddings(),
                                  exclude=earlier_items(batch["item_seq"], batch["segments"])[mask], **loss_extra)
        got = seen_aware.training_step(batch, 0).item()
        assert got == pytest.approx(by_hand.item(), rel=1e-6)
        assert (got - plain.training_step(batch, 0).item()) * against_plain > 0


@pytest.mark.parametrize("option", [{"train_exclude_seen": True}, {"train_seen_margin": 1.0}])
def test_refuses_sampled_losses_and_bidirectional_models(option: dict) -> None:
    with pytest.raises(ValueError, match="FullSoftmaxCE"):
        RetrievalTask(SASRec(n_items=10, hidden_size=8, max_len=5), loss=SampledSoftmax(4), **option)
    with pytest.raises(ValueError, match="causal"):
        RetrievalTask(BERT4Rec(n_items=10, hidden_size=8, max_len=5), **option)


def test_margin_and_exclusion_are_exclusive_and_the_margin_not_negative() -> None:
    with pytest.raises(ValueError, match="choose one"):
        RetrievalTask(SASRec(n_items=10, hidden_size=8, max_len=5), train_exclude_seen=True, train_seen_margin=1.0)
    with pytest.raises(ValueError, match=">= 0"):
        RetrievalTask(SASRec(n_items=10, hidden_size=8, max_len=5), train_seen_margin=-1.0)
