"""Classical baselines on (A, y): zero-filled, SENSE-CG, L1-wavelet (FISTA), the discrepancy principle."""

from __future__ import annotations

import numpy as np
import pytest
import sigpy as sp
import sigpy.mri as mr
import torch

from mrirecon.errors import MrireconError
from mrirecon.physics.fft import fft2c
from mrirecon.physics.masks import make_mask
from mrirecon.physics.operators import SenseOp
from mrirecon.physics.wavelet import Wavelet2D
from mrirecon.recon.classical import DEFAULT_LAMBDA, l1_wavelet, sense_cg, zero_filled

N, COILS, SIGMA = 48, 8, 2e-3


@pytest.fixture(scope="module")
def sim():
    """2 slices (Shepp–Logan and a scaled, shifted copy), birdcage maps with Σ|S|² = 1, known noise σ."""
    base = sp.shepp_logan((N, N)).astype(np.complex64)
    images = np.stack([base, 0.7 * np.roll(base, 3, axis=1)])
    maps = mr.birdcage_maps((COILS, N, N)).astype(np.complex64)
    maps /= np.sqrt((np.abs(maps) ** 2).sum(0))
    maps = np.broadcast_to(maps, (2, COILS, N, N)).copy()
    rng = np.random.default_rng(0)
    k = fft2c(maps * images[:, None])
    noise = SIGMA / np.sqrt(2) * (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape))
    mask = make_mask("equispaced", (N, N), 4, seed=0).mask
    y = torch.from_numpy((k + noise.astype(np.complex64)) * mask)
    A = SenseOp(torch.from_numpy(maps), torch.from_numpy(mask))
    return A, y, mask, maps, images


def nrmse(x, ref) -> float:
    x = x.numpy() if isinstance(x, torch.Tensor) else x
    return float(np.linalg.norm(x - ref) / np.linalg.norm(ref))


def test_sense_and_l1_beat_zero_filled_at_r4(sim):
    A, y, _, _, images = sim
    peak = A.adjoint(y).abs().flatten(1).amax(1)
    zf, sense, l1 = zero_filled(A, y), sense_cg(A, y, 1e-3, 30), l1_wavelet(A, y, 2e-3 * peak, 100)
    for x in (zf, sense, l1):
        assert isinstance(x, torch.Tensor) and x.shape == (2, N, N) and x.dtype == torch.complex64
    for s in range(2):
        e_zf, e_sense, e_l1 = (nrmse(x[s], images[s]) for x in (zf, sense, l1))
        assert e_sense < 0.8 * e_zf and e_l1 < 0.6 * e_zf, (e_zf, e_sense, e_l1)


def test_zero_filled_is_the_adjoint(sim):
    A, y, *_ = sim
    torch.testing.assert_close(zero_filled(A, y), A.adjoint(y))


def test_sense_cg_solves_the_regularised_normal_equations(sim):
    A, y, mask, maps, _ = sim
    lam = 1e-2
    x = sense_cg(A, y, lam=lam, iters=200, tol=1e-7)
    ref = mr.app.SenseRecon(y[0].numpy(), maps[0], lamda=lam, weights=mask, max_iter=200, show_pbar=False).run()
    np.testing.assert_allclose(x[0].numpy(), ref, atol=2e-4 * np.abs(ref).max())
    residual = A.normal(x) + lam * x - A.adjoint(y)
    assert float(residual.abs().max()) < 1e-4


def test_batched_equals_per_slice_and_per_slice_masks(sim):
    A, y, mask, maps, _ = sim
    both = sense_cg(A, y, 1e-3, 10)
    one = sense_cg(A.select(1), y[1], 1e-3, 10)  # (C, H, W) in -> (H, W) out
    torch.testing.assert_close(both[1], one, rtol=1e-4, atol=1e-5)
    masks = np.stack([mask, make_mask("random", (N, N), 4, seed=3).mask])[:, None]  # (S, 1, H, W)
    per = SenseOp(torch.from_numpy(maps), torch.from_numpy(masks))
    zf = zero_filled(per, y)
    torch.testing.assert_close(zf[0], zero_filled(A.select(0), y[0]), rtol=1e-5, atol=1e-6)


