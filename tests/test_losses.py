"""Each loss against its formula written out by hand, plus the sampling guarantees the losses rely on."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.losses import BCE, GBCE, FullSoftmaxCE, SampledSoftmax

N_ITEMS, D, P = 7, 5, 6


@pytest.fixture
def toy() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(P, D, generator=g, dtype=torch.float64)
    table = torch.randn(N_ITEMS + 1, D, generator=g, dtype=torch.float64)
    table[0] = 0.0
    targets = torch.tensor([1, 2, 3, 7, 7, 4])
    return hidden, targets, table


def dot(hidden: torch.Tensor, table: torch.Tensor, p: int, item: int) -> float:
    return sum(float(hidden[p, k]) * float(table[item, k]) for k in range(hidden.shape[1]))


# row p excludes EXCLUDE[p] (0 = nothing); row 3 lists its own target 7, which must stay a class
EXCLUDE = torch.tensor([[2, 3], [0, 0], [1, 0], [7, 6], [5, 5], [0, 1]])


def allowed_scores(
    hidden: torch.Tensor, table: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor, p: int
) -> dict[int, float]:
    """Row p's scores over the items its softmax keeps: all but its excluded ones, never its own target."""
    dropped = {int(i) for i in exclude[p] if int(i) not in (0, int(targets[p]))}
    return {i: dot(hidden, table, p, i) for i in range(1, N_ITEMS + 1) if i not in dropped}


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def test_full_softmax_ce_matches_hand_softmax(toy):
    hidden, targets, table = toy
    expected = 0.0
    for p in range(P):
        scores = [dot(hidden, table, p, i) for i in range(1, N_ITEMS + 1)]  # padding is never a class
        t = int(targets[p])
        expected += -(scores[t - 1] - math.log(sum(math.exp(s) for s in scores)))
    expected /= P
    assert FullSoftmaxCE()(hidden, targets, table).item() == pytest.approx(expected, rel=1e-9)


def hand_sampled_softmax(hidden, targets, table, negatives, log_q) -> float:
    total = 0.0
    for p in range(P):
        t = int(targets[p])
        row_negs = negatives.tolist() if negatives.dim() == 1 else negatives[p].tolist()
        z_pos = dot(hidden, table, p, t) - log_q(t)
        z_negs = [dot(hidden, table, p, n) - log_q(n) for n in row_negs if n != t]  # accidental hits dropped
        total += -(z_pos - math.log(math.exp(z_pos) + sum(math.exp(z) for z in z_negs)))
    return total / P


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("logq", [True, False])
def test_sampled_softmax_matches_hand_formula_popularity(toy, shared, logq):
    hidden, targets, table = toy
    counts = torch.tensor([99, 5, 1, 3, 8, 2, 4, 10])  # count of padding is ignored
    probs = [0.0] + [c / 33 for c in counts[1:].tolist()]
    negatives = torch.tensor([7, 2, 2, 5]) if shared else torch.randint(1, N_ITEMS + 1, (P, 4))
    loss = SampledSoftmax(n_negatives=4, sampling="popularity", logq_correction=logq, shared_negatives=shared)
    loss.set_item_popularity(counts)
    got = loss._loss_with_negatives(hidden, targets, table, negatives).item()
    expected = hand_sampled_softmax(
        hidden, targets, table, negatives, (lambda i: math.log(probs[i])) if logq else (lambda i: 0.0)
    )
    assert got == pytest.approx(expected, rel=1e-6)


def test_uniform_logq_is_a_constant_that_cancels(toy):
    hidden, targets, table = toy
    negatives = torch.tensor([3, 5, 6, 1])
    with_q = SampledSoftmax(4, logq_correction=True)._loss_with_negatives(hidden, targets, table, negatives)
    without = SampledSoftmax(4, logq_correction=False)._loss_with_negatives(hidden, targets, table, negatives)
    assert with_q.item() == pytest.approx(without.item(), rel=1e-6)


