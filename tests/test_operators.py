"""SenseOp: adjoint identity, agreement with SigPy's SENSE linop, normal operator, coil batching."""

from __future__ import annotations

import numpy as np
import pytest
import sigpy.mri as mr
import torch

from mrirecon.errors import MrireconError
from mrirecon.physics.fft import fft2c, ifft2c
from mrirecon.physics.operators import SenseOp


def crandn(*shape, seed: int, dtype=torch.complex64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=dtype, generator=g)


def random_mask(shape, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) < 0.4).float()


def inner(a: torch.Tensor, b: torch.Tensor) -> complex:
    return complex(torch.vdot(a.flatten().to(torch.complex128), b.flatten().to(torch.complex128)))


@pytest.mark.parametrize(
    "maps_shape,mask_shape,x_shape",
    [
        ((3, 4, 16, 16), (16, 16), (3, 16, 16)),  # slices, shared 2-D mask
        ((2, 5, 15, 12), (12,), (2, 15, 12)),  # odd H, 1-D column mask
        ((2, 4, 16, 14), (2, 1, 16, 14), (2, 16, 14)),  # per-slice masks
        ((2, 1, 3, 12, 12), (2, 1, 1, 12, 12), (2, 5, 12, 12)),  # 5 posterior samples per slice
    ],
)
def test_adjoint_identity(maps_shape, mask_shape, x_shape):
    op = SenseOp(crandn(*maps_shape, seed=1), random_mask(mask_shape, seed=2))
    x = crandn(*x_shape, seed=3)
    y = crandn(*op.forward(x).shape, seed=4)
    lhs, rhs = inner(op.forward(x), y), inner(x, op.adjoint(y))
    assert abs(lhs - rhs) <= 1e-5 * abs(lhs)
    assert op.forward(x).dtype == torch.complex64 and op.adjoint(y).shape == x.shape


def test_forward_is_mask_fft_of_coil_images():
    maps, mask, x = crandn(4, 10, 9, seed=5), random_mask((10, 9), seed=6), crandn(10, 9, seed=7)
    expected = mask * fft2c(maps * x)
    torch.testing.assert_close(SenseOp(maps, mask)(x), expected)
    zf = (maps.conj() * ifft2c(mask * expected)).sum(0)
    torch.testing.assert_close(SenseOp(maps, mask).adjoint(expected), zf)


