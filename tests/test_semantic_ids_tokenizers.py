from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.semantic_ids import RQVAE, RQKMeans, RQVAETokenizer, SemanticIds
from recsys.semantic_ids.quantizer import ResidualQuantizer


def clustered(n: int = 800, d: int = 16, clusters: int = 40, noise: float = 0.15, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, d))
    x = centers[rng.integers(0, clusters, n)] + noise * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def usage(codes: np.ndarray, n_codes: int) -> list[float]:
    return [len(np.unique(codes[:, level])) / n_codes for level in range(codes.shape[1])]


def test_rq_kmeans_deterministic_and_uses_its_codebooks() -> None:
    x = clustered()
    a = RQKMeans(n_levels=3, n_codes=16, seed=3).fit(x)
    codes = a.encode(x)
    assert codes.shape == (800, 3) and codes.dtype == np.int64
    np.testing.assert_array_equal(codes, RQKMeans(n_levels=3, n_codes=16, seed=3).fit(x).encode(x))
    assert min(usage(codes, 16)) > 0.9
    # each level explains part of what the previous left: the error shrinks level by level
    errors = []
    for level in range(1, 4):
        partial = sum(a.codebooks[i][codes[:, i]] for i in range(level))
        errors.append(((x - partial) ** 2).sum(1).mean())
    assert errors[0] > errors[1] > errors[2]
    np.testing.assert_allclose(a.reconstruct(x), partial, atol=1e-6)


def test_rq_kmeans_fewer_points_than_codes() -> None:
    x = clustered(n=5)
    codes = RQKMeans(n_levels=2, n_codes=16).fit(x).encode(x)
    assert codes.shape == (5, 2) and codes.max() < 16


def test_rq_kmeans_needs_fit() -> None:
    with pytest.raises(RuntimeError, match="fit"):
        RQKMeans().encode(np.zeros((2, 4), np.float32))


def test_rq_vae_trains_uses_codes_and_is_deterministic() -> None:
    x = clustered(n=600)
    kwargs = dict(n_levels=2, n_codes=16, hidden_dims=(32,), latent_dim=8, epochs=30, batch_size=128, lr=1e-2,
                  seed=1)
    threads = torch.get_num_threads()
    tok = RQVAETokenizer(**kwargs).fit(x)
    assert torch.get_num_threads() == threads
    codes = tok.encode(x)
    assert codes.shape == (600, 2)
    assert min(usage(codes, 16)) > 0.75
    assert tok.history[-1]["reconstruction"] < tok.history[0]["reconstruction"]
    relative = ((x - tok.reconstruct(x)) ** 2).sum(1).mean() / (x**2).sum(1).mean()
    assert relative < 0.5
    np.testing.assert_array_equal(codes, RQVAETokenizer(**kwargs).fit(x).encode(x))
    ids = SemanticIds.from_codes(codes, 16)
    np.testing.assert_array_equal(ids.items_of(ids.codes[1:]), np.arange(1, 601))


def test_quantizer_straight_through_and_losses() -> None:
    torch.manual_seed(0)
    q = ResidualQuantizer(n_levels=2, n_codes=4, dim=3)
    z = torch.randn(10, 3, requires_grad=True)
    out = q(z)
    assert out.codes.shape == (10, 2)
    out.quantized.sum().backward()
    torch.testing.assert_close(z.grad, torch.ones_like(z))  # gradient skips the argmin
    torch.testing.assert_close(out.quantized.detach(), q.lookup(out.codes).detach())
    z2 = torch.randn(6, 3, requires_grad=True)
    q(z2).loss.backward()
    assert q.codebooks.grad is not None and z2.grad is not None  # codebook and commitment terms


def test_dead_codes_are_restarted_from_data() -> None:
    q = ResidualQuantizer(n_levels=1, n_codes=8, dim=2)
    with torch.no_grad():
        q.codebooks.zero_()
        q.codebooks[0, 0] = torch.tensor([1.0, 1.0])
    z = torch.randn(50, 2) + 5
    q.train()
    q(z)
    assert int((q.usage[0] > 0).sum()) == 1
    generator = torch.Generator().manual_seed(0)
    assert q.restart_dead_codes(z, generator) == 7
    assert int(q.usage.sum()) == 0
    restarted = q.codebooks[0, 1:].detach()
    assert all(any(torch.equal(row, zrow) for zrow in z) for row in restarted)


def test_kmeans_initialisation_puts_codes_on_the_data() -> None:
    x = torch.from_numpy(clustered(n=300, d=4, clusters=8))
    q = ResidualQuantizer(n_levels=1, n_codes=8, dim=4)
    q.init_kmeans(x)
    assert len(q.encode(x)[:, 0].unique()) == 8


def test_rq_vae_module_shapes() -> None:
    model = RQVAE(in_dim=12, hidden_dims=(10,), latent_dim=4, n_levels=3, n_codes=5)
    out = model(torch.randn(7, 12))
    assert out.reconstruction.shape == (7, 12) and out.codes.shape == (7, 3)
    assert model.decode_codes(out.codes).shape == (7, 12)
