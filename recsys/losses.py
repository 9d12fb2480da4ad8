"""Losses for retrieval models, all called the same way: `loss(hidden, targets, item_table) -> scalar`.

- `hidden` FloatTensor [P, d]: outputs at the P positions that have a target (the task selects
  `hidden[targets > 0]`, so no [B, L, n_items] logits are ever built for padding);
- `targets` LongTensor [P]: item indices in 1..n_items;
- `item_table` FloatTensor [n_items + 1, d]: the model's `item_embeddings()`; row 0 is padding and is never
  a class nor a negative.

Scores are plain dot products `hidden @ item_table.T`, the same ones retrieval ranks by.

Sampled losses draw negatives with torch's global generator on `hidden`'s device (reproducible under
`torch.manual_seed`), uniformly from 1..n_items or in proportion to item counts given through
`set_item_popularity`. A negative equal to the row's own target (an accidental hit) is ignored.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Sampling = Literal["uniform", "popularity"]


class RetrievalLoss(nn.Module):
    """Common base: the popularity hook, so a task can call it on any loss without checking its type."""

    def set_item_popularity(self, counts: torch.Tensor) -> None:
        """Item interaction counts [n_items + 1] (index 0 ignored); losses that do not sample ignore them."""


class FullSoftmaxCE(RetrievalLoss):
    """Cross-entropy of the target against every item: the exact objective sampled losses approximate.

    Costs a [P, n_items] logit matrix per step; cheap for tens of thousands of items, the reference point
    for everything else.

    Args:
        label_smoothing: eps in [0, 1): the target distribution is (1 - eps) on the target plus eps spread
            evenly over every item the row may rank (excluded items get none), as torch's cross-entropy
            smoothing does over all classes; it keeps the softmax from putting all its mass on one item.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing={label_smoothing}: expected a value in [0, 1)")
        self.label_smoothing = label_smoothing

    def forward(
        self,
        hidden: torch.Tensor,
        targets: torch.Tensor,
        item_table: torch.Tensor,
        exclude: torch.Tensor | None = None,
        exclude_offset: float = float("-inf"),
    ) -> torch.Tensor:
        """`exclude` LongTensor [P, S] (optional): items whose logits in row p get `exclude_offset` added
        (0 = no item); a row's own target is never among them, so repeated items still train. The default
        offset, -inf, gives them no probability mass; a finite positive one keeps them as negatives scored
        that much higher than they are, so training pushes them that much further down."""
        if exclude is None and _chunked_path(hidden, item_table):
            return ChunkedSoftmaxCE.apply(hidden, item_table[1:], targets - 1, self.label_smoothing)
        # Dropping the padding row is the same as giving it a -inf logit, and saves a column.
        logits = hidden @ item_table[1:].T
        allowed = None
        if exclude is not None:
            marked = torch.zeros(logits.shape[0], logits.shape[1] + 1, dtype=torch.bool, device=logits.device)
            marked.scatter_(1, exclude.masked_fill(exclude == targets[:, None], 0), True)
            if exclude_offset == float("-inf"):
                allowed = ~marked[:, 1:]
                logits = logits.masked_fill(~allowed, float("-inf"))
            else:
                logits = logits + exclude_offset * marked[:, 1:]
        eps = self.label_smoothing
        if allowed is None or eps == 0.0:
            return F.cross_entropy(logits, targets - 1, label_smoothing=eps)
        # torch's smoothing would sum the -inf of excluded items: spread eps over the allowed ones only
        log_probs = logits.log_softmax(dim=1)
        nll = -log_probs.gather(1, (targets - 1)[:, None]).squeeze(1)
        uniform = -log_probs.masked_fill(~allowed, 0.0).sum(dim=1) / allowed.sum(dim=1)
        return ((1.0 - eps) * nll + eps * uniform).mean()