@settings(max_examples=25, deadline=None)
@given(n_items=st.integers(2, 30), rows=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_sampled_softmax_with_every_item_as_negative_is_the_full_softmax(n_items, rows, seed):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(rows, 4, generator=g, dtype=torch.float64)
    table = torch.randn(n_items + 1, 4, generator=g, dtype=torch.float64)
    targets = torch.randint(1, n_items + 1, (rows,), generator=g)
    every_item = torch.arange(1, n_items + 1)
    sampled = SampledSoftmax(n_items)._loss_with_negatives(hidden, targets, table, every_item)
    assert sampled.item() == pytest.approx(FullSoftmaxCE()(hidden, targets, table).item(), rel=1e-9)


def hand_bce(hidden, targets, table, negatives, beta: float) -> float:
    total = 0.0
    for p in range(P):
        t = int(targets[p])
        row_negs = negatives.tolist() if negatives.dim() == 1 else negatives[p].tolist()
        term = -beta * log_sigmoid(dot(hidden, table, p, t))  # = -log(sigmoid(s+) ** beta)
        for n in row_negs:
            if n != t:
                term += -math.log(1.0 - math.exp(log_sigmoid(dot(hidden, table, p, n))))
        total += term
    return total / P


@pytest.mark.parametrize("shared", [True, False])
def test_bce_matches_hand_formula(toy, shared):
    hidden, targets, table = toy
    negatives = torch.tensor([7, 1, 4]) if shared else torch.tensor([[2], [2], [3], [5], [1], [6]])
    loss = BCE(n_negatives=negatives.shape[-1], shared_negatives=shared)
    got = loss._loss_with_negatives(hidden, targets, table, negatives).item()
    assert got == pytest.approx(hand_bce(hidden, targets, table, negatives, beta=1.0), rel=1e-9)


@pytest.mark.parametrize("t", [0.0, 0.5, 0.75, 1.0])
def test_gbce_matches_hand_formula(toy, t):
    hidden, targets, table = toy
    negatives = torch.tensor([7, 1, 4])
    alpha = 3 / (N_ITEMS - 1)
    beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha)
    got = GBCE(n_negatives=3, t=t)._loss_with_negatives(hidden, targets, table, negatives).item()
    assert got == pytest.approx(hand_bce(hidden, targets, table, negatives, beta=beta), rel=1e-9)


def test_gbce_limits_of_t(toy):
    hidden, targets, table = toy
    negatives = torch.tensor([7, 1, 4])
    assert GBCE(3, t=0.0).beta(N_ITEMS) == pytest.approx(1.0)  # no calibration: plain BCE
    assert GBCE(3, t=1.0).beta(N_ITEMS) == pytest.approx(3 / (N_ITEMS - 1))  # full calibration: beta = alpha
    plain = BCE(3, shared_negatives=True)._loss_with_negatives(hidden, targets, table, negatives)
    t0 = GBCE(3, t=0.0)._loss_with_negatives(hidden, targets, table, negatives)
    assert t0.item() == pytest.approx(plain.item(), rel=1e-12)


