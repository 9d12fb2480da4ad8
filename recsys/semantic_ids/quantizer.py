"""Residual vector quantisation as a trainable layer (the middle of an RQ-VAE).

Three details decide whether the codebooks end up used, and each is here on purpose:
- k-means initialisation: random codebooks start far from the data and most codes never win;
- codebook + commitment losses with a straight-through estimator: the codebook moves toward the
  encoder outputs, the encoder is held near its codes, and gradients skip the argmin;
- dead-code restart: a code nobody chose during an epoch is moved onto a random residual, so
  capacity lost early is recovered instead of staying dead.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from recsys.semantic_ids.kmeans import kmeans, nearest


class QuantizerOutput(NamedTuple):
    quantized: torch.Tensor  # [B, D], gradients flow to the input through it (straight-through)
    codes: torch.Tensor  # [B, L] int64
    loss: torch.Tensor  # codebook + beta * commitment, summed over levels


class ResidualQuantizer(nn.Module):
    """`n_levels` codebooks of `n_codes` vectors of size `dim`, applied to successive residuals."""

    def __init__(self, n_levels: int, n_codes: int, dim: int, beta: float = 0.25) -> None:
        super().__init__()
        self.n_levels = n_levels
        self.n_codes = n_codes
        self.beta = beta
        self.codebooks = nn.Parameter(torch.randn(n_levels, n_codes, dim) * 0.01)
        self.register_buffer("usage", torch.zeros(n_levels, n_codes, dtype=torch.long))

    @torch.no_grad()
    def init_kmeans(self, z: torch.Tensor, seed: int = 0) -> None:
        """Set each level's codebook to k-means centroids of that level's residuals of `z` [N, D]."""
        residual = z.detach().float().cpu().numpy().copy()
        for level in range(self.n_levels):
            centroids = kmeans(residual, self.n_codes, seed=seed + level)
            self.codebooks[level].copy_(torch.from_numpy(centroids))
            residual -= centroids[nearest(residual, centroids)]

    def _nearest(self, residual: torch.Tensor, level: int) -> torch.Tensor:
        return torch.cdist(residual, self.codebooks[level]).argmin(-1)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        residual = z
        quantized = torch.zeros_like(z)
        codes = []
        loss = z.new_zeros(())
        for level in range(self.n_levels):
            idx = self._nearest(residual.detach(), level)
            chosen = self.codebooks[level][idx]
            loss = loss + ((chosen - residual.detach()) ** 2).sum(-1).mean()
            loss = loss + self.beta * ((residual - chosen.detach()) ** 2).sum(-1).mean()
            quantized = quantized + chosen
            residual = residual - chosen.detach()
            codes.append(idx)
            if self.training:
                self.usage[level] += torch.bincount(idx, minlength=self.n_codes)
        straight_through = z + (quantized - z).detach()
        return QuantizerOutput(straight_through, torch.stack(codes, -1), loss)

    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes [B, L] without touching usage counts."""
        residual = z
        codes = []
        for level in range(self.n_levels):
            idx = self._nearest(residual, level)
            residual = residual - self.codebooks[level][idx]
            codes.append(idx)
        return torch.stack(codes, -1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Sum of the chosen code vectors, [B, D]."""
        return sum(self.codebooks[level][codes[:, level]] for level in range(self.n_levels))

    @torch.no_grad()
    def restart_dead_codes(self, z: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """Re-seed every code unused since the last call from random residuals of `z`; returns how many."""
        residual = z.detach()
        restarted = 0
        for level in range(self.n_levels):
            dead = (self.usage[level] == 0).nonzero().flatten()
            if len(dead):
                pick = torch.randint(0, residual.shape[0], (len(dead),), generator=generator)
                self.codebooks[level][dead] = residual[pick.to(residual.device)]
                restarted += len(dead)
            residual = residual - self.codebooks[level][self._nearest(residual, level)]
        self.usage.zero_()
        return restarted
