"""Classical baselines: zero-filled, SENSE-CG, L1-wavelet on a simulated multi-coil phantom."""

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
from mrirecon.recon.classical import l1_wavelet, sense_cg, zero_filled

N, COILS = 48, 8


@pytest.fixture(scope="module")
def sim():
    """2 slices (Shepp–Logan and a scaled, shifted copy), birdcage maps with Σ|S|² = 1, mild noise."""
    base = sp.shepp_logan((N, N)).astype(np.complex64)
    images = np.stack([base, 0.7 * np.roll(base, 3, axis=1)])
    maps = mr.birdcage_maps((COILS, N, N)).astype(np.complex64)
    maps /= np.sqrt((np.abs(maps) ** 2).sum(0))
    maps = np.broadcast_to(maps, (2, COILS, N, N)).copy()
    rng = np.random.default_rng(0)
    k = fft2c(maps * images[:, None])
    k = k + (2e-3 * (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape))).astype(np.complex64)
    mask = make_mask("equispaced", (N, N), 4, seed=0).mask
    return k * mask, mask, maps, images


def nrmse(x: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(x - ref) / np.linalg.norm(ref))


def test_sense_and_l1_beat_zero_filled_at_r4(sim):
    y, mask, maps, images = sim
    zf, sense, l1 = zero_filled(y, mask, maps), sense_cg(y, mask, maps), l1_wavelet(y, mask, maps)
    for x in (zf, sense, l1):
        assert isinstance(x, np.ndarray) and x.shape == (2, N, N) and x.dtype == np.complex64
    for s in range(2):
        e_zf, e_sense, e_l1 = (nrmse(x[s], images[s]) for x in (zf, sense, l1))
        assert e_sense < 0.8 * e_zf and e_l1 < 0.6 * e_zf, (e_zf, e_sense, e_l1)


def test_zero_filled_is_the_adjoint(sim):
    y, mask, maps, _ = sim
    expected = SenseOp(torch.from_numpy(maps), torch.from_numpy(mask)).adjoint(torch.from_numpy(y))
    np.testing.assert_allclose(zero_filled(y, mask, maps), expected.numpy(), rtol=1e-6, atol=1e-7)


def test_sense_cg_solves_the_regularised_normal_equations(sim):
    y, mask, maps, _ = sim
    lam = 1e-2
    x = sense_cg(y, mask, maps, lam=lam, iters=200, tol=1e-7)
    ref = mr.app.SenseRecon(y[0], maps[0], lamda=lam, weights=mask, max_iter=200, show_pbar=False).run()
    np.testing.assert_allclose(x[0], ref, atol=2e-4 * np.abs(ref).max())
    op = SenseOp(torch.from_numpy(maps), torch.from_numpy(mask))
    t = torch.from_numpy(x)
    residual = op.normal(t) + lam * t - op.adjoint(torch.from_numpy(y))
    assert float(residual.abs().max()) < 1e-4


def test_batched_equals_per_slice_and_per_slice_masks(sim):
    y, mask, maps, _ = sim
    both = sense_cg(y, mask, maps, iters=10)
    one = sense_cg(y[1], mask, maps[1], iters=10)  # (C, H, W) in -> (H, W) out
    np.testing.assert_allclose(both[1], one, rtol=1e-4, atol=1e-5)
    masks = np.stack([mask, make_mask("random", (N, N), 4, seed=3).mask])  # (S, H, W)
    zf = zero_filled(y, masks, maps)
    np.testing.assert_allclose(zf[0], zero_filled(y[:1], mask, maps[:1])[0], atol=1e-6)
    assert sense_cg(y, masks, maps[0], iters=3).shape == (2, N, N)  # (C, H, W) maps shared


def test_torch_in_torch_out(sim):
    y, mask, maps, _ = sim
    yt, mt, st = (torch.from_numpy(a) for a in (y, mask, maps))
    for fn in (zero_filled, sense_cg):
        out = fn(yt, mt, st)
        assert isinstance(out, torch.Tensor) and out.dtype == torch.complex64 and out.device == yt.device
        np.testing.assert_allclose(out.numpy(), fn(y, mask, maps), rtol=1e-5, atol=1e-6)
    assert isinstance(l1_wavelet(yt[:1], mt, st[:1], iters=5), torch.Tensor)


def test_l1_lambda_is_relative_to_the_data_scale(sim):
    y, mask, maps, _ = sim
    a = l1_wavelet(y[:1], mask, maps[:1], iters=20)
    b = l1_wavelet(1000 * y[:1], mask, maps[:1], iters=20)
    np.testing.assert_allclose(b / 1000, a, atol=1e-3 * np.abs(a).max())
    assert np.all(l1_wavelet(0 * y[:1], mask, maps[:1]) == 0)


def test_l1_is_deterministic(sim):
    """The step size is a bound, not SigPy's power iteration from a random start."""
    y, mask, maps, _ = sim
    np.random.seed(1)
    a = l1_wavelet(y[:1], mask, maps[:1], iters=10)
    np.random.seed(2)
    np.testing.assert_array_equal(l1_wavelet(y[:1], mask, maps[:1], iters=10), a)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sense_cg_cuda(sim):
    y, mask, maps, _ = sim
    out = sense_cg(torch.from_numpy(y).cuda(), torch.from_numpy(mask).cuda(), torch.from_numpy(maps).cuda())
    assert out.is_cuda
    np.testing.assert_allclose(out.cpu().numpy(), sense_cg(y, mask, maps), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda y, m, s: zero_filled(y[0, 0], m, s), r"kspace must be \(slices, coils, H, W\)"),
        (lambda y, m, s: zero_filled(y.real, m, s), "kspace must be complex"),
        (lambda y, m, s: zero_filled(y, m, s[:, :3]), r"maps must be \(slices, coils, H, W\)"),
        (lambda y, m, s: zero_filled(y, m[:, :5], s), "not broadcastable to kspace"),
        (lambda y, m, s: zero_filled(y, m + 0j, s), "mask must be real"),
        (lambda y, m, s: sense_cg(y, m, s, lam=-1), "lam must be a number >= 0"),
        (lambda y, m, s: sense_cg(y, m, s, iters=0), "iters must be a positive integer"),
        (lambda y, m, s: l1_wavelet(y, m, s, lam=0), "lam must be a positive number"),
        (lambda y, m, s: l1_wavelet(y[:1], m, s[:1], wavelet="nope", iters=1), "l1_wavelet:"),
        (lambda y, m, s: zero_filled(list(y), m, s), "kspace must be a numpy array or torch tensor"),
    ],
)
def test_bad_input(sim, call, match):
    y, mask, maps, _ = sim
    with pytest.raises(MrireconError, match=match):
        call(y, mask, maps)