@pytest.mark.parametrize("hw", [(16, 16), (15, 13)])
def test_agrees_with_sigpy_sense(hw):
    """Per slice, our A and Aᴴ equal sigpy.mri.linop.Sense(mps, weights=mask) (centred ortho FFT)."""
    maps = crandn(2, 6, *hw, seed=8, dtype=torch.complex128)
    mask = random_mask(hw, seed=9).double()
    x = crandn(2, *hw, seed=10, dtype=torch.complex128)
    op = SenseOp(maps, mask)
    y = op.forward(x)
    for s in range(2):
        ref = mr.linop.Sense(maps[s].numpy(), weights=mask.numpy())
        np.testing.assert_allclose(y[s].numpy(), ref * x[s].numpy(), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(op.adjoint(y)[s].numpy(), ref.H * y[s].numpy(), rtol=1e-10, atol=1e-10)


def test_normal_is_adjoint_of_forward_with_weights():
    """Non-binary weights M (density compensation) enter the normal operator squared."""
    maps = crandn(2, 4, 12, 11, seed=11)
    weights = torch.rand(12, 11, generator=torch.Generator().manual_seed(12)) * 3
    op = SenseOp(maps, weights)
    x = crandn(2, 12, 11, seed=13)
    torch.testing.assert_close(op.normal(x), op.adjoint(op.forward(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("coil_batch", [1, 3, 7, 100])
def test_coil_batching_gives_the_same_result(coil_batch):
    maps = crandn(2, 7, 12, 12, seed=14)
    mask = random_mask((2, 7, 12, 12), seed=15)  # a per-coil mask exercises the chunked mask path
    x, y = crandn(2, 12, 12, seed=16), crandn(2, 7, 12, 12, seed=17)
    full, chunked = SenseOp(maps, mask), SenseOp(maps, mask, coil_batch=coil_batch)
    for fn in ("forward", "adjoint", "normal"):
        arg = y if fn == "adjoint" else x
        torch.testing.assert_close(getattr(chunked, fn)(arg), getattr(full, fn)(arg), rtol=1e-5, atol=1e-5)


def test_autograd_through_the_operator():
    """Gradient samplers differentiate ½‖A x − y‖² in x: torch's gradient is Aᴴ(A x − y)."""
    op = SenseOp(crandn(2, 4, 10, 10, seed=23), random_mask((10, 10), seed=24))
    x = crandn(2, 10, 10, seed=25).requires_grad_(True)
    y = crandn(2, 4, 10, 10, seed=26)
    loss = 0.5 * (op(x) - y).abs().pow(2).sum()
    (grad,) = torch.autograd.grad(loss, x)
    torch.testing.assert_close(grad, op.adjoint(op(x).detach() - y), rtol=1e-5, atol=1e-5)
    (g2,) = torch.autograd.grad(0.5 * (x.conj() * op.normal(x)).real.sum(), x)
    torch.testing.assert_close(g2, op.normal(x).detach(), rtol=1e-5, atol=1e-5)


def test_numpy_in_numpy_out():
    maps, mask = crandn(3, 8, 8, seed=18).numpy(), np.ones((8, 8), np.float32)
    x = crandn(8, 8, seed=19).numpy()
    op = SenseOp(maps, mask)
    y = op(x)
    assert isinstance(y, np.ndarray) and y.shape == (3, 8, 8)
    assert isinstance(op.normal(x), np.ndarray)
    np.testing.assert_allclose(op.normal(x), (np.abs(maps) ** 2).sum(0) * x, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    maps, mask, x = crandn(2, 4, 16, 16, seed=20), random_mask((16, 16), seed=21), crandn(2, 16, 16, seed=22)
    cpu = SenseOp(maps, mask, coil_batch=2)
    gpu = SenseOp(maps.cuda(), mask.cuda(), coil_batch=2)
    torch.testing.assert_close(gpu.normal(x.cuda()).cpu(), cpu.normal(x), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gpu(x.cuda()).cpu(), cpu(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "maps,mask,match",
    [
        (torch.ones(4, 8, 8), torch.ones(8, 8), "maps must be complex"),
        (crandn(8, 8, seed=0), torch.ones(8, 8), r"maps must be \(..., coils, H, W\)"),
        (crandn(4, 8, 8, seed=0), torch.ones(8, 7), "not broadcastable"),
        (crandn(4, 8, 8, seed=0), torch.ones(8, 8, dtype=torch.complex64), "mask must be real"),
        (crandn(4, 8, 8, seed=0), [1, 0], "mask must be a torch tensor or numpy array"),
    ],
)
def test_bad_construction(maps, mask, match):
    with pytest.raises(MrireconError, match=match):
        SenseOp(maps, mask)


def test_bad_inputs():
    op = SenseOp(crandn(2, 4, 8, 8, seed=0), torch.ones(8, 8))
    with pytest.raises(MrireconError, match=r"x must be an image \(..., H, W\)"):
        op.forward(crandn(2, 8, 7, seed=1))
    with pytest.raises(MrireconError, match="y must be k-space"):
        op.adjoint(crandn(2, 3, 8, 8, seed=1))
    with pytest.raises(MrireconError, match="do not broadcast"):
        op.forward(crandn(3, 8, 8, seed=1))
    with pytest.raises(MrireconError, match="coil_batch"):
        SenseOp(crandn(4, 8, 8, seed=0), torch.ones(8, 8), coil_batch=0)


def test_soft_sense_operator_is_adjoint_and_sums_the_sets():
    from mrirecon.physics.operators import SenseOp, SoftSenseOp, sense_operator

    g = torch.Generator().manual_seed(0)
    S, M, C, H, W = 2, 2, 3, 10, 12
    maps = torch.randn(S, M, C, H, W, dtype=torch.complex64, generator=g)
    mask = (torch.rand(S, 1, H, W, generator=g) > 0.5).float()
    A = sense_operator(maps, mask)
    assert isinstance(A, SoftSenseOp) and A.ishape == (M, H, W) and A.oshape == (C, H, W)
    x = torch.randn(S, M, H, W, dtype=torch.complex64, generator=g)
    y = torch.randn(S, C, H, W, dtype=torch.complex64, generator=g)
    lhs, rhs = torch.vdot(A.forward(x).flatten(), y.flatten()), torch.vdot(x.flatten(), A.adjoint(y).flatten())
    assert abs(lhs - rhs) < 1e-3 * abs(lhs)
    # Each set is a SENSE operator of its own image; the k-space of the sets adds up.
    single = [SenseOp(maps[:, m], mask).forward(x[:, m]) for m in range(M)]
    assert torch.allclose(A.forward(x), single[0] + single[1], atol=1e-5)
    v = x.clone()  # power iteration: ‖AᴴA‖ never exceeds the bound FISTA's step uses
    for _ in range(50):
        v = A.normal(v)
        v = v / torch.linalg.vector_norm(v)
    assert float(torch.linalg.vector_norm(A.normal(v))) <= A.lipschitz() * (1 + 1e-4)
    assert isinstance(sense_operator(maps[:, 0], mask), SenseOp)
