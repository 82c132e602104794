"""Metrics: agreement with fastmri.evaluate, per-slice vs volume, normalisation, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastmri import evaluate as fm

from mrirecon.errors import MrireconError
from mrirecon.metrics import (
    evaluate,
    fit_scale,
    nmse,
    nmse_per_slice,
    nrmse,
    psnr,
    psnr_per_slice,
    ssim,
    ssim_per_slice,
)


def _volume_pair(seed: int, dtype=np.float64, shape=(4, 24, 20)):
    """A reference with slice-varying intensity and a noisy, slightly blurred estimate."""
    rng = np.random.default_rng(seed)
    gt = rng.random(shape) * np.linspace(0.5, 2.0, shape[0])[:, None, None]
    pred = gt + 0.1 * rng.standard_normal(shape)
    pred = 0.5 * pred + 0.25 * (np.roll(pred, 1, axis=-1) + np.roll(pred, -1, axis=-2))
    return gt.astype(dtype), pred.astype(dtype)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_fastmri_evaluate(seed):
    gt, pred = _volume_pair(seed)
    assert psnr(gt, pred) == pytest.approx(float(fm.psnr(gt, pred)), abs=1e-6)
    assert ssim(gt, pred) == pytest.approx(np.asarray(fm.ssim(gt, pred)).item(), abs=1e-6)
    assert nmse(gt, pred) == pytest.approx(float(fm.nmse(gt, pred)), abs=1e-9)
    assert nrmse(gt, pred) == pytest.approx(np.sqrt(float(fm.nmse(gt, pred))), abs=1e-9)
    # explicit data range
    assert psnr(gt, pred, maxval=3.0) == pytest.approx(float(fm.psnr(gt, pred, 3.0)), abs=1e-6)
    assert ssim(gt, pred, maxval=3.0) == pytest.approx(np.asarray(fm.ssim(gt, pred, 3.0)).item(), abs=1e-6)


def test_float32_and_complex_and_torch_inputs():
    gt, pred = _volume_pair(3, dtype=np.float32)
    ref64 = float(fm.psnr(gt.astype(np.float64), pred.astype(np.float64)))
    assert psnr(gt, pred) == pytest.approx(ref64, abs=1e-6)
    phase = np.exp(1j * np.random.default_rng(0).uniform(-np.pi, np.pi, gt.shape))
    assert psnr(gt * phase, pred) == pytest.approx(ref64, abs=1e-6)
    assert ssim(torch.from_numpy(gt), torch.from_numpy(pred)) == pytest.approx(
        np.asarray(fm.ssim(gt.astype(np.float64), pred.astype(np.float64))).item(), abs=1e-6
    )


def test_per_slice_consistent_with_volume():
    gt, pred = _volume_pair(4)
    dr = gt.max()
    ps = psnr_per_slice(gt, pred)
    assert ps.shape == (gt.shape[0],)
    for s in range(gt.shape[0]):
        # each slice uses the *volume* data range
        assert ps[s] == pytest.approx(fm.psnr(gt[s], pred[s], dr), abs=1e-9)
    # volume PSNR is the PSNR of the mean MSE, not the mean of the slice PSNRs
    mse = dr**2 / 10 ** (ps / 10)
    assert psnr(gt, pred) == pytest.approx(10 * np.log10(dr**2 / mse.mean()), abs=1e-9)
    assert ssim(gt, pred) == pytest.approx(ssim_per_slice(gt, pred).mean(), abs=1e-12)
    ns = nmse_per_slice(gt, pred)
    for s in range(gt.shape[0]):
        assert ns[s] == pytest.approx(float(fm.nmse(gt[s], pred[s])), rel=1e-12)


def test_lstsq_normalisation_is_scale_and_phase_invariant():
    gt, pred = _volume_pair(5)
    rng = np.random.default_rng(1)
    recon = pred * np.exp(1j * rng.normal(0, 0.05, pred.shape))  # complex recon
    base = evaluate(gt, recon)
    moved = evaluate(gt, recon * 3.7 * np.exp(1j * 0.3))
    for key in ("psnr", "ssim", "nmse", "nrmse"):
        assert getattr(moved, key) == pytest.approx(getattr(base, key), rel=1e-9)
    assert moved.scale == pytest.approx(base.scale / 3.7, rel=1e-9)
    assert base.normalization == "lstsq"
    # the fitted scale is the least-squares optimum: any other scale gives a larger error
    for factor in (0.95, 1.05):
        worse = evaluate(gt, np.abs(recon) * base.scale * factor, normalize="none")
        assert worse.nmse > base.nmse
    # "none" with the fitted scale applied by hand reproduces the lstsq numbers
    manual = evaluate(gt, np.abs(recon) * base.scale, normalize="none")
    assert manual.psnr == pytest.approx(base.psnr, abs=1e-9)


def test_evaluate_modes_and_crop():
    gt, pred = _volume_pair(6, shape=(3, 30, 24))
    none = evaluate(gt, pred, normalize="none")
    assert none.scale == 1.0
    assert none.psnr == pytest.approx(float(fm.psnr(gt, pred)), abs=1e-6)
    assert none.ssim == pytest.approx(np.asarray(fm.ssim(gt, pred)).item(), abs=1e-6)
    mx = evaluate(gt, 2 * pred, normalize="max")
    assert (2 * pred * mx.scale).max() == pytest.approx(gt.max())
    cropped = evaluate(gt, pred, normalize="none", crop=(20, 20))
    assert cropped.shape == (3, 20, 20)
    g, p = gt[:, 5:25, 2:22], pred[:, 5:25, 2:22]
    assert cropped.psnr == pytest.approx(float(fm.psnr(g, p)), abs=1e-6)
    assert cropped.data_range == pytest.approx(g.max())
    d = cropped.as_dict(per_slice=True)
    assert d["normalization"] == "none" and len(d["per_slice"]["ssim"]) == 3
    assert "per_slice" not in cropped.as_dict()


def test_fit_scale_real_and_complex():
    rng = np.random.default_rng(7)
    ref = rng.standard_normal((2, 8, 8)) + 1j * rng.standard_normal((2, 8, 8))
    a = 0.4 * np.exp(-1j * 1.1)
    assert fit_scale(ref, ref / a, complex_scale=True) == pytest.approx(a, rel=1e-12)
    assert fit_scale(ref, ref * 2.5 * np.exp(1j * 0.7)) == pytest.approx(1 / 2.5, rel=1e-12)


@pytest.mark.parametrize(
    "gt, pred, match",
    [
        (np.ones((2, 8, 8)), np.ones((2, 8, 9)), "shapes differ"),
        (np.ones((8, 8)), np.ones((8, 8)), r"volume \(slices, H, W\)"),
        (np.ones((2, 8, 8)), np.full((2, 8, 8), np.nan), "pred contains NaN"),
        (np.zeros((2, 8, 8)), np.ones((2, 8, 8)), "all zero"),
        (np.ones((2, 8, 8)), np.array([["a"]]), "must hold numbers"),
    ],
)
def test_bad_input(gt, pred, match):
    with pytest.raises(MrireconError, match=match):
        evaluate(gt, pred)


def test_bad_options():
    gt, pred = _volume_pair(8)
    with pytest.raises(MrireconError, match="normalize must be one of"):
        evaluate(gt, pred, normalize="mean")
    with pytest.raises(MrireconError, match="larger than the images"):
        evaluate(gt, pred, crop=(100, 10))
    with pytest.raises(MrireconError, match="recon is all zero"):
        evaluate(gt, np.zeros_like(pred))
    with pytest.raises(MrireconError, match="at least 7x7"):
        ssim(np.ones((1, 5, 5)), np.ones((1, 5, 5)))


def test_exclude_keeps_the_whole_volume_data_range():
    """fastMRI's max is over the whole reference volume: excluding its brightest slice must not change it."""
    rng = np.random.default_rng(3)
    ref = rng.random((3, 16, 16))
    ref[0] *= 4.0  # the brightest slice, excluded below
    recon = ref + 0.01 * rng.standard_normal(ref.shape)
    m = evaluate(ref, recon, normalize="none", exclude=[0])
    assert m.data_range == pytest.approx(ref.max())
    assert m.psnr == pytest.approx(psnr(ref[1:], recon[1:], maxval=ref.max()))
    assert evaluate(ref, recon, normalize="none", exclude=[0], data_range=1.0).data_range == 1.0