def test_l1_is_the_wavelet_shrinkage_when_A_is_unitary():
    """One coil with S = 1, fully sampled: A is unitary, so the minimiser is Ψᴴ soft(Ψ Aᴴy, λ) exactly."""
    rng = np.random.default_rng(1)
    img = (rng.standard_normal((1, 32, 32)) + 1j * rng.standard_normal((1, 32, 32))).astype(np.complex64)
    A = SenseOp(torch.ones((1, 1, 32, 32), dtype=torch.complex64), torch.ones(32, 32))
    y = A.forward(torch.from_numpy(img))
    lam = 0.3
    x = l1_wavelet(A, y, lam, iters=60, shifts=False)
    psi = Wavelet2D((32, 32))
    expected = psi.shrink(torch.from_numpy(img), lam)
    np.testing.assert_allclose(x.numpy(), expected.numpy(), atol=1e-5)


def test_l1_lambda_is_absolute_and_the_result_deterministic(sim):
    A, y, *_ = sim
    a = l1_wavelet(A, y[:1], 1e-3, iters=20)
    b = l1_wavelet(A, 1000 * y[:1], 1.0, iters=20)  # data and λ scaled together
    np.testing.assert_allclose(b.numpy() / 1000, a.numpy(), atol=1e-4 * float(a.abs().max()))
    torch.manual_seed(1)
    np.random.seed(1)
    c = l1_wavelet(A, y[:1], 1e-3, iters=20)
    assert torch.equal(a, c)
    assert not l1_wavelet(A, 0 * y[:1], 1e-3, iters=5).any()


def test_cycle_spinning_is_deterministic_and_helps(sim):
    """Random shifts of the shrinkage (seeded) beat the plain decimated wavelet at the default λ."""
    A, y, _, _, images = sim
    lam = DEFAULT_LAMBDA["l1-wavelet"] * A.adjoint(y).abs().flatten(1).amax(1)
    a, b = l1_wavelet(A, y, lam, 100), l1_wavelet(A, y, lam, 100)
    assert torch.equal(a, b)
    plain = l1_wavelet(A, y, lam, 100, shifts=False)
    assert sum(nrmse(a[s], images[s]) for s in range(2)) < sum(nrmse(plain[s], images[s]) for s in range(2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.cuda
def test_sense_cg_cuda(sim):
    A, y, mask, maps, _ = sim
    Ag = SenseOp(torch.from_numpy(maps).cuda(), torch.from_numpy(mask).cuda())
    out = sense_cg(Ag, y.cuda(), 1e-3, 30)
    assert out.is_cuda
    torch.testing.assert_close(out.cpu(), sense_cg(A, y, 1e-3, 30), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda A, y: sense_cg(A, y, lam=-1), "lam must be a number >= 0"),
        (lambda A, y: sense_cg(A, y, iters=0), "iters must be an integer >= 1"),
        (lambda A, y: l1_wavelet(A, y, -1.0), "lam must be >= 0"),
        (lambda A, y: l1_wavelet(A, y[:1], 1e-3, iters=1, wavelet="nope"), "wavelet 'nope'"),
        (lambda A, y: zero_filled(A, y[..., :5]), r"y must be k-space"),
    ],
)
def test_bad_input(sim, call, match):
    A, y, *_ = sim
    with pytest.raises(MrireconError, match=match):
        call(A, y)


