"""RQ-VAE: the learned semantic-ID tokenizer of TIGER.

An MLP squeezes the item embedding into a small latent, residual quantisation turns the latent into
`n_levels` codes, and a decoder MLP must rebuild the embedding from the codes alone; that last
requirement is what makes the codes carry the item's content rather than noise. Training is a few
hundred Adam steps on the catalogue's embeddings, seconds on a CPU for ten thousand items.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from recsys.semantic_ids.quantizer import ResidualQuantizer


def mlp(dims: Sequence[int]) -> nn.Sequential:
    """Linear layers with ReLU between them and none after the last, so outputs are unbounded."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with `n` intra-op threads, then restore the caller's setting (None leaves it alone).

    The RQ-VAE's layers are too small for intra-op parallelism to pay: on a busy 2-core machine a
    training step took 110-180 ms with 2 threads against 23 ms with one.
    """
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class RQVAEOutput(NamedTuple):
    reconstruction: torch.Tensor  # [B, in_dim]
    codes: torch.Tensor  # [B, L]
    reconstruction_loss: torch.Tensor
    quantization_loss: torch.Tensor


class RQVAE(nn.Module):
    """Encoder MLP → residual quantiser → decoder MLP."""

    def __init__(
        self,
        in_dim: int,
        hidden_dims: Sequence[int] = (256, 128),
        latent_dim: int = 32,
        n_levels: int = 3,
        n_codes: int = 256,
        beta: float = 0.25,
    ) -> None:
        super().__init__()
        self.encoder = mlp([in_dim, *hidden_dims, latent_dim])
        self.quantizer = ResidualQuantizer(n_levels, n_codes, latent_dim, beta)
        self.decoder = mlp([latent_dim, *reversed(hidden_dims), in_dim])

    def forward(self, x: torch.Tensor) -> RQVAEOutput:
        q = self.quantizer(self.encoder(x))
        reconstruction = self.decoder(q.quantized)
        reconstruction_loss = ((reconstruction - x) ** 2).sum(-1).mean()
        return RQVAEOutput(reconstruction, q.codes, reconstruction_loss, q.loss)

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantizer.encode(self.encoder(x))

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.quantizer.lookup(codes))


class RQVAETokenizer:
    """Fits an `RQVAE` on item embeddings and turns embeddings into codes (same API as `RQKMeans`).

    `epochs` passes over the catalogue in mini-batches of `batch_size`; dead codes are restarted
    after every epoch but the last, so the final codebooks are the trained ones.
    """

    def __init__(
        self,
        n_levels: int = 3,
        n_codes: int = 256,
        hidden_dims: Sequence[int] = (256, 128),
        latent_dim: int = 32,
        beta: float = 0.25,
        epochs: int = 40,
        batch_size: int = 1024,
        lr: float = 1e-3,
        seed: int = 0,
        device: str | torch.device = "cpu",
        num_threads: int | None = 1,
    ) -> None:
        self.n_levels = n_levels
        self.n_codes = n_codes
        self.hidden_dims = tuple(hidden_dims)
        self.latent_dim = latent_dim
        self.beta = beta
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.device = torch.device(device)
        self.num_threads = num_threads
        self.model: RQVAE | None = None
        self.history: list[dict[str, float]] = []

    def fit(self, x: np.ndarray) -> RQVAETokenizer:
        with torch_threads(self.num_threads):
            return self._fit(x)

    def _fit(self, x: np.ndarray) -> RQVAETokenizer:
        data = torch.as_tensor(np.asarray(x, dtype=np.float32), device=self.device)
        generator = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = RQVAE(data.shape[1], self.hidden_dims, self.latent_dim, self.n_levels, self.n_codes,
                          self.beta).to(self.device)
        with torch.no_grad():
            model.quantizer.init_kmeans(model.encoder(data), seed=self.seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        self.history = []
        model.train()
        for epoch in range(self.epochs):
            totals = {"reconstruction": 0.0, "quantization": 0.0}
            perm = torch.randperm(data.shape[0], generator=generator).to(self.device)
            batches = perm.split(self.batch_size)
            for idx in batches:
                out = model(data[idx])
                loss = out.reconstruction_loss + out.quantization_loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                totals["reconstruction"] += out.reconstruction_loss.item() / len(batches)
                totals["quantization"] += out.quantization_loss.item() / len(batches)
            restarted = 0
            if epoch < self.epochs - 1:
                with torch.no_grad():
                    restarted = model.quantizer.restart_dead_codes(model.encoder(data), generator)
            self.history.append({"epoch": epoch, **totals, "restarted": float(restarted)})
        self.model = model.eval()
        return self

    def _model(self) -> RQVAE:
        if self.model is None:
            raise RuntimeError("RQVAETokenizer is not fitted; call fit(embeddings) first")
        return self.model

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes int64 [n, n_levels]."""
        data = torch.as_tensor(np.asarray(x, dtype=np.float32), device=self.device)
        with torch_threads(self.num_threads):
            return self._model().codes(data).cpu().numpy().astype(np.int64)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """The decoder's rebuild of the embedding from the codes alone, [n, d]."""
        tensor = torch.as_tensor(np.asarray(codes, dtype=np.int64), device=self.device)
        with torch_threads(self.num_threads):
            return self._model().decode_codes(tensor).cpu().numpy()

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        return self.decode(self.encode(x))