def test_gbce_positive_term_is_stable_for_extreme_scores():
    hidden = torch.tensor([[-200.0], [200.0]], requires_grad=True)
    table = torch.tensor([[0.0], [1.0], [-1.0]])
    loss = GBCE(n_negatives=1, t=0.75)._loss_with_negatives(hidden, torch.tensor([1, 1]), table, torch.tensor([2]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(hidden.grad).all()
    # Row 0: beta * 200 from the positive plus softplus(200) from the negative, both exact.
    beta = GBCE(1, t=0.75).beta(2)
    assert loss.item() == pytest.approx((beta * 200 + 200 + 2 * math.log1p(math.exp(-200))) / 2, rel=1e-6)


def test_accidental_hit_only_negatives_leave_a_finite_loss():
    hidden = torch.randn(3, 4, requires_grad=True)
    table = torch.randn(6, 4, requires_grad=True)
    targets = torch.tensor([2, 2, 2])
    negatives = torch.tensor([2, 2])
    for loss in (SampledSoftmax(2), BCE(2, shared_negatives=True), GBCE(2)):
        value = loss._loss_with_negatives(hidden, targets, table, negatives)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(hidden.grad).all() and torch.isfinite(table.grad).all()


LOSSES = [
    FullSoftmaxCE(),
    SampledSoftmax(16),
    SampledSoftmax(16, shared_negatives=False),
    SampledSoftmax(16, sampling="popularity"),
    BCE(),
    BCE(4, sampling="popularity"),
    GBCE(16),
    GBCE(16, shared_negatives=False),
]


@pytest.mark.parametrize("loss", LOSSES, ids=lambda m: repr(m).split("(")[0] + str(id(m) % 97))
def test_forward_gives_finite_gradients_and_ignores_padding_row(loss):
    torch.manual_seed(0)
    n_items = 50
    counts = torch.arange(n_items + 1)
    loss.set_item_popularity(counts)  # the hook every loss accepts
    hidden = (torch.randn(32, 8) * 10).requires_grad_()
    table = torch.randn(n_items + 1, 8).requires_grad_()
    targets = torch.randint(1, n_items + 1, (32,))
    value = loss(hidden, targets, table)
    value.backward()
    assert value.dim() == 0 and torch.isfinite(value)
    assert torch.isfinite(hidden.grad).all() and torch.isfinite(table.grad).all()
    assert (table.grad[0] == 0).all()  # padding is never a class nor a negative


@pytest.mark.parametrize("sampling", ["uniform", "popularity"])
@pytest.mark.parametrize("shared", [True, False])
def test_sampling_never_draws_padding_and_is_reproducible(sampling, shared):
    loss = SampledSoftmax(n_negatives=500, sampling=sampling, shared_negatives=shared)
    loss.set_item_popularity(torch.tensor([1000, 1, 0, 3, 1]))
    torch.manual_seed(1)
    first = loss.sample(20, 4, torch.device("cpu"))
    torch.manual_seed(1)
    second = loss.sample(20, 4, torch.device("cpu"))
    assert torch.equal(first, second)
    assert first.shape == ((500,) if shared else (20, 500))
    assert first.min() >= 1 and first.max() <= 4
    if sampling == "popularity":
        assert not (first == 2).any()  # zero count: never drawn


def test_popularity_sampling_follows_counts():
    loss = SampledSoftmax(n_negatives=200_000, sampling="popularity")
    counts = torch.tensor([50, 1, 2, 3, 4])
    loss.set_item_popularity(counts)
    torch.manual_seed(0)
    draws = loss.sample(1, 4, torch.device("cpu"))
    freq = torch.bincount(draws, minlength=5)[1:].double() / draws.numel()
    assert torch.allclose(freq, torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64), atol=0.005)


def test_forward_samples_then_applies_the_formula(toy):
    hidden, targets, table = toy
    loss = SampledSoftmax(n_negatives=5)
    torch.manual_seed(3)
    negatives = loss.sample(P, N_ITEMS, hidden.device)
    torch.manual_seed(3)
    assert loss(hidden, targets, table).item() == pytest.approx(
        loss._loss_with_negatives(hidden, targets, table, negatives).item()
    )


def test_popularity_without_counts_fails_clearly(toy):
    hidden, targets, table = toy
    with pytest.raises(RuntimeError, match="set_item_popularity"):
        SampledSoftmax(4, sampling="popularity")(hidden, targets, table)
    loss = SampledSoftmax(4, sampling="popularity")
    loss.set_item_popularity(torch.ones(4))
    with pytest.raises(ValueError, match="covers 3 items"):
        loss(hidden, targets, table)


def test_popularity_counts_are_not_saved_in_checkpoints():
    loss = GBCE(4, sampling="popularity")
    loss.set_item_popularity(torch.ones(10))
    assert loss.state_dict() == {}
    GBCE(4, sampling="popularity").load_state_dict(loss.state_dict())


def test_full_softmax_ce_excluded_items_leave_the_softmax_but_never_the_target(toy):
    hidden, targets, table = toy
    expected = 0.0
    for p in range(P):
        scores = allowed_scores(hidden, table, targets, EXCLUDE, p)
        expected += -(scores[int(targets[p])] - math.log(sum(math.exp(s) for s in scores.values())))
    expected /= P
    got = FullSoftmaxCE()(hidden, targets, table, exclude=EXCLUDE)
    assert got.item() == pytest.approx(expected, rel=1e-9)
    assert got.item() < FullSoftmaxCE()(hidden, targets, table).item()  # fewer competitors, lower loss


def test_full_softmax_ce_offset_raises_the_marked_items_but_never_the_target(toy) -> None:
    hidden, targets, table = toy
    margin = 1.5
    expected = 0.0
    for p in range(P):
        marked = {int(i) for i in EXCLUDE[p] if int(i) not in (0, int(targets[p]))}  # duplicates count once
        scores = {i: dot(hidden, table, p, i) + (margin if i in marked else 0.0) for i in range(1, N_ITEMS + 1)}
        expected += -(scores[int(targets[p])] - math.log(sum(math.exp(s) for s in scores.values())))
    expected /= P
    got = FullSoftmaxCE()(hidden, targets, table, exclude=EXCLUDE, exclude_offset=margin)
    assert got.item() == pytest.approx(expected, rel=1e-9)
    assert got.item() > FullSoftmaxCE()(hidden, targets, table).item()  # stronger competitors, higher loss
    zero = FullSoftmaxCE()(hidden, targets, table, exclude=EXCLUDE, exclude_offset=0.0)
    assert zero.item() == pytest.approx(FullSoftmaxCE()(hidden, targets, table).item(), rel=1e-9)


def test_full_softmax_label_smoothing_without_exclusion_follows_the_formula(toy) -> None:
    hidden, targets, table = toy
    eps = 0.1
    expected = 0.0
    for p in range(P):
        scores = [dot(hidden, table, p, i) for i in range(1, N_ITEMS + 1)]
        log_z = math.log(sum(math.exp(s) for s in scores))
        nll = -(scores[int(targets[p]) - 1] - log_z)
        expected += (1 - eps) * nll + eps * sum(log_z - s for s in scores) / N_ITEMS
    expected /= P
    got = FullSoftmaxCE(label_smoothing=eps)(hidden, targets, table)
    assert got.item() == pytest.approx(expected, rel=1e-9)
    assert got.item() != pytest.approx(FullSoftmaxCE()(hidden, targets, table).item(), rel=1e-6)


def test_full_softmax_label_smoothing_spreads_only_over_allowed_items(toy) -> None:
    hidden, targets, table = toy
    eps = 0.2
    expected = 0.0
    for p in range(P):
        t = int(targets[p])
        scores = allowed_scores(hidden, table, targets, EXCLUDE, p)
        log_z = math.log(sum(math.exp(s) for s in scores.values()))
        nll = -(scores[t] - log_z)
        uniform = sum(-(s - log_z) for s in scores.values()) / len(scores)
        expected += (1 - eps) * nll + eps * uniform
    expected /= P
    got = FullSoftmaxCE(label_smoothing=eps)(hidden, targets, table, exclude=EXCLUDE)
    assert math.isfinite(got.item())
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_full_softmax_label_smoothing_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="label_smoothing"):
        FullSoftmaxCE(label_smoothing=1.0)