@pytest.mark.parametrize("shape", [(64, 57), (230, 180), (33, 41)])
def test_l1_lambda_matters_at_any_matrix_size(shape):
    """Sizes not divisible by 2**L are zero-padded (SigPy-style), never left unregularised."""
    from mrirecon.recon.classical import wavelet_levels

    rng = np.random.default_rng(2)
    img = (rng.standard_normal((1, *shape)) + 1j * rng.standard_normal((1, *shape))).astype(np.complex64)
    A = SenseOp(torch.ones((1, 1, *shape), dtype=torch.complex64), torch.ones(shape))
    y = A.forward(torch.from_numpy(img))
    levels, padded = wavelet_levels(shape)
    assert levels >= 2 and all(p % 2**levels == 0 and p >= n for p, n in zip(padded, shape))
    weak, strong = l1_wavelet(A, y, 0.0, 10), l1_wavelet(A, y, 10.0, 10)
    assert weak.shape == strong.shape == (1, *shape)
    torch.testing.assert_close(weak, torch.from_numpy(img), atol=1e-4, rtol=1e-4)  # λ = 0: least squares
    assert strong.abs().pow(2).sum() < 0.5 * weak.abs().pow(2).sum()  # λ shrinks the image


def test_padded_wavelet_shrink_is_the_identity_at_zero_threshold():
    psi = Wavelet2D((37, 50))
    rng = np.random.default_rng(4)
    x = torch.from_numpy(rng.standard_normal((2, 37, 50)) + 1j * rng.standard_normal((2, 37, 50)))
    np.testing.assert_allclose(psi.shrink(x, torch.zeros(2)).numpy(), x.numpy(), atol=1e-10)


def test_soft_sense_cg_solves_the_joint_normal_equations(sim):
    """Two sets of maps: CG treats (sets, H, W) as one unknown and solves (AᴴA + λI) x = Aᴴy."""
    from mrirecon.physics.operators import SoftSenseOp

    A1, y, mask, maps, images = sim
    second = np.roll(maps, 5, axis=-1) * 0.5
    A = SoftSenseOp(torch.from_numpy(np.stack([maps, second], 1)), torch.from_numpy(mask))
    x = sense_cg(A, y, lam=1e-2, iters=200)
    assert x.shape == (2, 2, N, N)
    residual = A.normal(x) + 1e-2 * x - A.adjoint(y)
    assert float(torch.linalg.vector_norm(residual)) < 1e-3 * float(torch.linalg.vector_norm(A.adjoint(y)))
    z = l1_wavelet(A, y, 1e-4, iters=30)
    assert z.shape == (2, 2, N, N) and bool(torch.isfinite(z).all())


def test_holdout_keeps_cg_sense_near_zero_filling_when_the_lattice_outruns_the_coils():
    """2 coils, equispaced 8x (outer gap > 2 coils): only λ >= UNFOLD_MIN_LAMBDA compete; 8 coils: the full grid."""
    from mrirecon.physics.masks import lattice_spacing
    from mrirecon.recon.classical import HOLDOUT_GRID, UNFOLD_MIN_LAMBDA, holdout_lambda

    n = 64
    img = sp.shepp_logan((n, n)).astype(np.complex64)
    mask = make_mask("equispaced", (n, n), 8, seed=0).mask
    assert lattice_spacing(mask) > 4 and lattice_spacing(make_mask("random", (n, n), 8, seed=0).mask) is None
    for coils, restricted in ((2, True), (8, False)):
        maps = mr.birdcage_maps((coils, n, n)).astype(np.complex64)
        maps /= np.sqrt((np.abs(maps) ** 2).sum(0))
        y = torch.from_numpy(fft2c(maps * img)[None] * mask)
        out = holdout_lambda("sense", torch.from_numpy(maps[None]), y, mask, iters=20)
        lams = [float(k) for k in out["errors"]]
        assert (min(lams) >= UNFOLD_MIN_LAMBDA) == restricted and out["lam"] >= min(lams)
        assert len(lams) == (sum(g >= UNFOLD_MIN_LAMBDA for g in HOLDOUT_GRID["sense"]) if restricted else len(HOLDOUT_GRID["sense"]))
