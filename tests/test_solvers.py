"""Batched conjugate gradients (mrirecon.physics.solvers) against a dense solve."""

from __future__ import annotations

import pytest
import torch

from mrirecon.errors import MrireconError
from mrirecon.physics.solvers import conjugate_gradient


def _hpd_batch(n: int = 3, h: int = 4, w: int = 5, seed: int = 0):
    """A different Hermitian positive-definite matrix per batch item, acting on (h, w) images."""
    g = torch.Generator().manual_seed(seed)
    d = h * w
    m = torch.randn(n, d, d, generator=g, dtype=torch.complex128)
    mats = m @ m.mH + 0.5 * torch.eye(d, dtype=torch.complex128)

    def apply(x: torch.Tensor) -> torch.Tensor:
        return (mats @ x.reshape(n, d, 1)).reshape(n, h, w)

    b = torch.randn(n, h, w, generator=g, dtype=torch.complex128)
    exact = torch.linalg.solve(mats, b.reshape(n, d, 1)).reshape(n, h, w)
    return apply, b, exact, d


def test_cg_matches_a_dense_solve_per_item():
    apply, b, exact, d = _hpd_batch()
    x = conjugate_gradient(apply, b, iters=4 * d)
    torch.testing.assert_close(x, exact, rtol=1e-8, atol=1e-8)
    # each item has its own step sizes: solving one alone gives the same answer
    x0 = conjugate_gradient(lambda v: apply(v.expand(3, -1, -1))[:1], b[:1], iters=4 * d)
    torch.testing.assert_close(x0, exact[:1], rtol=1e-8, atol=1e-8)


def test_cg_from_a_start_keeps_the_null_space_and_stops_at_tolerance():
    g = torch.Generator().manual_seed(1)
    mask = (torch.rand(6, 8, generator=g) < 0.4).to(torch.complex128)
    apply = lambda x: mask * x  # noqa: E731  (a projection: singular)
    start = torch.randn(2, 6, 8, generator=g, dtype=torch.complex128)
    b = mask * torch.randn(2, 6, 8, generator=g, dtype=torch.complex128)
    x = conjugate_gradient(apply, b, x0=start, iters=5)
    torch.testing.assert_close(mask * x, b)  # the data part is solved
    torch.testing.assert_close((1 - mask) * x, (1 - mask) * start)  # the rest is the start's
    assert torch.equal(conjugate_gradient(apply, b, x0=start, iters=0), start)
    apply2, b2, exact2, d = _hpd_batch(seed=2)
    loose = conjugate_gradient(apply2, b2, iters=4 * d, tol=1e-2)
    rel = torch.linalg.vector_norm(apply2(loose) - b2) / torch.linalg.vector_norm(b2)
    assert rel <= 1e-2 * 1.0001 and not torch.allclose(loose, exact2, atol=1e-10)


def test_cg_rejects_bad_settings():
    apply, b, _, _ = _hpd_batch()
    with pytest.raises(MrireconError, match="iters must be an integer >= 0"):
        conjugate_gradient(apply, b, iters=-1)
    with pytest.raises(MrireconError, match="tol must be >= 0"):
        conjugate_gradient(apply, b, tol=-0.1)


def _singular_sense(seed: int = 0):
    """Two coils at 4x without ACS: AᴴA is singular (4-fold aliasing, 2 coils), float32 as in DC."""
    from mrirecon.physics.operators import SenseOp

    H = W = 48
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing="ij")
    maps = torch.stack([torch.exp(-((yy - 0.5) ** 2 + xx**2)), 1j * torch.exp(-((yy + 0.5) ** 2 + xx**2))])
    maps = (maps / (maps.abs() ** 2).sum(0).sqrt())[None].to(torch.complex64)
    mask = torch.zeros(W)
    mask[::4] = 1
    A = SenseOp(maps, mask)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, H, W, generator=g, dtype=torch.complex64)
    y = A.forward(x) + 0.01 * torch.randn(1, 2, H, W, generator=g, dtype=torch.complex64) * mask
    return A, x, y


@pytest.mark.parametrize("iters", [10, 40, 64, 200])
def test_cg_breakdown_guard_on_a_singular_normal_operator(iters):
    """Without the guard float32 CG ran to |x| ~ 1e9 here; with it the iterate stays a least-squares fit."""
    A, x, y = _singular_sense()
    out = conjugate_gradient(A.normal, A.adjoint(y), iters=iters)
    assert torch.isfinite(out).all()
    assert out.norm() <= x.norm()  # the minimum-norm part of x at most
    assert (A.forward(out) - y).norm() <= 0.05 * y.norm()  # and it fits the data to about the noise


def test_cg_guard_stops_each_image_on_its_own():
    """A singular image next to a well-posed one: the well-posed one still converges fully."""
    A, _, y = _singular_sense()
    apply_one = A.normal
    b1 = A.adjoint(y)
    b2 = torch.randn_like(b1)
    both = torch.cat([b1, b2])

    def apply(v):
        return torch.cat([apply_one(v[:1]), v[1:] * 2.0])

    out = conjugate_gradient(apply, both, iters=50)
    torch.testing.assert_close(out[1:], b2 / 2.0)
    assert out[:1].norm() < 1e3 * b1.norm()