@pytest.mark.parametrize("store", [True, False])
@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize(("rows", "n_items"), [(300, 50), (140, 5000)])
def test_chunked_cpu_path_equals_torch_cross_entropy(
    eps: float, rows: int, n_items: int, store: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """float32 CPU batches take ChunkedSoftmaxCE (blocks of rows; the softmax gradient kept, or recomputed in
    backward above STORE_LIMIT); its loss and both gradients must be those of torch's cross-entropy on the
    whole logit matrix, with more rows than one block."""
    from recsys.losses import ChunkedSoftmaxCE, _chunked_path

    monkeypatch.setattr(ChunkedSoftmaxCE, "STORE_LIMIT", rows * n_items if store else rows * n_items - 1)
    torch.manual_seed(0)
    hidden = torch.randn(rows, 16, requires_grad=True)
    table = (torch.randn(n_items + 1, 16) * 0.5).requires_grad_()
    targets = torch.randint(1, n_items + 1, (rows,))
    assert _chunked_path(hidden, table) and rows > ChunkedSoftmaxCE.rows_per_block(n_items, store)
    ours = FullSoftmaxCE(label_smoothing=eps)(hidden, targets, table)
    ours_grads = torch.autograd.grad(ours, (hidden, table))
    reference = F.cross_entropy(hidden @ table[1:].T, targets - 1, label_smoothing=eps)
    reference_grads = torch.autograd.grad(reference, (hidden, table))
    torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-6)
    for got, expected in zip(ours_grads, reference_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert (ours_grads[1][0] == 0).all()  # the padding row is never a class


def test_chunked_path_is_left_under_autocast_and_for_other_dtypes() -> None:
    from recsys.losses import _chunked_path

    hidden, table = torch.randn(4, 8), torch.randn(6, 8)
    assert _chunked_path(hidden, table)
    assert not _chunked_path(hidden.double(), table.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not _chunked_path(hidden, table)