def _chunked_path(hidden: torch.Tensor, item_table: torch.Tensor) -> bool:
    """float32 CPU tensors outside autocast: where ChunkedSoftmaxCE was measured faster and is exact."""
    return (hidden.device.type == "cpu" and hidden.dtype == torch.float32 and item_table.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu"))


class ChunkedSoftmaxCE(torch.autograd.Function):
    """Full softmax cross-entropy (with label smoothing) computed a block of rows at a time on the CPU.

    Each block of logits is computed and reduced (log-sum-exp, target logit, row mean) while it sits in
    cache. When the whole [P, n_items] matrix fits in `STORE_LIMIT` elements, the forward pass turns each
    block into its softmax gradient in place (one exp per logit) and keeps it, so the backward pass is two
    matrix products over all rows; above the limit nothing [P, n_items] is kept and the backward pass
    recomputes each block. Measured on an AVX2 EPYC (1 thread, float32), forward plus backward: ML-100K's
    shape (1,312 positions x 1,682 items, d=64) 37 ms with `F.cross_entropy(hidden @ weight.T)`, 35 ms
    recomputing, 28 ms keeping; Beauty's (4,000 x 12,101) 1,313, 1,119 and 800 ms. Loss and gradients equal
    `F.cross_entropy`'s up to float32 rounding (tests/test_losses.py).
    """

    STORE_LIMIT = 1 << 27  # elements of the kept gradient matrix (512 MiB in float32)

    @staticmethod
    def rows_per_block(n_items: int, store: bool) -> int:
        return 128 if store or n_items < 4096 else 32

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, eps: float) -> torch.Tensor:  # noqa: ANN001
        rows, n_items = hidden.shape[0], weight.shape[0]
        store = rows * n_items <= ChunkedSoftmaxCE.STORE_LIMIT
        chunk = ChunkedSoftmaxCE.rows_per_block(n_items, store)
        weight_t = weight.t().contiguous()
        lse, picked = hidden.new_empty(rows), hidden.new_empty(rows)
        mean = hidden.new_zeros(rows)
        kept = hidden.new_empty(rows, n_items) if store else hidden.new_empty(min(chunk, rows), n_items)
        for start in range(0, rows, chunk):
            part = slice(start, start + chunk)
            logits = kept[part] if store else kept[: hidden[part].shape[0]]
            torch.mm(hidden[part], weight_t, out=logits)
            picked[part] = logits.gather(1, targets[part, None]).squeeze(1)
            if eps:
                mean[part] = logits.mean(dim=1)
            if not store:
                lse[part] = torch.logsumexp(logits, dim=1)
                continue
            top = logits.amax(dim=1, keepdim=True)
            total = logits.sub_(top).exp_().sum(dim=1, keepdim=True)
            lse[part] = (top + total.log()).squeeze(1)
            _softmax_to_gradient(logits.div_(total), targets[part], eps)
        if store:
            ctx.save_for_backward(hidden, weight, kept)
        else:
            ctx.save_for_backward(hidden, weight, weight_t, targets, lse)
        ctx.eps, ctx.chunk, ctx.store = eps, chunk, store
        return (lse - (1.0 - eps) * picked - eps * mean).mean()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # noqa: ANN001
        if ctx.store:
            hidden, weight, kept = ctx.saved_tensors
            scale = grad / hidden.shape[0]
            return torch.mm(kept, weight).mul_(scale), torch.mm(kept.t(), hidden).mul_(scale), None, None
        hidden, weight, weight_t, targets, lse = ctx.saved_tensors
        eps, chunk = ctx.eps, ctx.chunk
        rows, n_items = hidden.shape[0], weight.shape[0]
        grad_hidden, grad_weight = torch.empty_like(hidden), torch.zeros_like(weight)
        block = hidden.new_empty(min(chunk, rows), n_items)
        scale = grad / rows
        for start in range(0, rows, chunk):
            part = slice(start, start + chunk)
            probs = block[: hidden[part].shape[0]]
            torch.mm(hidden[part], weight_t, out=probs)
            _softmax_to_gradient(probs.sub_(lse[part, None]).exp_(), targets[part], eps).mul_(scale)
            torch.mm(probs, weight, out=grad_hidden[part])
            grad_weight.addmm_(probs.t(), hidden[part])
        return grad_hidden, grad_weight, None, None


def _softmax_to_gradient(probs: torch.Tensor, targets: torch.Tensor, eps: float) -> torch.Tensor:
    """In place: softmax rows -> d loss / d logit = softmax - (1 - eps) * onehot - eps / n_items (one row's loss)."""
    probs.scatter_add_(1, targets[:, None], probs.new_full((probs.shape[0], 1), eps - 1.0))
    if eps:
        probs.sub_(eps / probs.shape[1])
    return probs


class _SampledLoss(RetrievalLoss):
    """Negative sampling shared by the sampled losses.

    Negatives are drawn with replacement. Shared negatives (one draw of N items for the whole batch) cost
    one [P, d] x [d, N] matrix product; per-row negatives (N items for every position) gather a
    [P, N, d] tensor, which is far slower and heavier for large N, so it is meant for small N.
    """

    def __init__(self, n_negatives: int, sampling: Sampling, shared_negatives: bool) -> None:
        super().__init__()
        if n_negatives < 1:
            raise ValueError(f"n_negatives={n_negatives}: need at least one negative")
        if sampling not in ("uniform", "popularity"):
            raise ValueError(f"sampling={sampling!r}: expected 'uniform' or 'popularity'")
        self.n_negatives = n_negatives
        self.sampling = sampling
        self.shared_negatives = shared_negatives
        # Not persistent: the task sets it from the training data at setup, and checkpoints stay loadable
        # whether or not it was ever set.
        self.register_buffer("_probs", torch.empty(0, dtype=torch.float64), persistent=False)
        self.register_buffer("_cdf", torch.empty(0, dtype=torch.float64), persistent=False)

    def set_item_popularity(self, counts: torch.Tensor) -> None:
        """Item interaction counts [n_items + 1]; index 0 (padding) is ignored and never drawn.

        Popularity sampling draws item i with probability counts[i] / sum(counts[1:]); items with a zero
        count are never drawn.
        """
        counts = counts.detach().to(dtype=torch.float64).clone()
        counts[0] = 0.0
        if (counts < 0).any() or counts.sum() <= 0:
            raise ValueError("item counts must be non-negative with a positive total")
        probs = counts / counts.sum()
        device = self._probs.device
        self._probs = probs.to(device)
        self._cdf = probs[1:].cumsum(0).to(device)

    def sample(self, n_rows: int, n_items: int, device: torch.device) -> torch.Tensor:
        """Negative item indices in 1..n_items: [N] if shared, else [n_rows, N]."""
        shape = (self.n_negatives,) if self.shared_negatives else (n_rows, self.n_negatives)
        if self.sampling == "uniform":
            return torch.randint(1, n_items + 1, shape, device=device)
        cdf = self._popularity_cdf(n_items).to(device)
        u = torch.rand(shape, device=device, dtype=torch.float64) * cdf[-1]
        # Item k+1 owns [cdf[k-1], cdf[k]); the clamp guards u landing on the rounded-down total.
        return torch.searchsorted(cdf, u, right=True).clamp_(max=n_items - 1) + 1

    def log_q(self, items: torch.Tensor, n_items: int) -> torch.Tensor:
        """Log of each item's sampling probability (same shape as `items`), for the logQ correction."""
        if self.sampling == "uniform":
            return torch.full(items.shape, -math.log(n_items), device=items.device)
        self._popularity_cdf(n_items)  # fails clearly when popularity was never set or does not fit
        probs = self._probs
        # A zero-count target has no finite log-probability; the floor keeps the loss finite.
        return probs.to(items.device)[items].clamp_min(1e-12).log().float()

    def _popularity_cdf(self, n_items: int) -> torch.Tensor:
        if self._cdf.numel() == 0:
            raise RuntimeError(
                "sampling='popularity' needs set_item_popularity(counts) before the first step"
            )
        if self._cdf.numel() != n_items:
            raise ValueError(
                f"item popularity covers {self._cdf.numel()} items but the item table has {n_items}"
            )
        return self._cdf

    def forward(self, hidden: torch.Tensor, targets: torch.Tensor, item_table: torch.Tensor) -> torch.Tensor:
        n_items = item_table.shape[0] - 1
        negatives = self.sample(hidden.shape[0], n_items, hidden.device)
        return self._loss_with_negatives(hidden, targets, item_table, negatives)

    def _loss_with_negatives(
        self, hidden: torch.Tensor, targets: torch.Tensor, item_table: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError


def _scores(
    hidden: torch.Tensor, targets: torch.Tensor, item_table: torch.Tensor, negatives: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Positive scores [P], negative scores [P, N], and the accidental-hit mask [P, N] (True = hit)."""
    positive = (hidden * item_table[targets]).sum(-1)
    if negatives.dim() == 1:
        negative = hidden @ item_table[negatives].T
        hits = negatives[None, :] == targets[:, None]
    else:
        negative = torch.einsum("pd,pnd->pn", hidden, item_table[negatives])
        hits = negatives == targets[:, None]
    return positive, negative, hits


class SampledSoftmax(_SampledLoss):
    """Softmax cross-entropy over the target and N sampled negatives.

    With logQ correction every logit (the positive's too) has the log of its item's sampling probability
    subtracted, which makes the sampled softmax an unbiased-in-the-limit estimate of the full one; without
    it, popularity sampling over-penalises popular items. Under uniform sampling the correction is a
    constant and changes nothing.

    Args:
        n_negatives: negatives drawn per step (shared) or per position (per-row).
        sampling: `uniform` over 1..n_items, or `popularity` (needs set_item_popularity).
        logq_correction: subtract log sampling probability from every logit.
        shared_negatives: one draw of N negatives for the whole batch (fast; the usual choice) instead of N
            per position.
    """

    def __init__(
        self,
        n_negatives: int = 256,
        sampling: Sampling = "uniform",
        logq_correction: bool = True,
        shared_negatives: bool = True,
    ) -> None:
        super().__init__(n_negatives, sampling, shared_negatives)
        self.logq_correction = logq_correction

    def _loss_with_negatives(
        self, hidden: torch.Tensor, targets: torch.Tensor, item_table: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        positive, negative, hits = _scores(hidden, targets, item_table, negatives)
        if self.logq_correction:
            n_items = item_table.shape[0] - 1
            positive = positive - self.log_q(targets, n_items)
            negative = negative - self.log_q(negatives, n_items)
        negative = negative.masked_fill(hits, float("-inf"))
        logits = torch.cat([positive[:, None], negative], dim=1)
        return -logits.log_softmax(dim=1)[:, 0].mean()


class BCE(_SampledLoss):
    """Binary cross-entropy: the target scored as a positive and each sampled negative as a negative.

    Per position the loss is -log sigmoid(s+) - sum over negatives of log(1 - sigmoid(s-)), averaged over
    positions (SASRec's original objective with one negative).

    Args:
        n_negatives: negatives per positive.
        sampling: `uniform` over 1..n_items, or `popularity` (needs set_item_popularity).
        shared_negatives: one draw of N negatives for the whole batch instead of N per position; per-position
            is the original SASRec recipe and cheap for small N.
    """

    def __init__(
        self, n_negatives: int = 1, sampling: Sampling = "uniform", shared_negatives: bool = False
    ) -> None:
        super().__init__(n_negatives, sampling, shared_negatives)

    def _positive_weight(self, n_items: int) -> float:
        return 1.0

    def _loss_with_negatives(
        self, hidden: torch.Tensor, targets: torch.Tensor, item_table: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        positive, negative, hits = _scores(hidden, targets, item_table, negatives)
        # -log sigmoid(s) = softplus(-s) and -log(1 - sigmoid(s)) = softplus(s), both stable for any s.
        positive_term = self._positive_weight(item_table.shape[0] - 1) * F.softplus(-positive)
        negative_term = F.softplus(negative).masked_fill(hits, 0.0).sum(dim=1)
        return (positive_term + negative_term).mean()


class GBCE(BCE):
    """gSASRec's generalised BCE (Petrov & Macdonald, 2023): BCE whose positive term is sigmoid(s+)^beta.

    Sampling N of the n_items - 1 negatives makes BCE overconfident; raising the positive probability to
    beta = alpha * (t * (1 - 1/alpha) + 1/alpha) = 1 - t * (1 - alpha), with alpha = N / (n_items - 1) the
    sampling rate, calibrates it. t = 0 gives plain BCE (beta = 1); t = 1 gives beta = alpha. The
    positive term -beta * log sigmoid(s+) is computed as beta * softplus(-s+), exact in log space.

    The loss is summed over negatives and averaged over positions, like BCE; gSASRec averages over all
    1 + N logits, which differs by the constant factor 1 + N.

    Args:
        n_negatives: negatives per positive.
        t: calibration strength in [0, 1].
        sampling: `uniform` (what the calibration assumes) or `popularity` (needs set_item_popularity).
        shared_negatives: one draw of N negatives for the whole batch (fast) instead of N per position.
    """

    def __init__(
        self,
        n_negatives: int = 256,
        t: float = 0.75,
        sampling: Sampling = "uniform",
        shared_negatives: bool = True,
    ) -> None:
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"t={t}: expected a value in [0, 1]")
        super().__init__(n_negatives, sampling, shared_negatives)
        self.t = t

    def beta(self, n_items: int) -> float:
        """The exponent on the positive probability; alpha is capped at 1 (every negative sampled)."""
        alpha = min(self.n_negatives / max(n_items - 1, 1), 1.0)
        return alpha * (self.t * (1.0 - 1.0 / alpha) + 1.0 / alpha)

    def _positive_weight(self, n_items: int) -> float:
        return self.beta(n_items)
